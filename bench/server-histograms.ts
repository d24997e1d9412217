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

/**
 * The histogram `name` in `text`: the unlabelled one, or with `label` (such as `kind="major"`) the
 * series that has it besides `le`. Undefined when the text has none.
 */
export function parseHistogram(text: string, name: string, label?: string): Histogram | undefined {
  const others = label === undefined ? '' : `,${literal(label)}`;
  const bucket = new RegExp(`^${literal(name)}_bucket\\{le="([^"]+)"${others}\\} (\\S+)$`, 'gm');
  const bounds: number[] = [];
  const cumulative: number[] = [];
  for (const m of text.matchAll(bucket)) {
    if (m[1] !== '+Inf') bounds.push(Number(m[1]));
    cumulative.push(Number(m[2]));
  }
  if (cumulative.length === 0) return undefined;
  const labels = label === undefined ? '' : `\\{${literal(label)}\\}`;
  const sum = Number(new RegExp(`^${literal(name)}_sum${labels} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { bounds, cumulative, sum };
}

/** The value of the unlabelled gauge or counter `name` in `text`, NaN when absent. */
export function parseValue(text: string, name: string): number {
  return Number(new RegExp(`^${literal(name)} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
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

/** The server's /metrics text, or '' when it cannot be read (the notes that use it say so). */
export async function readMetrics(httpUrl: string): Promise<string> {
  try {
    return await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  } catch {
    return '';
  }
}
