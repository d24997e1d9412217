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

export class PacketSizeGuard {
  private budget = PRE_AUTH_BYTES;
  private authenticated = false;

  /** Watches the parser of one aedes client. */
  constructor(client: Client) {
    const parser = (client as unknown as { _parser?: ParserInternals })._parser;
    if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
      // A changed aedes or mqtt-packet must not silently lose the bound.
      throw new Error('the MQTT parser has changed: the packet size guard cannot be installed');
    }
    const parseLength = parser._parseLength;
    const guard = this;
    parser._parseLength = function guardedParseLength(this: ParserInternals): boolean {
      if (!parseLength.call(this)) return false;
      const refusal = guard.check(this.packet.length);
      if (refusal === null) return true;
      this._emitError(new Error(refusal));
      return false;
    };
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

/**
 * How many deliveries backed-up connections may hold at once (see the module comment): at
 * most `perConnection` each and `total` together. A connection's holds end when it drains or
 * closes.
 */
export class WriteHolds {
  private held = 0;

  constructor(
    private readonly perConnection: number,
    private readonly total: number,
  ) {}

  get size(): number {
    return this.held;
  }

  /** Wraps a connection's `write` so that backpressure is reported only within the holds. */
  wrap(stream: {
    write: (...args: never[]) => boolean;
    once(event: 'drain' | 'close', listener: () => void): unknown;
  }): void {
    const write = stream.write;
    let mine = 0;
    let waiting = false;
    const release = () => {
      this.held -= mine;
      mine = 0;
      waiting = false;
    };
    stream.once('close', release);
    stream.write = (...args: never[]): boolean => {
      if (write.apply(stream, args)) return true;
      if (mine >= this.perConnection || this.held >= this.total) return true;
      mine++;
      this.held++;
      if (!waiting) {
        waiting = true;
        stream.once('drain', release);
      }
      return false;
    };
  }
}

/** Bytes written to a connection and not yet handed to the operating system. */
export function outboundBytes(conn: unknown): number {
  return (conn as { writableLength?: number }).writableLength ?? 0;
}
