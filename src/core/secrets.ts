/**
 * Secrets (access-key secrets, API tokens) are stored as salted scrypt hashes and compared in
 * constant time. scrypt is deliberately slow (~tens of ms), which a fleet reconnecting at once
 * would feel, so a successful verification is remembered in memory as a SHA-256 of the secret
 * (compared in constant time too) until the credential changes or the process ends.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

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

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/**
 * Remembers verified secrets per credential id; see the module comment. Checks of the same
 * secret that overlap share one scrypt run, so a fleet reconnecting with one key costs one
 * hash, not one per device; recently refused secrets are remembered for a while too, so
 * repeating a wrong secret costs no scrypt run either.
 */
export class VerifiedSecrets {
  private readonly verified = new Map<string, { hash: string; digest: Buffer }>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly refused = new Map<string, number>();

  private readonly refusedTtlMs: number;
  private readonly maxRefused: number;
  private readonly clock: () => number;
  private readonly check: (secret: string, stored: string) => Promise<boolean>;

  constructor(
    options: {
      refusedTtlMs?: number;
      maxRefused?: number;
      clock?: () => number;
      check?: (secret: string, stored: string) => Promise<boolean>;
    } = {},
  ) {
    this.refusedTtlMs = options.refusedTtlMs ?? 60_000;
    this.maxRefused = options.maxRefused ?? 10_000;
    this.clock = options.clock ?? Date.now;
    this.check = options.check ?? verifySecret;
  }

  /** True when `secret` matches `storedHash` for credential `id`. */
  async verify(id: string, secret: string, storedHash: string): Promise<boolean> {
    const d = digest(secret);
    const known = this.verified.get(id);
    if (known && known.hash === storedHash && timingSafeEqual(known.digest, d)) return true;
    // The digest names the attempt: a map lookup by it reveals nothing the caller did not send.
    const attempt = `${id}:${storedHash}:${d.toString('base64')}`;
    const refusedAt = this.refused.get(attempt);
    if (refusedAt !== undefined && this.clock() - refusedAt < this.refusedTtlMs) return false;
    let running = this.inFlight.get(attempt);
    if (!running) {
      running = this.check(secret, storedHash).finally(() => this.inFlight.delete(attempt));
      this.inFlight.set(attempt, running);
    }
    const ok = await running;
    if (ok) {
      this.verified.set(id, { hash: storedHash, digest: d });
      this.refused.delete(attempt);
    } else {
      if (this.refused.size >= this.maxRefused) this.refused.clear();
      this.refused.set(attempt, this.clock());
    }
    return ok;
  }

  forget(id: string): void {
    this.verified.delete(id);
    for (const attempt of this.refused.keys()) if (attempt.startsWith(`${id}:`)) this.refused.delete(attempt);
  }
}
