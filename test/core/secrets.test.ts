import { describe, expect, it } from 'vitest';
import { hashSecret, VerifiedSecrets, verifySecret } from '../../src/core/secrets.js';

describe('secret hashing', () => {
  it('stores a salted scrypt hash that verifies only the same secret', async () => {
    const a = await hashSecret('s3cret');
    const b = await hashSecret('s3cret');
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b); // salted
    expect(a).not.toContain('s3cret');
    expect(await verifySecret('s3cret', a)).toBe(true);
    expect(await verifySecret('s3cret!', a)).toBe(false);
    expect(await verifySecret('s3cret', 'md5$abc')).toBe(false);
  });
});

function countingCheck() {
  const calls: string[] = [];
  const check = async (secret: string, stored: string) => {
    calls.push(secret);
    return verifySecret(secret, stored);
  };
  return { calls, check };
}

describe('VerifiedSecrets', () => {
  it('accepts the right secret, refuses others, and follows a changed hash', async () => {
    const hash = await hashSecret('right');
    const v = new VerifiedSecrets();
    expect(await v.verify('k', 'right', hash)).toBe(true);
    expect(await v.verify('k', 'right', hash)).toBe(true);
    expect(await v.verify('k', 'wrong', hash)).toBe(false);
    const rotated = await hashSecret('new');
    expect(await v.verify('k', 'right', rotated)).toBe(false);
    expect(await v.verify('k', 'new', rotated)).toBe(true);
  });

  it('hashes once for overlapping checks of one secret, then answers from memory', async () => {
    const hash = await hashSecret('fleet');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ check });
    const results = await Promise.all(Array.from({ length: 50 }, () => v.verify('k', 'fleet', hash)));
    expect(results.every(Boolean)).toBe(true);
    expect(await v.verify('k', 'fleet', hash)).toBe(true);
    expect(calls).toEqual(['fleet']);
  });

  it('remembers a refused secret until its time is up, then checks again', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    let now = 0;
    const v = new VerifiedSecrets({ refusedTtlMs: 1000, clock: () => now, check });
    expect(await Promise.all([v.verify('k', 'wrong', hash), v.verify('k', 'wrong', hash)])).toEqual([false, false]);
    now = 500;
    expect(await v.verify('k', 'wrong', hash)).toBe(false);
    expect(calls).toEqual(['wrong']);
    now = 5000;
    expect(await v.verify('k', 'wrong', hash)).toBe(false);
    expect(calls).toEqual(['wrong', 'wrong']);
    expect(await v.verify('k', 'right', hash)).toBe(true);
  });

  it('forgets what it knew of a credential', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ check });
    await v.verify('k', 'right', hash);
    await v.verify('k', 'wrong', hash);
    v.forget('k');
    await v.verify('k', 'right', hash);
    await v.verify('k', 'wrong', hash);
    expect(calls).toEqual(['right', 'wrong', 'right', 'wrong']);
  });
});
