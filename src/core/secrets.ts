/**
 * Secrets (access-key secrets, API tokens) are stored as salted scrypt hashes and compared in
 * constant time. scrypt is deliberately slow (~tens of ms), which a fleet reconnecting at once
 * would feel, so a successful verification is remembered in memory as a SHA-256 of the secret
 * (compared in constant time too) until the credential changes or the process ends.
 *
 * The same slowness makes every distinct wrong secret cost a full scrypt run, so checks that
 * need one are bounded: a few at a time, taking turns between credentials, and refused without
 * hashing once a credential or a remote address has failed too often (docs/decisions.md,
 * "Credentials and secrets").
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { type MessageLimiter, RateLimiter } from '../domain/rate-limit.js';

const N = 16384;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;

function scryptAsync(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEY_LENGTH, { N: n, r, p, maxmem: 128 * n * r * 2 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** `scrypt$N$r$p$salt$hash` with base64 salt and hash. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scryptAsync(secret, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export function generateSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 of a text: what a verified secret is remembered as, and how high-entropy tokens are stored. */
export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Whether two secrets are equal, compared in constant time (of equal-length digests, whatever their lengths). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** One stored hash a secret may match (an access key, or one API token of the set). */
export interface Candidate {
  id: string;
  hash: string;
}

/** Why a check was refused without hashing, and when trying again can help. */
export interface Throttle {
  reason: string;
  retryAfterMs: number;
}

export type SecretCheck = { ok: true; id: string } | { ok: false; throttled?: Throttle };

export interface SecretCheckLimits {
  /**
   * scrypt runs at once. They run on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE
   * says otherwise), which file system calls and DNS lookups need too.
   */
  concurrency: number;
  /** Failed checks of one credential in a window; past it, checks that need hashing are refused. */
  failuresPerCredential: number;
  /** Failed checks from one remote address (an IPv6 /64) in a window, whatever the credential. */
  failuresPerAddress: number;
  windowSeconds: number;
  /** Distinct checks waiting or running at once: per credential, per address, in all. */
  pendingPerCredential: number;
  pendingPerAddress: number;
  pendingTotal: number;
  /** Entries kept of each map keyed by what clients send (remote addresses, refused secrets). */
  maxTracked: number;
}

export const DEFAULT_SECRET_CHECK_LIMITS: SecretCheckLimits = {
  concurrency: 2,
  failuresPerCredential: 10,
  failuresPerAddress: 20,
  windowSeconds: 60,
  pendingPerCredential: 2,
  pendingPerAddress: 8,
  pendingTotal: 256,
  maxTracked: 10_000,
};

/** What a refusal for too many checks in progress tells the client: try again in a second. */
const BUSY_RETRY_MS = 1_000;

/**
 * Runs tasks at most `concurrency` at once. Waiting tasks are queued per group (a credential)
 * and the groups take turns, so a storm against one credential cannot queue ahead of everyone.
 */
export class FairQueue {
  private active = 0;
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly concurrency: number) {}

  run<T>(group: string, task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        Promise.resolve()
          .then(task)
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.next();
          });
      };
      const queue = this.waiting.get(group);
      if (queue) queue.push(start);
      else this.waiting.set(group, [start]);
      this.next();
    });
  }

  private next(): void {
    while (this.active < this.concurrency) {
      const first = this.waiting.entries().next();
      if (first.done) return;
      const [group, queue] = first.value;
      const start = queue.shift();
      // Re-inserting moves the group behind the others: the next free slot is another group's turn.
      this.waiting.delete(group);
      if (queue.length > 0) this.waiting.set(group, queue);
      start?.();
    }
  }
}

/**
 * The key failures from a remote address count under: IPv4 as it is (also when IPv4-mapped),
 * IPv6 by its /64, since one host usually holds a whole /64.
 */
export function addressKey(address: string | null | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail] = (address.split('%')[0] ?? '').split('::');
  const first = head ? head.split(':') : [];
  const last = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? first
      : [...first, ...Array<string>(Math.max(0, 8 - first.length - last.length)).fill('0'), ...last];
  return `${groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

function add(counts: Map<string, number>, key: string, n: number): void {
  const value = (counts.get(key) ?? 0) + n;
  if (value > 0) counts.set(key, value);
  else counts.delete(key);
}

/**
 * Remembers verified secrets per credential id; see the module comment. Checks of the same
 * secret that overlap share one scrypt run, so a fleet reconnecting with one key costs one
 * hash, not one per device; recently refused secrets are remembered for a while too, so
 * repeating a wrong secret costs no scrypt run either. Every other check is limited by
 * `SecretCheckLimits`; a secret already verified never is.
 */
export class VerifiedSecrets {
  private readonly verified = new Map<string, { hash: string; digest: Buffer }>();
  private readonly inFlight = new Map<string, Promise<SecretCheck>>();
  private readonly refused = new Map<string, number>();
  private readonly pendingByCredential = new Map<string, number>();
  private readonly pendingByAddress = new Map<string, number>();
  private readonly credentialFailures: MessageLimiter;
  private readonly addressFailures: MessageLimiter;
  private readonly queue: FairQueue;

  private readonly refusedTtlMs: number;
  private readonly limits: SecretCheckLimits;
  private readonly clock: () => number;
  private readonly check: (secret: string, stored: string) => Promise<boolean>;

  constructor(
    options: {
      refusedTtlMs?: number;
      limits?: Partial<SecretCheckLimits>;
      clock?: () => number;
      check?: (secret: string, stored: string) => Promise<boolean>;
      /**
       * What failed checks are counted with, per credential and per address: this process's own
       * counters unless given (nodes sharing Redis count them together, src/cluster/).
       */
      failures?: { credential: MessageLimiter; address: MessageLimiter };
    } = {},
  ) {
    this.refusedTtlMs = options.refusedTtlMs ?? 60_000;
    this.limits = { ...DEFAULT_SECRET_CHECK_LIMITS, ...options.limits };
    this.clock = options.clock ?? Date.now;
    this.check = options.check ?? verifySecret;
    this.queue = new FairQueue(this.limits.concurrency);
    // Credentials exist in the store, but keep a bound anyway; addresses are whatever connects.
    this.credentialFailures = options.failures?.credential ?? new RateLimiter(this.limits.maxTracked);
    this.addressFailures = options.failures?.address ?? new RateLimiter(this.limits.maxTracked);
  }

  /**
   * Checks `secret` against the stored hashes of `credential` (an access key: one candidate;
   * the API tokens: one per token). `address` is the client's remote address; `label` names the
   * credential in a refusal (`access key`).
   */
  async verify(
    credential: string,
    secret: string,
    candidates: Candidate[],
    options: { address?: string | null; label?: string } = {},
  ): Promise<SecretCheck> {
    const d = sha256(secret);
    const known = this.knownDigest(d, candidates);
    if (known) return { ok: true, id: known };
    const now = this.clock();
    // The digest names the attempt: a map lookup by it reveals nothing the caller did not send.
    const tag = d.toString('base64');
    const open = candidates.filter((c) => {
      const refusedAt = this.refused.get(refusedKey(c, tag));
      return refusedAt === undefined || now - refusedAt >= this.refusedTtlMs;
    });
    if (open.length === 0) return { ok: false };
    const attempt = [credential, tag, ...open.map((c) => refusedKey(c, ''))].join('\0');
    const running = this.inFlight.get(attempt);
    if (running) return running;

    const address = addressKey(options.address);
    const throttled = this.throttle(credential, address, options.label ?? 'credential', now);
    if (throttled) return { ok: false, throttled };

    const settle = (match: Candidate | undefined): SecretCheck => {
      if (match) {
        this.verified.set(match.id, { hash: match.hash, digest: d });
        for (const c of open) this.refused.delete(refusedKey(c, tag));
        return { ok: true, id: match.id };
      }
      const at = this.clock();
      for (const c of open) this.remember(refusedKey(c, tag), at);
      this.credentialFailures.hit(credential, this.failureLimit('credential'), at);
      if (address) this.addressFailures.hit(address, this.failureLimit('address'), at);
      return { ok: false };
    };
    add(this.pendingByCredential, credential, 1);
    if (address) add(this.pendingByAddress, address, 1);
    const checking = this.queue
      .run(credential, async () => {
        for (const c of open) if (await this.check(secret, c.hash)) return c;
        return undefined;
      })
      .then(settle)
      .finally(() => {
        this.inFlight.delete(attempt);
        add(this.pendingByCredential, credential, -1);
        if (address) add(this.pendingByAddress, address, -1);
      });
    this.inFlight.set(attempt, checking);
    return checking;
  }

  /** The candidate `secret` was verified for before, if any: no hashing, never throttled. */
  known(secret: string, candidates: Candidate[]): string | undefined {
    return this.knownDigest(sha256(secret), candidates);
  }

  private knownDigest(d: Buffer, candidates: Candidate[]): string | undefined {
    for (const c of candidates) {
      const known = this.verified.get(c.id);
      if (known && known.hash === c.hash && timingSafeEqual(known.digest, d)) return c.id;
    }
    return undefined;
  }

  forget(id: string): void {
    this.verified.delete(id);
    const prefix = `${id}\0`;
    for (const key of this.refused.keys()) if (key.startsWith(prefix)) this.refused.delete(key);
  }

  /** The refusal for a check that would need hashing now, if any limit says no. */
  private throttle(credential: string, address: string | undefined, label: string, now: number): Throttle | undefined {
    const l = this.limits;
    const byCredential = this.credentialFailures.blockedFor(credential, this.failureLimit('credential'), now);
    if (byCredential > 0) {
      return { reason: `too many failed checks for this ${label}`, retryAfterMs: byCredential };
    }
    const byAddress = address ? this.addressFailures.blockedFor(address, this.failureLimit('address'), now) : 0;
    if (byAddress > 0) {
      return { reason: 'too many failed secret checks from this address', retryAfterMs: byAddress };
    }
    if ((this.pendingByCredential.get(credential) ?? 0) >= l.pendingPerCredential) {
      return { reason: `too many checks in progress for this ${label}`, retryAfterMs: BUSY_RETRY_MS };
    }
    if (address && (this.pendingByAddress.get(address) ?? 0) >= l.pendingPerAddress) {
      return { reason: 'too many secret checks in progress from this address', retryAfterMs: BUSY_RETRY_MS };
    }
    if (this.inFlight.size >= l.pendingTotal) {
      return { reason: 'too many secret checks in progress', retryAfterMs: BUSY_RETRY_MS };
    }
    return undefined;
  }

  private failureLimit(of: 'credential' | 'address') {
    return {
      messages: of === 'credential' ? this.limits.failuresPerCredential : this.limits.failuresPerAddress,
      windowSeconds: this.limits.windowSeconds,
    };
  }

  /** Remembers a refused secret; past the bound, the oldest entry makes room. */
  private remember(key: string, at: number): void {
    this.refused.delete(key);
    if (this.refused.size >= this.limits.maxTracked) {
      const oldest = this.refused.keys().next();
      if (!oldest.done) this.refused.delete(oldest.value);
    }
    this.refused.set(key, at);
  }
}

function refusedKey(c: Candidate, tag: string): string {
  return `${c.id}\0${c.hash}\0${tag}`;
}
