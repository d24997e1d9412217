/**
 * Histograms read from a server's /metrics (Prometheus text): two readings bound a measured window,
 * their difference is the window's, and its quantiles are estimated as Prometheus's
 * `histogram_quantile` does (linear within the bucket that holds the rank). The estimate is only as
 * fine as the buckets: between 25 and 50 ms it may be off by half the bucket.
 */
export interface Histogram {
  /** Upper bounds in seconds, ascending, without +Inf. */
  bounds: number[];
  /** Cumulative counts per bound, then one for +Inf. */
  cumulative: number[];
  sum: number;
}

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The unlabelled histogram `name` in `text`, or undefined when the text has none. */
export function parseHistogram(text: string, name: string): Histogram | undefined {
  const bucket = new RegExp(`^${literal(name)}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm');
  const bounds: number[] = [];
  const cumulative: number[] = [];
  for (const m of text.matchAll(bucket)) {
    if (m[1] !== '+Inf') bounds.push(Number(m[1]));
    cumulative.push(Number(m[2]));
  }
  if (cumulative.length === 0) return undefined;
  const sum = Number(new RegExp(`^${literal(name)}_sum (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { bounds, cumulative, sum };
}

/** What was observed between two readings of one histogram. */
export function histogramSince(after: Histogram, before: Histogram | undefined): Histogram {
  if (!before) return after;
  return {
    bounds: after.bounds,
    cumulative: after.cumulative.map((c, i) => c - (before.cumulative[i] ?? 0)),
    sum: after.sum - before.sum,
  };
}

export const histogramCount = (h: Histogram): number => h.cumulative.at(-1) ?? 0;

/** The q-quantile (0..1) in seconds; NaN when nothing was observed, the top bound when it lies beyond it. */
export function histogramQuantile(h: Histogram, q: number): number {
  const total = histogramCount(h);
  if (total === 0) return Number.NaN;
  const rank = q * total;
  for (let i = 0; i < h.bounds.length; i++) {
    const below = i === 0 ? 0 : (h.cumulative[i - 1] as number);
    const upTo = h.cumulative[i] as number;
    if (upTo >= rank) {
      const lower = i === 0 ? 0 : (h.bounds[i - 1] as number);
      const upper = h.bounds[i] as number;
      return upTo === below ? upper : lower + ((upper - lower) * (rank - below)) / (upTo - below);
    }
  }
  return h.bounds.at(-1) ?? Number.NaN;
}

/** Reads the named histograms from the server's /metrics; an unreachable server gives none. */
export async function readHistograms(httpUrl: string, names: string[]): Promise<Map<string, Histogram>> {
  const found = new Map<string, Histogram>();
  try {
    const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    for (const name of names) {
      const h = parseHistogram(text, name);
      if (h) found.set(name, h);
    }
  } catch {
    // The note that uses them says they are missing.
  }
  return found;
}
