/** The PROXY protocol header's framing and addresses (src/broker/proxy-protocol.ts). */
import {
  Command,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  TransportProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { describe, expect, it } from 'vitest';
import { ProxyHeaderError, parseProxyHeader } from '../../src/broker/proxy-protocol.js';

function v6(source: number[], command = Command.PROXY): Buffer {
  const address = new IPv6ProxyAddress(
    IPv6Address.createFrom(source),
    1,
    IPv6Address.createFrom([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    2,
  );
  return Buffer.from(new V2ProxyProtocol(command, TransportProtocol.STREAM, address).build());
}

const MQTT = Buffer.from([0x10, 0x00]);

describe('parseProxyHeader', () => {
  it.each([
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], '2001:db8::1'],
    [[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd], 'fe80::1234:0:0:abcd'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7], '::ffff:203.0.113.7'],
    [[0x20, 0x01, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7], '2001:1:2:3:4:5:6:7'],
  ])('reads an IPv6 source %j as %s, and how long the header is', (bytes, text) => {
    const header = v6(bytes);
    expect(parseProxyHeader(Buffer.concat([header, MQTT]))).toEqual({ address: text, length: header.length });
  });

  it('reads an IPv4 source, and gives no address for LOCAL (a health check) or UNKNOWN', () => {
    const v4 = Buffer.from(
      new V2ProxyProtocol(
        Command.PROXY,
        TransportProtocol.STREAM,
        new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, 1]), 1, IPv4Address.createFrom([10, 0, 0, 1]), 2),
      ).build(),
    );
    expect(parseProxyHeader(v4)?.address).toBe('192.0.2.1');
    expect(parseProxyHeader(v6(new Array(16).fill(0), Command.LOCAL))?.address).toBeNull();
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ address: null, length: 15 });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN ff::1 ff::2 1 2\r\nrest'))?.address).toBeNull();
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n'))?.address).toBe('2001:db8::7');
  });

  it('waits for the rest of a header cut anywhere', () => {
    const header = v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    for (let n = 1; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n))).toBeUndefined();
    const line = Buffer.from('PROXY TCP4 192.0.2.1 10.0.0.1 1 2\r\n');
    for (let n = 1; n < line.length; n++) expect(parseProxyHeader(line.subarray(0, n))).toBeUndefined();
  });

  it.each([
    ['no header', MQTT],
    ['a v1 line past 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(100)}`)],
    ['a v1 source that is not an address', Buffer.from('PROXY TCP4 localhost 10.0.0.1 1 2\r\n')],
    ['a v1 source of the other family', Buffer.from('PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n')],
    ['a v2 body past 512 bytes', Buffer.concat([v6(new Array(16).fill(1)).subarray(0, 14), Buffer.from([0x02, 0x01])])],
  ])('refuses %s', (_what, bytes) => {
    expect(() => parseProxyHeader(bytes)).toThrow(ProxyHeaderError);
  });
});
