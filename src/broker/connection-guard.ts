/**
 * Bounds on what one MQTT connection can make the server hold (docs/decisions.md, "MQTT").
 *
 * Inbound: aedes' parser (mqtt-packet) buffers a whole packet before anything sees it, so a
 * CONNECT that declares 256 MiB would be held until it arrives. The guard checks the
 * remaining length as soon as the fixed header is parsed and closes the connection before the
 * body is read: at most PRE_AUTH_BYTES in all until the client is authenticated, and at most
 * MAX_PACKET_BYTES per packet after.
 *
 * Outbound: aedes holds a delivery's callback until a backed-up socket drains, and its message
 * emitter serves a fixed number of messages at once for all clients and topics, state included.
 * A client that stops reading would hold those slots and stall every PUBACK. So a connection
 * may hold at most a few deliveries, and all connections together a share of the emitter's
 * slots (`WriteHolds`); past that, writes are not reported as backed up and the bytes wait in
 * the connection's buffer, which the broker bounds (`outboundBytes`, checked before every
 * delivery) by disconnecting a client that exceeds it. A replay of retained or queued messages
 * writes one message at a time, so it is paced by the client and never trips that bound.
 */
import type { Client } from 'aedes';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';

/** Everything a client may send before it is authenticated: its CONNECT, will included. */
export const PRE_AUTH_BYTES = 64 * 1024;
/** The largest packet after: a PUBLISH with the longest topic (2 + 65,535), a packet id (2) and a 256 KiB payload. */
export const MAX_PACKET_BYTES = 2 + 65_535 + 2 + MAX_PAYLOAD_BYTES;

/** The parts of mqtt-packet's parser the guard relies on (mqtt-packet 9). */
interface ParserInternals {
  packet: { length: number; cmd?: string };
  _parseLength(): boolean;
  _emitError(err: Error): void;
}

/** Where a guarded parser keeps its guard. */
const GUARD = Symbol('packetSizeGuard');

type GuardedParser = ParserInternals & { [GUARD]: PacketSizeGuard };

/**
 * The parser's length step, guarded: one function for every connection, which finds the
 * connection's guard on the parser (no closure per connection).
 */
function guardedParseLength(this: GuardedParser): boolean {
  const guard = this[GUARD];
  if (!guard.parseLength.call(this)) return false;
  const refusal = guard.check(this.packet.length);
  if (refusal === null) return true;
  this._emitError(new Error(refusal));
  return false;
}

export class PacketSizeGuard {
  private budget = PRE_AUTH_BYTES;
  private authenticated = false;
  /** The parser's own length step, which the guarded one calls first. */
  readonly parseLength: () => boolean;

  /** Watches the parser of one aedes client. */
  constructor(client: Client) {
    const parser = (client as unknown as { _parser?: ParserInternals })._parser;
    if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
      // A changed aedes or mqtt-packet must not silently lose the bound.
      throw new Error('the MQTT parser has changed: the packet size guard cannot be installed');
    }
    this.parseLength = parser._parseLength;
    (parser as GuardedParser)[GUARD] = this;
    parser._parseLength = guardedParseLength;
  }

  /** The guard installed on an aedes client's parser, if any. */
  static of(client: Client): PacketSizeGuard | undefined {
    return (client as unknown as { _parser?: Partial<GuardedParser> })._parser?.[GUARD];
  }

  /** The client is authenticated: from now on each packet may be up to MAX_PACKET_BYTES. */
  accept(): void {
    this.authenticated = true;
  }

  /** Null when a packet of `length` remaining bytes may be read; otherwise why not. */
  check(length: number): string | null {
    if (this.authenticated) {
      return length > MAX_PACKET_BYTES ? `Packet too large: ${length} bytes, at most ${MAX_PACKET_BYTES}` : null;
    }
    this.budget -= length;
    return this.budget < 0
      ? `Packet too large: more than ${PRE_AUTH_BYTES} bytes before the connection was authenticated`
      : null;
  }
}

/** A connection as WriteHolds wraps it. */
interface HeldStream {
  write: (...args: never[]) => boolean;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'close', listener: () => void): unknown;
}

/** Where a wrapped connection keeps its own `write`. */
const WRITE = Symbol('unheldWrite');

type WrappedStream = HeldStream & { [WRITE]: HeldStream['write'] };

/** The holds of one backed-up connection, until it drains or closes. */
interface Hold {
  count: number;
}

/**
 * How many deliveries backed-up connections may hold at once (see the module comment): at
 * most `perConnection` each and `total` together. A connection's holds end when it drains or
 * closes. Only a connection that holds one costs more than its wrapped `write`: its count and
 * its `drain` and `close` listeners live while it holds.
 */
export class WriteHolds {
  private held = 0;
  private readonly holding = new Map<WrappedStream, Hold>();
  /** Every wrapped connection's `write`: one function, `this` being the connection. */
  private readonly write: HeldStream['write'];

  constructor(
    private readonly perConnection: number,
    private readonly total: number,
  ) {
    const holds = this;
    // Three parameters, not a rest parameter: no array per write (several per PUBACK).
    this.write = function heldWrite(this: WrappedStream, chunk: never, encoding: never, callback: never): boolean {
      if (this[WRITE](chunk, encoding, callback)) return true;
      return holds.hold(this);
    } as HeldStream['write'];
  }

  get size(): number {
    return this.held;
  }

  /** Wraps a connection's `write` so that backpressure is reported only within the holds. */
  wrap(stream: HeldStream): void {
    const wrapped = stream as WrappedStream;
    wrapped[WRITE] = stream.write;
    stream.write = this.write;
  }

  /** A write the connection could not take: whether it may report backpressure (a hold). */
  private hold(stream: WrappedStream): boolean {
    if (this.held >= this.total) return true;
    let hold = this.holding.get(stream);
    if (hold && hold.count >= this.perConnection) return true;
    if (!hold) {
      const release = () => {
        stream.removeListener('drain', release);
        stream.removeListener('close', release);
        const ended = this.holding.get(stream);
        if (ended === undefined) return;
        this.held -= ended.count;
        this.holding.delete(stream);
      };
      hold = { count: 0 };
      this.holding.set(stream, hold);
      stream.once('drain', release);
      stream.once('close', release);
    }
    hold.count++;
    this.held++;
    return false;
  }
}

/** Bytes written to a connection and not yet handed to the operating system. */
export function outboundBytes(conn: unknown): number {
  return (conn as { writableLength?: number }).writableLength ?? 0;
}
