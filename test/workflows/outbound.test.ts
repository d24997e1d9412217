/** Which addresses a workflow's HTTP node may not reach unless the operator allows it. */
import { describe, expect, it } from 'vitest';
import { forbiddenKind } from '../../src/workflows/outbound.js';

describe('forbiddenKind', () => {
  it.each([
    ['127.0.0.1', 'a loopback'],
    ['127.255.0.9', 'a loopback'],
    ['::1', 'a loopback'],
    ['[::1]', 'a loopback'],
    ['::ffff:127.0.0.1', 'a loopback'],
    ['0.0.0.0', 'an unspecified'],
    ['::', 'an unspecified'],
    ['10.1.2.3', 'a private'],
    ['172.16.0.1', 'a private'],
    ['172.31.255.254', 'a private'],
    ['192.168.1.1', 'a private'],
    ['::ffff:192.168.1.1', 'a private'],
    ['fd12:3456::1', 'a private (unique local)'],
    ['169.254.169.254', 'a link-local (cloud metadata)'],
    ['fe80::1', 'a link-local'],
    ['100.64.0.1', 'a shared (carrier-grade NAT)'],
    ['224.0.0.1', 'a multicast'],
    ['ff02::1', 'a multicast'],
    ['255.255.255.255', 'a reserved'],
  ])('refuses %s as %s address', (address, kind) => {
    expect(forbiddenKind(address)).toBe(kind);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '172.15.255.255', '100.128.0.1', '2001:4860:4860::8888', 'example.com'])(
    'lets %s through (a public address, or a name checked once resolved)',
    (address) => {
      expect(forbiddenKind(address)).toBeUndefined();
    },
  );
});
