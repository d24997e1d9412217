/**
 * Reconnect delays: exponential backoff with jitter, so a fleet that lost its server at the same
 * moment does not come back in lockstep.
 */

export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default 1000. */
  initialDelay: number;
  /** Upper bound of any delay, in ms. Default 30000. */
  maxDelay: number;
  /** Growth per failed attempt. Default 2. */
  factor: number;
  /**
   * Share of each delay that is random, from 0 (none) to 1 ("full jitter": anywhere from 0 to
   * the exponential delay). Default 0.5: a delay lies between half and all of the exponential one.
   */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialDelay: 1000, maxDelay: 30_000, factor: 2, jitter: 0.5 };

/** Merges options over the defaults and checks them; throws a RangeError naming a bad option. */
export function backoffOptions(options: Partial<BackoffOptions> = {}): BackoffOptions {
  const merged = { ...DEFAULT_BACKOFF, ...options };
  const { initialDelay, maxDelay, factor, jitter } = merged;
  if (!(initialDelay >= 0)) throw new RangeError(`backoff.initialDelay must be >= 0, got ${initialDelay}`);
  if (!(maxDelay >= initialDelay)) throw new RangeError(`backoff.maxDelay must be >= initialDelay, got ${maxDelay}`);
  if (!(factor >= 1)) throw new RangeError(`backoff.factor must be >= 1, got ${factor}`);
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff.jitter must be between 0 and 1, got ${jitter}`);
  return merged;
}

/**
 * The delay before retry number `attempt` (0 for the first retry after a loss):
 * min(maxDelay, initialDelay × factor^attempt), of which the share `jitter` is random.
 * `random` returns a number in [0, 1), as Math.random does.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponential = Math.min(options.maxDelay, options.initialDelay * options.factor ** Math.max(0, attempt));
  return Math.round(exponential * (1 - options.jitter * random()));
}
