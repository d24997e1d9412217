/**
 * Bounds on what one MQTT connection can make the server hold (docs/decisions.md, "MQTT").
 *
 * Inbound: aedes' parser (mqtt-packet) buffers a whole packet before anything sees it, so a
 * CONNECT that declares 256 MiB would be held until it arrives. The guard checks the
 * remaining length as soon as the fixed header is parsed and closes the connection before the
 * body is read: at most PRE_AUTH_BYTES in all until the client is authenticated, and at most
 * MAX_PACKET_BYTES per packet after.
 *
 * Outbound: aedes holds each delivery's callback until a backed-up socket drains, and its
 * message emitter serves at most a fixed number of messages at once, so one client that stops
 * reading stalls delivery (and the PUBACKs that wait on it) for every client. Writes are
 * therefore never reported as backed up to aedes; instead the broker bounds what each client
 * has waiting (`outboundBytes`, checked before every delivery) and disconnects a client that
 * exceeds it.
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
 * Makes a connection's writes never report backpressure to aedes (see the module comment);
 * what waits to be sent is bounded by the broker with `outboundBytes` instead.
 */
export function decoupleWrites(stream: { write: (...args: never[]) => boolean }): void {
  const write = stream.write;
  stream.write = function writeWithoutBackpressure(this: unknown, ...args: never[]): boolean {
    write.apply(this, args);
    return true;
  };
}

/** Bytes written to a connection and not yet handed to the operating system. */
export function outboundBytes(conn: unknown): number {
  return (conn as { writableLength?: number }).writableLength ?? 0;
}
