/** A token bucket: at most `rate` sends per second, in bursts of at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;

  /** `rate` 0 or Infinity: unlimited. */
  constructor(
    readonly rate: number,
    burst?: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rate >= 0)) throw new RangeError(`rate must be >= 0, got ${rate}`);
    this.burst = Math.max(1, burst ?? Math.ceil(rate / 10));
    this.tokens = this.burst;
    this.last = this.now();
  }

  get unlimited(): boolean {
    return this.rate === 0 || this.rate === Number.POSITIVE_INFINITY;
  }

  /** Takes a token and answers 0, or answers how many ms to wait until one is available. */
  take(): number {
    if (this.unlimited) return 0;
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
  }
}
