/** Latency samples, percentiles and the result table. */

/** Publish-to-acknowledgement times in milliseconds. */
export class Latencies {
  private samples = new Float64Array(1024);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  /** Nearest-rank percentile (p in 0..100); NaN without samples. */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    const sorted = this.samples.slice(0, this.n).sort();
    const rank = Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1));
    return sorted[rank] as number;
  }
}

export interface Row {
  scenario: string;
  messages: number | string;
  /** Stored states/s for Gatehouse, relayed messages/s for Mosquitto. */
  perSecond: number | string;
  p50: number | string;
  p99: number | string;
  cpuUsPerMsg: number | string;
  rssMb: number | string;
}

const COLUMNS: Array<[keyof Row, string]> = [
  ['scenario', 'scenario'],
  ['messages', 'messages'],
  ['perSecond', 'stored (relayed) /s'],
  ['p50', 'p50 ack ms'],
  ['p99', 'p99 ack ms'],
  ['cpuUsPerMsg', 'server CPU µs/msg'],
  ['rssMb', 'server RSS MB'],
];

export function fmt(value: number | string, digits = 0): string {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** An aligned text table (also valid Markdown), numbers right-aligned. */
export function table(rows: Row[]): string {
  const cells = rows.map((row) =>
    COLUMNS.map(([key]) => {
      const v = row[key];
      if (typeof v === 'string') return v;
      const digits = key === 'p50' || key === 'p99' ? 2 : key === 'cpuUsPerMsg' || key === 'rssMb' ? 1 : 0;
      return fmt(v, digits);
    }),
  );
  const widths = COLUMNS.map(([, title], i) => Math.max(title.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (values: string[], numeric: boolean) =>
    `| ${values
      .map((v, i) => {
        const w = widths[i] ?? 0;
        return numeric && i > 0 ? v.padStart(w) : v.padEnd(w);
      })
      .join(' | ')} |`;
  const out = [
    line(
      COLUMNS.map(([, title]) => title),
      false,
    ),
  ];
  out.push(`|${widths.map((w, i) => (i > 0 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const c of cells) out.push(line(c, true));
  return out.join('\n');
}

/** A right-aligned text table (also valid Markdown) of preformatted cells under `head`. */
export function textTable(head: string[], lines: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
  return [row(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(row)].join('\n');
}

/** A target's verdict: undefined when it could not be judged (its scenario did not run). */
export function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'SKIPPED' : ok ? 'PASS' : 'MISS';
}
