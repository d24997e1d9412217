/** Reads the Prometheus text format a test server's /metrics answers, for assertions on what moved. */
import { ADMIN_TOKEN, type TestServer } from './server.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One scrape: every sample, and the declared type of each metric family. */
export class Scrape {
  readonly samples: Sample[] = [];
  readonly types = new Map<string, string>();

  constructor(readonly text: string) {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) {
        this.types.set(type[1] as string, type[2] as string);
        continue;
      }
      if (line.startsWith('#')) continue;
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
      if (!sample) throw new Error(`not a Prometheus sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, key, value] of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[key as string] = (value as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
      this.samples.push({ name: sample[1] as string, labels, value: Number(sample[3]) });
    }
  }

  /** The one sample of `name` having at least these labels; throws when there is none or several. */
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    if (found.length !== 1) {
      throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
    }
    return (found[0] as Sample).value;
  }
}

/** GET /metrics with an optional bearer token; the raw answer. */
export async function fetchMetrics(server: TestServer, token?: string): Promise<Response> {
  return fetch(`${server.running.urls.http}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

/** A scrape of the server's /metrics (throws unless 200). */
export async function scrape(server: TestServer, token?: string): Promise<Scrape> {
  const res = await fetchMetrics(server, token);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${text}`);
  return new Scrape(text);
}

/** How much each listed series moved between two scrapes. */
export function moved(
  before: Scrape,
  after: Scrape,
  series: Array<[name: string, labels?: Record<string, string>]>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, labels = {}] of series) {
    const key = Object.keys(labels).length ? `${name}${JSON.stringify(labels)}` : name;
    out[key] = after.value(name, labels) - before.value(name, labels);
  }
  return out;
}

export { ADMIN_TOKEN };
