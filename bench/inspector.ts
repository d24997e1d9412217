/**
 * A minimal client of the server's inspector (node's `--inspect`), for the memory breakdown of
 * scenario d: forced garbage collection, `process.memoryUsage()` read inside the server, and
 * heap snapshots written to a file. Only the few DevTools protocol methods used here.
 */
import { createWriteStream } from 'node:fs';
import WebSocket from 'ws';
import type { Cleanups } from './report.js';
import { fmt } from './stats.js';

/** The `--inspect` flag that lets the server's node pick a free loopback port. */
export const INSPECT_ARG = '--inspect=127.0.0.1:0';

/** The inspector's address, from the line node prints on stderr (`Debugger listening on ws://…`). */
export function inspectorUrl(output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
}

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** A sampled allocation profile (DevTools' `.heapprofile`). */
export interface SamplingProfile {
  head: SamplingNode;
  samples: Array<{ size: number; nodeId: number; ordinal: number }>;
}

export interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  id: number;
  children: SamplingNode[];
}

const frameName = (node: SamplingNode): string => {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url
    ? `${url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${lineNumber + 1}`
    : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};

/**
 * Bytes allocated in a profile: by the function that allocated them (`name file:line`), and by
 * the innermost of our own functions (dist/src) on the stack; largest first.
 */
export function allocationSites(profile: SamplingProfile): {
  byFunction: Array<[string, number]>;
  byOurs: Array<[string, number]>;
} {
  const byFunction = new Map<string, number>();
  const byOurs = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, bytes: number) => map.set(key, (map.get(key) ?? 0) + bytes);
  const visit = (node: SamplingNode, ours: string) => {
    const name = frameName(node);
    // dist/src/ of this build, or of a copy beside it (dist-A/src/, for comparing builds).
    const inner = /\/dist[^/]*\/src\//.test(node.callFrame.url) ? name : ours;
    if (node.selfSize > 0) {
      add(byFunction, name, node.selfSize);
      add(byOurs, inner, node.selfSize);
    }
    for (const child of node.children) visit(child, inner);
  };
  visit(profile.head, '(none of ours on the stack)');
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { byFunction: sorted(byFunction), byOurs: sorted(byOurs) };
}

/**
 * The two report notes on an allocation profile: what it sampled per unit in all and at its 12
 * largest sites by function, then the same by the innermost of our own functions.
 */
export function allocationNotes(
  profile: SamplingProfile,
  label: string,
  sampled: string,
  count: number,
  unit: string,
): [string, string] {
  const sites = allocationSites(profile);
  const per = (bytes: number) => fmt(bytes / Math.max(1, count));
  const top = (rows: Array<[string, number]>) =>
    rows
      .slice(0, 12)
      .map(([site, bytes]) => `${per(bytes)} B ${site}`)
      .join('; ');
  const total = sites.byFunction.reduce((sum, [, bytes]) => sum + bytes, 0);
  return [
    `${label}: ${sampled}: ${per(total)} B per ${unit}; by function: ${top(sites.byFunction)}`,
    `${label}: the same by the innermost of our functions on the stack: ${top(sites.byOurs)}`,
  ];
}

export class Inspector {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private onChunk: ((chunk: string) => void) | undefined;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: { chunk?: string };
      };
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') {
        this.onChunk?.(message.params?.chunk ?? '');
        return;
      }
      const entry = message.id === undefined ? undefined : this.waiting.get(message.id);
      if (!entry || message.id === undefined) return;
      this.waiting.delete(message.id);
      if (message.error) entry.reject(new Error(message.error.message));
      else entry.resolve(message.result);
    });
  }

  /**
   * Connects to the inspector of a server started with INSPECT_ARG (`label` names the scenario in
   * the error when it printed none), and closes the connection with `cleanups`: a server waits at
   * exit until its inspector's client is gone.
   */
  static async attach(server: { output(): string }, label: string, cleanups: Cleanups): Promise<Inspector> {
    const url = inspectorUrl(server.output());
    if (!url) throw new Error(`${label}: the server printed no inspector address`);
    const inspector = await Inspector.connect(url);
    cleanups.add(async () => inspector.close());
    return inspector;
  }

  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  private call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** A full collection, twice (the second frees what finalizers of the first released). */
  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
  }

  /** `process.memoryUsage()` of the server, in bytes. */
  async memoryUsage(): Promise<MemoryUsage> {
    const r = await this.call<{ result: { value: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    return JSON.parse(r.result.value) as MemoryUsage;
  }

  /** Writes a heap snapshot of the server to `file` (it costs the server memory of its own). */
  async heapSnapshot(file: string): Promise<void> {
    const out = createWriteStream(file);
    this.onChunk = (chunk) => out.write(chunk);
    try {
      await this.call('HeapProfiler.enable');
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.onChunk = undefined;
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
  }

  /**
   * Starts the sampling heap profiler. With `keepScavenged` false, objects a scavenge freed are
   * left out of the profile: what remains is what survived the young generation (live, or freed
   * later by a full collection).
   */
  async startSampling(intervalBytes: number, keepScavenged: boolean): Promise<void> {
    await this.call('HeapProfiler.enable');
    await this.call('HeapProfiler.startSampling', {
      samplingInterval: intervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: keepScavenged,
    });
  }

  async stopSampling(): Promise<SamplingProfile> {
    const r = await this.call<{ profile: SamplingProfile }>('HeapProfiler.stopSampling');
    return r.profile;
  }

  close(): void {
    this.ws.close();
  }
}
