import { describe, expect, it } from 'vitest';
import {
  addressKey,
  FairQueue,
  hashSecret,
  type SecretCheck,
  VerifiedSecrets,
  verifySecret,
} from '../../src/core/secrets.js';

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

/** One access key `k` with its stored hash, as the platform passes it. */
function key(hash: string) {
  return [{ id: 'k', hash }];
}

/** True when the check matched (the old boolean answer). */
async function matches(v: VerifiedSecrets, secret: string, hash: string, address?: string): Promise<boolean> {
  return (await v.verify('key:k', secret, key(hash), { address: address ?? null })).ok;
}

describe('VerifiedSecrets', () => {
  it('accepts the right secret, refuses others, and follows a changed hash', async () => {
    const hash = await hashSecret('right');
    const v = new VerifiedSecrets();
    expect(await matches(v, 'right', hash)).toBe(true);
    expect(await matches(v, 'right', hash)).toBe(true);
    expect(await matches(v, 'wrong', hash)).toBe(false);
    const rotated = await hashSecret('new');
    expect(await matches(v, 'right', rotated)).toBe(false);
    expect(await matches(v, 'new', rotated)).toBe(true);
  });

  it('hashes once for overlapping checks of one secret, then answers from memory', async () => {
    const hash = await hashSecret('fleet');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ check });
    const results = await Promise.all(Array.from({ length: 50 }, () => matches(v, 'fleet', hash)));
    expect(results.every(Boolean)).toBe(true);
    expect(await matches(v, 'fleet', hash)).toBe(true);
    expect(calls).toEqual(['fleet']);
  });

  it('remembers a refused secret until its time is up, then checks again', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    let now = 0;
    const v = new VerifiedSecrets({ refusedTtlMs: 1000, clock: () => now, check });
    expect(await Promise.all([matches(v, 'wrong', hash), matches(v, 'wrong', hash)])).toEqual([false, false]);
    now = 500;
    expect(await matches(v, 'wrong', hash)).toBe(false);
    expect(calls).toEqual(['wrong']);
    now = 5000;
    expect(await matches(v, 'wrong', hash)).toBe(false);
    expect(calls).toEqual(['wrong', 'wrong']);
    expect(await matches(v, 'right', hash)).toBe(true);
  });

  it('forgets what it knew of a credential', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ check });
    await matches(v, 'right', hash);
    await matches(v, 'wrong', hash);
    v.forget('k');
    await matches(v, 'right', hash);
    await matches(v, 'wrong', hash);
    expect(calls).toEqual(['right', 'wrong', 'right', 'wrong']);
  });

  it('finds the matching one of several candidates (the API tokens) and knows it afterwards', async () => {
    const tokens = [
      { id: 'a', hash: await hashSecret('token-a') },
      { id: 'b', hash: await hashSecret('token-b') },
    ];
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ check });
    expect(await v.verify('api-tokens', 'token-b', tokens)).toEqual({ ok: true, id: 'b' });
    expect(v.known('token-b', tokens)).toBe('b');
    expect(v.known('token-a', tokens)).toBeUndefined();
    expect(await v.verify('api-tokens', 'token-b', tokens)).toEqual({ ok: true, id: 'b' });
    expect(await v.verify('api-tokens', 'nope', tokens)).toEqual({ ok: false });
    expect(calls).toEqual(['token-b', 'token-b', 'nope', 'nope']);
  });
});

describe('VerifiedSecrets limits', () => {
  const limits = {
    failuresPerCredential: 3,
    failuresPerAddress: 5,
    windowSeconds: 60,
    pendingPerCredential: 2,
    pendingPerAddress: 3,
    pendingTotal: 4,
  };

  it('refuses checks that need hashing once a credential failed too often, until its window ends', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    let now = 0;
    const v = new VerifiedSecrets({ limits, clock: () => now, check });
    for (let i = 0; i < 3; i++) expect(await v.verify('key:k', `wrong-${i}`, key(hash))).toEqual({ ok: false });
    now = 10_000;
    expect(await v.verify('key:k', 'wrong-3', key(hash))).toEqual({
      ok: false,
      throttled: { reason: 'too many failed checks for this credential', retryAfterMs: 50_000 },
    });
    // Throttled means not hashed: not even the right secret is checked now.
    expect((await v.verify('key:k', 'right', key(hash))).ok).toBe(false);
    // A secret refused before is answered from memory, as before, without a throttle.
    expect(await v.verify('key:k', 'wrong-0', key(hash))).toEqual({ ok: false });
    expect(calls).toEqual(['wrong-0', 'wrong-1', 'wrong-2']);
    // Another credential is not affected.
    const other = [{ id: 'other', hash }];
    expect(await v.verify('key:other', 'right', other)).toEqual({ ok: true, id: 'other' });
    now = 60_000;
    expect(await v.verify('key:k', 'right', key(hash))).toEqual({ ok: true, id: 'k' });
  });

  it('never throttles a secret verified before', async () => {
    const hash = await hashSecret('right');
    const v = new VerifiedSecrets({ limits });
    expect(await matches(v, 'right', hash, '10.0.0.1')).toBe(true);
    for (let i = 0; i < 10; i++) await v.verify('key:k', `wrong-${i}`, key(hash), { address: '10.0.0.1' });
    expect((await v.verify('key:k', 'wrong-x', key(hash), { address: '10.0.0.1' })).ok).toBe(false);
    expect(await v.verify('key:k', 'right', key(hash), { address: '10.0.0.1' })).toEqual({ ok: true, id: 'k' });
  });

  it('refuses checks from an address that failed too often, whatever the credential', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({ limits: { ...limits, failuresPerCredential: 100 }, check });
    const candidates = (i: number) => [{ id: `k${i}`, hash }];
    for (let i = 0; i < 5; i++) {
      expect(await v.verify(`key:k${i}`, 'wrong', candidates(i), { address: '10.0.0.1' })).toEqual({ ok: false });
    }
    const refused = await v.verify('key:k9', 'right', candidates(9), { address: '10.0.0.1' });
    expect(refused).toMatchObject({
      ok: false,
      throttled: { reason: 'too many failed secret checks from this address' },
    });
    // The IPv4-mapped form is the same address; another address is not affected.
    expect((await v.verify('key:k9', 'right', candidates(9), { address: '::ffff:10.0.0.1' })).ok).toBe(false);
    expect(await v.verify('key:k9', 'right', candidates(9), { address: '10.0.0.2' })).toEqual({ ok: true, id: 'k9' });
    expect(calls).toHaveLength(6);
  });

  it('refuses distinct checks beyond those in progress per credential, per address and in all', async () => {
    const hash = await hashSecret('right');
    const v = new VerifiedSecrets({ limits });
    const busy = (r: SecretCheck) => (!r.ok && r.throttled ? r.throttled.reason : r.ok ? 'match' : 'mismatch');
    const perCredential = await Promise.all([
      v.verify('key:k', 'w1', key(hash)),
      v.verify('key:k', 'w2', key(hash)),
      v.verify('key:k', 'w3', key(hash)),
      // The same secret as one in progress joins it: no new check.
      v.verify('key:k', 'w1', key(hash)),
    ]);
    expect(perCredential.map(busy)).toEqual([
      'mismatch',
      'mismatch',
      'too many checks in progress for this credential',
      'mismatch',
    ]);
    const perAddress = await Promise.all(
      [1, 2, 3, 4].map((i) => v.verify(`key:a${i}`, 'x', [{ id: `a${i}`, hash }], { address: '10.0.0.9' })),
    );
    expect(perAddress.map(busy)).toEqual([
      'mismatch',
      'mismatch',
      'mismatch',
      'too many secret checks in progress from this address',
    ]);
    const total = await Promise.all([1, 2, 3, 4, 5].map((i) => v.verify(`key:t${i}`, 'x', [{ id: `t${i}`, hash }])));
    expect(total.map(busy)).toEqual([
      'mismatch',
      'mismatch',
      'mismatch',
      'mismatch',
      'too many secret checks in progress',
    ]);
  });

  it('gives another credential the next turn, ahead of checks queued for a busy one', async () => {
    const hash = await hashSecret('right');
    const { calls, check } = countingCheck();
    const v = new VerifiedSecrets({
      limits: { concurrency: 1, pendingPerCredential: 10, pendingTotal: 100, failuresPerCredential: 100 },
      check,
    });
    const storm = Array.from({ length: 5 }, (_, i) => v.verify('key:a', `w${i}`, [{ id: 'a', hash }]));
    const other = v.verify('key:b', 'right', [{ id: 'b', hash }]);
    await Promise.all([...storm, other]);
    // w0 was running when the rest arrived. b came after w1..w4, but the credentials take
    // turns: b runs after w1, not after w4.
    expect(calls).toEqual(['w0', 'w1', 'right', 'w2', 'w3', 'w4']);
  });

  it('keeps each map keyed by client input bounded', async () => {
    const hash = await hashSecret('right');
    const v = new VerifiedSecrets({
      limits: { maxTracked: 3, failuresPerCredential: 1000, failuresPerAddress: 1000 },
      check: async () => false,
    });
    for (let i = 0; i < 10; i++) await v.verify('key:k', `w${i}`, key(hash), { address: `10.0.1.${i}` });
    const internals = v as unknown as { refused: Map<string, number>; addressFailures: { size: number } };
    expect(internals.refused.size).toBe(3);
    expect(internals.addressFailures.size).toBe(3);
  });
});

describe('FairQueue', () => {
  it('runs at most `concurrency` tasks at once', async () => {
    const q = new FairQueue(2);
    let running = 0;
    let most = 0;
    const task = async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => q.run(`g${i % 3}`, task)));
    expect(most).toBe(2);
  });

  it('passes a failed task on to its caller and goes on', async () => {
    const q = new FairQueue(1);
    await expect(q.run('g', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await q.run('g', async () => 7)).toBe(7);
  });
});

describe('addressKey', () => {
  it('counts IPv4 as it is and IPv6 by its /64', () => {
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(undefined)).toBeUndefined();
    expect(addressKey(null)).toBeUndefined();
  });
});
