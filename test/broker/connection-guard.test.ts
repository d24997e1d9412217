import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { MAX_PACKET_BYTES, PacketSizeGuard, PRE_AUTH_BYTES, WriteHolds } from '../../src/broker/connection-guard.js';

/** A stand-in for aedes' client carrying a parser with the two methods the guard wraps. */
function clientWithParser() {
  const errors: string[] = [];
  const parser = {
    packet: { length: -1 },
    next: 0,
    _parseLength(): boolean {
      this.packet.length = this.next;
      return true;
    },
    _emitError(err: Error) {
      errors.push(err.message);
    },
  };
  return { client: { _parser: parser } as never, parser, errors };
}

describe('PacketSizeGuard', () => {
  it('allows PRE_AUTH_BYTES in all before authentication, then MAX_PACKET_BYTES per packet', () => {
    const guard = new PacketSizeGuard(clientWithParser().client);
    expect(guard.check(PRE_AUTH_BYTES - 10)).toBeNull();
    expect(guard.check(10)).toBeNull();
    expect(guard.check(1)).toMatch(/before the connection was authenticated/);
    const fresh = new PacketSizeGuard(clientWithParser().client);
    fresh.accept();
    expect(fresh.check(MAX_PACKET_BYTES)).toBeNull();
    expect(fresh.check(MAX_PACKET_BYTES)).toBeNull();
    expect(fresh.check(MAX_PACKET_BYTES + 1)).toBe(
      `Packet too large: ${MAX_PACKET_BYTES + 1} bytes, at most ${MAX_PACKET_BYTES}`,
    );
  });

  it('stops the parser at the fixed header of a packet that is too large', () => {
    const { client, parser, errors } = clientWithParser();
    new PacketSizeGuard(client);
    parser.next = 100;
    expect(parser._parseLength()).toBe(true);
    parser.next = 256 * 1024 * 1024;
    expect(parser._parseLength()).toBe(false);
    expect(errors).toEqual([expect.stringMatching(/^Packet too large/)]);
  });

  it('is found again through the client, and guards each parser with its own budget', () => {
    const one = clientWithParser();
    const two = clientWithParser();
    const guard = new PacketSizeGuard(one.client);
    new PacketSizeGuard(two.client);
    expect(PacketSizeGuard.of(one.client)).toBe(guard);
    expect(PacketSizeGuard.of({ _parser: {} } as never)).toBeUndefined();
    PacketSizeGuard.of(one.client)?.accept();
    one.parser.next = PRE_AUTH_BYTES + 1;
    two.parser.next = PRE_AUTH_BYTES + 1;
    expect(one.parser._parseLength()).toBe(true);
    expect(two.parser._parseLength()).toBe(false);
    expect(one.errors).toEqual([]);
    expect(two.errors).toEqual([expect.stringMatching(/before the connection was authenticated/)]);
  });

  it('refuses to install on a parser it does not know', () => {
    expect(() => new PacketSizeGuard({ _parser: {} } as never)).toThrow(/parser has changed/);
  });
});

describe('WriteHolds', () => {
  /** A connection whose writes report backpressure while `full` is set. */
  function connection() {
    const conn = new EventEmitter() as EventEmitter & { full: boolean; write: (...args: never[]) => boolean };
    conn.full = false;
    conn.write = () => !conn.full;
    return conn;
  }

  it('reports backpressure for a few writes per connection, then no more until it drains', () => {
    const holds = new WriteHolds(2, 10);
    const conn = connection();
    holds.wrap(conn);
    expect(conn.write()).toBe(true);
    conn.full = true;
    expect([conn.write(), conn.write(), conn.write()]).toEqual([false, false, true]);
    expect(holds.size).toBe(2);
    conn.full = false;
    conn.emit('drain');
    expect(holds.size).toBe(0);
    conn.full = true;
    expect(conn.write()).toBe(false);
  });

  it('listens to a connection only while it holds a write', () => {
    const holds = new WriteHolds(2, 10);
    const conn = connection();
    holds.wrap(conn);
    expect(conn.write()).toBe(true);
    expect([conn.listenerCount('close'), conn.listenerCount('drain')]).toEqual([0, 0]);
    conn.full = true;
    expect([conn.write(), conn.write()]).toEqual([false, false]);
    expect([conn.listenerCount('close'), conn.listenerCount('drain')]).toEqual([1, 1]);
    conn.emit('drain');
    expect([conn.listenerCount('close'), conn.listenerCount('drain')]).toEqual([0, 0]);
    expect(holds.size).toBe(0);
  });

  it('passes each write on with its arguments and its connection', () => {
    const holds = new WriteHolds(2, 10);
    const conn = connection();
    const seen: unknown[][] = [];
    conn.write = function (this: unknown, ...args: never[]) {
      seen.push([this === conn, ...args]);
      return true;
    };
    holds.wrap(conn);
    const done = () => {};
    expect((conn.write as (...a: unknown[]) => boolean)('x', 'utf8', done)).toBe(true);
    expect(seen).toEqual([[true, 'x', 'utf8', done]]);
  });

  it('shares a total between connections, and frees a closed connection’s holds', () => {
    const holds = new WriteHolds(2, 3);
    const [a, b] = [connection(), connection()];
    holds.wrap(a);
    holds.wrap(b);
    a.full = true;
    b.full = true;
    expect([a.write(), a.write(), b.write(), b.write()]).toEqual([false, false, false, true]);
    a.emit('close');
    expect(holds.size).toBe(1);
    expect(b.write()).toBe(false);
  });
});
