/**
 * Server-Sent Events (issue 3). The hub owns every open stream: it writes the events the
 * history records to the streams that want them, replays what a reconnecting client missed,
 * sends a heartbeat comment, drops clients that do not read, and ends every stream on shutdown
 * (`closeAll`, called before the HTTP server waits for its connections).
 */
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { EventHistory, type EventHistoryOptions, type StreamEvent, type StreamHistory } from '../core/event-history.js';
import type { EventBus } from '../core/events.js';

export interface StreamHubOptions {
  /** Interval of the `: heartbeat` comment (default 15 s). */
  heartbeatMs?: number;
  /** A live stream whose unsent data exceeds this is dropped (default 1 MiB). */
  maxBufferedBytes?: number;
  history?: EventHistoryOptions;
  /** Read this history instead of one of this process's own (nodes sharing Redis). */
  sharedHistory?: StreamHistory;
}

/** What a route asks the hub to open. */
export interface StreamSpec {
  applicationId: string;
  /** `device`: payloads in the REST shape of one device; `application`: with `deviceId`. */
  payload: 'device' | 'application';
  accepts(event: StreamEvent): boolean;
  /** Asked before each event and heartbeat: null while the client may still read; otherwise why not. */
  stillAllowed(): string | null;
  /** The `Last-Event-ID` header (or `lastEventId` query parameter), as sent. */
  lastEventId: string | undefined;
}

interface Stream {
  spec: StreamSpec;
  raw: ServerResponse;
  /** The id of the last event this stream has been given (sent or filtered out). */
  cursor: number;
  /** False while replaying from the history; live events are then read from there. */
  live: boolean;
  closed: boolean;
  release(): void;
}

const HEARTBEAT_MS = 15_000;
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Replay writes pause above this and resume on `drain`, so a replay never trips the live bound. */
const REPLAY_HIGH_WATER = 64 * 1024;
/** How long `closeAll` waits for a client to take its last bytes before cutting the connection. */
const CLOSE_GRACE_MS = 2_000;
/** Tells EventSource clients how soon to reconnect. */
const RETRY_MS = 2_000;

const frame = (event: string, data: unknown, id?: number): string =>
  `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

export class StreamHub {
  readonly history: StreamHistory;
  private readonly streams = new Set<Stream>();
  private readonly byApplication = new Map<string, Set<Stream>>();
  private readonly heartbeatMs: number;
  private readonly maxBufferedBytes: number;
  private heartbeat: NodeJS.Timeout | undefined;
  private closing = false;
  /** Streams dropped because their client did not keep up (for tests and diagnostics). */
  dropped = 0;

  constructor(bus: EventBus, options: StreamHubOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.history = options.sharedHistory ?? new EventHistory(bus, options.history);
    this.history.onEvent((event) => this.dispatch(event));
  }

  /** Open streams. */
  get size(): number {
    return this.streams.size;
  }

  /** Takes over the reply and starts the stream; authorization must be done already. */
  open(reply: FastifyReply, spec: StreamSpec): void {
    reply.hijack();
    const raw = reply.raw;
    raw.on('error', () => {}); // a client gone mid-write; 'close' cleans up
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    // HEAD (which Fastify answers for every GET route) gets the headers of a stream, not a stream.
    if (reply.request?.method === 'HEAD') {
      raw.end();
      return;
    }
    if (this.closing) {
      raw.end(frame('shutdown', { message: 'server shutting down' }));
      return;
    }
    const stream: Stream = {
      spec,
      raw,
      cursor: this.history.lastId,
      live: true,
      closed: false,
      release: this.history.watch(spec.applicationId),
    };
    this.streams.add(stream);
    let peers = this.byApplication.get(spec.applicationId);
    if (!peers) {
      peers = new Set();
      this.byApplication.set(spec.applicationId, peers);
    }
    peers.add(stream);
    raw.on('close', () => {
      this.remove(stream);
      if (!raw.writableEnded) raw.destroy(); // the client went away; nothing more to send
    });
    this.startHeartbeat();

    raw.write(`retry: ${RETRY_MS}\n\n`);
    if (spec.lastEventId !== undefined) {
      const last = /^\d{1,16}$/.test(spec.lastEventId.trim()) ? Number(spec.lastEventId.trim()) : Number.NaN;
      if (Number.isSafeInteger(last) && this.history.knows(last)) {
        stream.cursor = last;
        stream.live = false;
        void this.replay(stream);
      } else {
        this.write(
          stream,
          frame('gap', { message: 'Last-Event-ID is not an event id of this server', lastEventId: spec.lastEventId }),
        );
      }
    }
  }

  /** Ends every stream with `event: shutdown`; resolves once their clients have it (or were cut off). */
  async closeAll(): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const ending = [...this.streams].map((stream) => this.end(stream, 'shutdown', { message: 'server shutting down' }));
    this.history.close();
    await Promise.all(ending);
  }

  /**
   * Asks every open stream whether its client may still read it, and ends those that may not
   * with `event: closed`: called when rights were taken away (a token revoked, a role changed).
   */
  recheck(): void {
    for (const stream of [...this.streams]) {
      const refused = stream.spec.stillAllowed();
      if (refused !== null) void this.end(stream, 'closed', { message: refused });
    }
  }

  private dispatch(event: StreamEvent): void {
    const peers = this.byApplication.get(event.applicationId);
    if (!peers) return;
    for (const stream of peers) {
      if (!stream.live) continue; // replaying: it reads this event from the history
      stream.cursor = event.id;
      this.deliver(stream, event, true);
    }
  }

  /** Sends one event if the stream wants it; false when the stream ended instead. */
  private deliver(stream: Stream, event: StreamEvent, live: boolean): boolean {
    const refused = stream.spec.stillAllowed();
    if (refused !== null) {
      void this.end(stream, 'closed', { message: refused });
      return false;
    }
    if (!stream.spec.accepts(event)) return true;
    const data = stream.spec.payload === 'device' ? (event.deviceJson ?? event.json) : event.json;
    return this.write(stream, frame(event.type, data, event.id), live);
  }

  /** Sends what the client missed, from the history, then switches the stream to live. */
  private async replay(stream: Stream): Promise<void> {
    let gapSent = false;
    while (!stream.closed) {
      const { events, evictedUpTo } = await this.history.after(stream.spec.applicationId, stream.cursor);
      if (stream.cursor < evictedUpTo) {
        if (!gapSent) {
          const message = 'some events since Last-Event-ID are no longer kept; read the history over REST';
          if (!this.write(stream, frame('gap', { message, lastEventId: String(stream.cursor) }))) return;
          gapSent = true;
        }
        stream.cursor = evictedUpTo;
      }
      if (events.length === 0) {
        stream.live = true;
        return;
      }
      for (const event of events) {
        stream.cursor = event.id;
        if (!this.deliver(stream, event, false)) return;
        if (stream.raw.writableLength > REPLAY_HIGH_WATER) {
          await drained(stream.raw);
          break; // read on from the cursor: the history may have moved meanwhile
        }
      }
    }
  }

  /** Writes to the client; a live stream whose client does not keep up is dropped. */
  private write(stream: Stream, text: string, live = true): boolean {
    if (stream.closed) return false;
    stream.raw.write(text);
    if (live && stream.raw.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      stream.raw.destroy();
      this.remove(stream);
      return false;
    }
    return true;
  }

  private end(stream: Stream, event: string, data: unknown): Promise<void> {
    if (stream.closed) return Promise.resolve();
    const raw = stream.raw;
    this.remove(stream);
    return new Promise((resolve) => {
      const timer = setTimeout(() => raw.destroy(), CLOSE_GRACE_MS);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if (raw.destroyed) return done();
      raw.once('close', done);
      raw.end(frame(event, data));
    });
  }

  private remove(stream: Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream);
    const peers = this.byApplication.get(stream.spec.applicationId);
    peers?.delete(stream);
    if (peers?.size === 0) this.byApplication.delete(stream.spec.applicationId);
    stream.release();
    if (this.streams.size === 0) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const stream of this.streams) {
        const refused = stream.spec.stillAllowed();
        if (refused !== null) void this.end(stream, 'closed', { message: refused });
        else this.write(stream, ': heartbeat\n\n', stream.live);
      }
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }
}

/**
 * Connections that never sent a byte. Node's `server.close()` closes idle keep-alive
 * connections but waits for these until its headers timeout; fetch (undici) opens one as soon as
 * a stream it was reading is aborted, so every stream client leaves one behind. `destroy()`
 * closes them, at shutdown.
 */
export function unusedConnections(server: Server): { destroy(): void } {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    destroy() {
      for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
    },
  };
}

function drained(raw: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      raw.off('drain', done);
      raw.off('close', done);
      resolve();
    };
    raw.on('drain', done);
    raw.on('close', done);
  });
}
