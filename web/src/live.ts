/**
 * Live data over Server-Sent Events (docs/streams-and-logs.md). EventSource reconnects by itself
 * with Last-Event-ID, so nothing is missed across a short drop. Every open stream reports its
 * state to one indicator in the header.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

export type LiveStatus = 'connecting' | 'live' | 'down' | 'idle';

const open = new Map<number, LiveStatus>();
const watchers = new Set<(s: LiveStatus) => void>();
let nextId = 0;

function overall(): LiveStatus {
  const states = [...open.values()];
  if (states.length === 0) return 'idle';
  if (states.includes('down')) return 'down';
  if (states.includes('connecting')) return 'connecting';
  return 'live';
}
function report(id: number, s: LiveStatus | undefined): void {
  if (s === undefined) open.delete(id);
  else open.set(id, s);
  const o = overall();
  for (const w of watchers) w(o);
}

/** The state of all open streams together, for the header's indicator. */
export function useLiveStatus(): LiveStatus {
  const [s, set] = useState<LiveStatus>(overall());
  useEffect(() => {
    watchers.add(set);
    return () => {
      watchers.delete(set);
    };
  }, []);
  return s;
}

/**
 * Opens `url` (when defined) and calls `handlers[event]` with each event's parsed data. The
 * handlers may change between renders without reopening the stream.
 */
export function useEventStream(url: string | undefined, handlers: Record<string, (data: never) => void>): LiveStatus {
  const ref = useRef(handlers);
  ref.current = handlers;
  const [status, setStatus] = useState<LiveStatus>('idle');
  useEffect(() => {
    if (!url) return;
    const id = nextId++;
    const set = (s: LiveStatus) => {
      setStatus(s);
      report(id, s);
    };
    set('connecting');
    const source = new EventSource(url, { withCredentials: true });
    source.onopen = () => set('live');
    source.onerror = () => set(source.readyState === EventSource.CLOSED ? 'down' : 'connecting');
    const names = Object.keys(ref.current);
    for (const name of names) {
      source.addEventListener(name, (e) => {
        let data: unknown;
        try {
          data = JSON.parse((e as MessageEvent<string>).data);
        } catch {
          return;
        }
        ref.current[name]?.(data as never);
      });
    }
    // The server ended the stream for good (rights changed, device deleted, shutdown).
    source.addEventListener('closed', () => {
      source.close();
      set('down');
    });
    return () => {
      source.close();
      report(id, undefined);
    };
  }, [url]);
  return status;
}
