/**
 * HTTPS for tests with a self-signed certificate: Node's fetch cannot be told which CA to trust,
 * so these use node:https with `ca`. JSON requests and Server-Sent Events streams.
 */
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { eventually } from './server.js';
import { parseSse, type SseEvent } from './sse.js';

export interface HttpsAnswer<T> {
  status: number;
  body: T;
  headers: IncomingHttpHeaders;
  /** Whether the connection that carried the answer was TLS, and the certificate the server showed. */
  encrypted: boolean;
  peerCommonName: string | undefined;
}

/** JSON over HTTPS, trusting `ca`; `token` is sent as a bearer token. */
export function httpsJson<T = unknown>(
  base: string,
  ca: Buffer,
  method: string,
  url: string,
  options: { token?: string; body?: unknown; agent?: https.Agent } = {},
): Promise<HttpsAnswer<T>> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = https.request(
      new URL(url, base),
      { method, headers, ca, ...(options.agent ? { agent: options.agent } : { agent: false }) },
      (res) => {
        const socket = res.socket as TLSSocket;
        const encrypted = socket.encrypted === true;
        const cn = socket.getPeerCertificate?.().subject?.CN;
        const peerCommonName = Array.isArray(cn) ? cn[0] : cn;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: (text ? JSON.parse(text) : undefined) as T,
            headers: res.headers,
            encrypted,
            peerCommonName,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface HttpsStream {
  status: number;
  events: SseEvent[];
  ended: boolean;
  waitFor(match: (events: SseEvent[]) => boolean, ms?: number): Promise<SseEvent[]>;
  waitForEnd(ms?: number): Promise<SseEvent[]>;
  close(): void;
}

/** Opens a Server-Sent Events stream over HTTPS; resolves once the response headers are in. */
export function openHttpsStream(base: string, ca: Buffer, url: string, token: string): Promise<HttpsStream> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      new URL(url, base),
      { ca, agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } },
      (res) => {
        const stream: HttpsStream = {
          status: res.statusCode ?? 0,
          events: [],
          ended: false,
          waitFor: (match, ms = 5000) =>
            eventually(() => {
              if (match(stream.events)) return stream.events;
              if (stream.ended) throw new Error(`stream ended; got ${JSON.stringify(stream.events)}`);
              return undefined;
            }, ms),
          waitForEnd: (ms = 5000) => eventually(() => (stream.ended ? stream.events : undefined), ms),
          close: () => req.destroy(),
        };
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          const parsed = parseSse(buffer);
          buffer = parsed.rest;
          stream.events.push(...parsed.events);
        });
        const end = () => {
          stream.ended = true;
        };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
        resolve(stream);
      },
    );
    req.on('error', reject);
  });
}
