/**
 * HTTPS on the HTTP port: one listener for plain HTTP and TLS. The first byte a client sends
 * tells them apart (a TLS connection opens with a handshake record, content type 0x16, which no
 * HTTP method starts with). A plain connection goes to the HTTP server as it is; a TLS one is
 * wrapped in a server-side TLSSocket with the configured certificate, and the HTTP server gets
 * it once the handshake is done, so REST, streams and the WebSocket upgrade at /mqtt behave the
 * same on both, and `request.protocol` is `https` on the second.
 *
 * The HTTP server keeps listening on the port itself (Fastify's listen and close, the start-up
 * errors, its connection tracking and timeouts stay as they are): only its 'connection'
 * listeners are moved behind the sniffing.
 */
import type { Server } from 'node:http';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from './logger.js';

/** The first byte of every TLS connection: a handshake record. */
const TLS_HANDSHAKE = 0x16;

/**
 * A connection gets this long (ms) to send its first byte and, when it speaks TLS, to finish
 * its handshake. A handshake over a slow cellular link takes a few round trips of a second or two.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

export interface HttpTlsOptions {
  secureContext: tls.SecureContext;
  logger: Logger;
  /** Default DEFAULT_HANDSHAKE_TIMEOUT_MS. */
  handshakeTimeoutMs?: number;
}

export interface HttpTls {
  /** Connections not yet handed to the HTTP server (waiting for a first byte, or in a TLS handshake). */
  readonly pending: number;
  /** Destroys the pending connections, and every new one from now on (shutdown). */
  close(): void;
}

/**
 * Puts the TLS sniffing in front of `server`'s current 'connection' listeners. Listeners added
 * later get every raw socket at once, before sniffing.
 */
export function acceptTlsOnHttpServer(server: Server, options: HttpTlsOptions): HttpTls {
  const { secureContext, logger } = options;
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const handlers = server.listeners('connection') as Array<(socket: net.Socket) => void>;
  server.removeAllListeners('connection');
  const handOver = (socket: net.Socket) => {
    for (const handler of handlers) handler.call(server, socket);
  };
  const pending = new Set<net.Socket>();
  let closed = false;

  server.on('connection', (socket: net.Socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    const peer = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
    pending.add(socket);
    let secure: tls.TLSSocket | undefined;
    const fail = (why: string, err?: Error) => {
      logger.debug({ ...peer, ...(err ? { err } : {}) }, why);
      secure?.destroy();
      socket.destroy();
    };
    const timer = setTimeout(
      () => fail(secure ? 'TLS handshake timed out' : 'connection sent nothing in time'),
      timeoutMs,
    );
    timer.unref();
    const settle = () => {
      clearTimeout(timer);
      pending.delete(socket);
    };
    const onRawError = (err: Error) => fail('connection failed before its first request', err);
    // The HTTP server allows half-open sockets: a client that ends its side first is let go here.
    const onRawEnd = () => fail('connection ended before its first byte');
    socket.on('error', onRawError);
    socket.once('end', onRawEnd);
    socket.once('close', settle);

    socket.once('data', (chunk: Buffer) => {
      // Put the byte back: whoever reads next sees the connection from its start.
      socket.pause();
      socket.unshift(chunk);
      socket.off('end', onRawEnd);
      if (chunk[0] !== TLS_HANDSHAKE) {
        settle();
        socket.off('close', settle);
        socket.off('error', onRawError);
        handOver(socket);
        socket.resume();
        return;
      }
      // The TLSSocket reads what the socket holds (the record just put back) and then the rest.
      const tlsSocket = new tls.TLSSocket(socket, { isServer: true, secureContext });
      secure = tlsSocket;
      const onTlsError = (err: Error) => fail('TLS handshake failed', err);
      const onTlsEnd = () => fail('connection ended during the TLS handshake');
      tlsSocket.on('error', onTlsError);
      tlsSocket.once('end', onTlsEnd);
      // 'secure': a server-side TLSSocket finished its handshake (what tls.Server listens to).
      tlsSocket.once('secure', () => {
        settle();
        tlsSocket.off('error', onTlsError);
        tlsSocket.off('end', onTlsEnd);
        // The HTTP server handles the TLS socket's errors from here. The raw socket keeps a
        // listener, so that an error on it can never go unhandled and end the process.
        socket.off('error', onRawError);
        socket.on('error', () => socket.destroy());
        handOver(tlsSocket);
      });
    });
  });

  return {
    get pending() {
      return pending.size;
    },
    close() {
      closed = true;
      for (const socket of pending) socket.destroy();
      pending.clear();
    },
  };
}
