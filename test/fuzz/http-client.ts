/**
 * Raw HTTP/1.1 requests over keep-alive connections (node:http): any method, path, headers and
 * body bytes, no client-side validation beyond what Node itself enforces.
 */
import http from 'node:http';
import type { HttpRequest } from './cases.js';

export interface HttpAnswer {
  status: number;
  /** Up to `keepBytes` of the body. */
  body: string;
  /** True for a live stream (Server-Sent Events): only its status was awaited. */
  stream: boolean;
}

export type HttpOutcome =
  | { ok: true; answer: HttpAnswer }
  /** `refused`: Node would not send it (an invalid header or path); `failed`: the connection broke. */
  | { ok: false; kind: 'refused' | 'failed' | 'timeout'; error: string };

export class HttpClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly baseUrl: string,
    sockets: number,
    private readonly timeoutMs = 5_000,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  }

  request(req: HttpRequest, keepBytes = 4096, timeoutMs = this.timeoutMs): Promise<HttpOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: HttpOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        done({ ok: false, kind: 'timeout', error: `no answer within ${timeoutMs} ms` });
        r?.destroy();
      }, timeoutMs);
      let r: http.ClientRequest | undefined;
      try {
        const url = new URL(this.baseUrl);
        const headers: http.OutgoingHttpHeaders = { ...req.headers };
        if (req.body) headers['content-length'] = String(req.body.length);
        r = http.request({
          host: url.hostname,
          port: url.port,
          method: req.method,
          path: req.path,
          headers,
          agent: this.agent,
        });
      } catch (err) {
        done({ ok: false, kind: 'refused', error: (err as Error).message });
        return;
      }
      r.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          // A live stream never ends by itself: its status is the answer.
          done({ ok: true, answer: { status, body: '', stream: true } });
          res.destroy();
          r?.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept < keepBytes) {
            chunks.push(chunk);
            kept += chunk.length;
          }
        });
        res.on('end', () =>
          done({
            ok: true,
            answer: { status, body: Buffer.concat(chunks).subarray(0, keepBytes).toString('utf8'), stream: false },
          }),
        );
        res.on('error', (err) => done({ ok: false, kind: 'failed', error: err.message }));
      });
      r.on('error', (err) => done({ ok: false, kind: 'failed', error: err.message }));
      if (req.body) r.end(req.body);
      else r.end();
    });
  }

  /** A whole JSON answer, for the oracle's snapshots. */
  async getJson<T>(path: string, token: string): Promise<{ status: number; body: T }> {
    const outcome = await this.request(
      { method: 'GET', path, headers: { authorization: `Bearer ${token}` }, body: null },
      Number.POSITIVE_INFINITY,
      120_000,
    );
    if (!outcome.ok) throw new Error(`GET ${path}: ${outcome.kind}: ${outcome.error}`);
    return { status: outcome.answer.status, body: JSON.parse(outcome.answer.body) as T };
  }

  close(): void {
    this.agent.destroy();
  }
}
