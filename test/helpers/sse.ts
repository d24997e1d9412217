/** A Server-Sent Events client for tests: Node's fetch, the body read as a stream, frames parsed as they come. */
import { ADMIN_TOKEN, eventually, type TestServer } from './server.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
  /** `data` parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

export interface SseStream {
  status: number;
  contentType: string | null;
  /** Every event received so far, in order. */
  events: SseEvent[];
  /** Comment lines received (heartbeats), without the colon. */
  comments: string[];
  /** Whether the server ended the body. */
  ended: boolean;
  /** The error body of a refused stream (status other than 200). */
  error?: unknown;
  /** Waits until at least `count` events arrived (or `match` is met); returns the events. */
  waitFor(match: number | ((events: SseEvent[]) => boolean), ms?: number): Promise<SseEvent[]>;
  /** Waits until the server ended the stream. */
  waitForEnd(ms?: number): Promise<SseEvent[]>;
  close(): void;
}

/** Parses complete SSE frames from `buffer`; returns the events, comments and the unparsed rest. */
export function parseSse(buffer: string): { events: SseEvent[]; comments: string[]; rest: string } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const normalized = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalized.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let id: string | undefined;
    let event = 'message';
    const data: string[] = [];
    let hasData = false;
    for (const line of block.split('\n')) {
      if (line === '') continue;
      if (line.startsWith(':')) {
        comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') {
        data.push(value);
        hasData = true;
      }
    }
    if (!hasData) continue; // a retry: or comment-only block dispatches nothing
    const text = data.join('\n');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    events.push({ ...(id !== undefined ? { id } : {}), event, data: text, json });
  }
  return { events, comments, rest };
}

/** Opens a stream on the test server; resolves once the response headers are in. */
export async function openStream(
  server: TestServer,
  url: string,
  options: { token?: string | null; lastEventId?: string; headers?: Record<string, string> } = {},
): Promise<SseStream> {
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  const abort = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const res = await fetch(`${server.running.urls.http}${url}`, { headers, signal: abort.signal });
  const stream: SseStream = {
    status: res.status,
    contentType: res.headers.get('content-type'),
    events: [],
    comments: [],
    ended: false,
    waitFor: (match, ms = 5000) =>
      eventually(() => {
        const met = typeof match === 'number' ? stream.events.length >= match : match(stream.events);
        if (!met && stream.ended) throw new Error(`stream ended; got ${JSON.stringify(stream.events)}`);
        return met ? stream.events : undefined;
      }, ms),
    waitForEnd: (ms = 5000) => eventually(() => (stream.ended ? stream.events : undefined), ms),
    close: () => abort.abort(),
  };
  if (res.status !== 200) {
    const text = await res.text();
    stream.error = text ? JSON.parse(text) : undefined;
    stream.ended = true;
    return stream;
  }
  void (async () => {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const parsed = parseSse(buffer);
        buffer = parsed.rest;
        stream.events.push(...parsed.events);
        stream.comments.push(...parsed.comments);
      }
    } catch {
      // aborted by close(), or the server cut the connection
    }
    stream.ended = true;
  })();
  return stream;
}

/** The events of a stream as `type:deviceId` (or `type` when there is no deviceId), for compact assertions. */
export function summary(events: SseEvent[]): string[] {
  return events.map((e) => {
    const deviceId = (e.json as { deviceId?: string } | undefined)?.deviceId;
    return deviceId ? `${e.event}:${deviceId}` : e.event;
  });
}
