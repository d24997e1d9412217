import { describe, expect, it } from 'vitest';
import {
  histogramCount,
  histogramQuantile,
  histogramSince,
  parseHistogram,
  parseValue,
} from '../../bench/server-histograms.js';

const metrics = (counts: [number, number, number, number], sum: number) => `# HELP x_seconds A span.
# TYPE x_seconds histogram
x_seconds_bucket{le="0.01"} ${counts[0]}
x_seconds_bucket{le="0.025"} ${counts[1]}
x_seconds_bucket{le="0.05"} ${counts[2]}
x_seconds_bucket{le="+Inf"} ${counts[3]}
x_seconds_sum ${sum}
x_seconds_count ${counts[3]}
x_seconds_other_bucket{le="0.01"} 999
`;

describe('server histograms (bench)', () => {
  it('parses one histogram, subtracts an earlier reading and interpolates quantiles within buckets', () => {
    const before = parseHistogram(metrics([10, 10, 10, 10], 0.05), 'x_seconds');
    const after = parseHistogram(metrics([90, 110, 110, 110], 1.25), 'x_seconds');
    expect(after).toEqual({ bounds: [0.01, 0.025, 0.05], cumulative: [90, 110, 110, 110], sum: 1.25 });
    const h = histogramSince(after!, before);
    expect(histogramCount(h)).toBe(100);
    expect(h.sum).toBeCloseTo(1.2);
    // 80 within 10 ms, 20 between 10 and 25 ms.
    expect(histogramQuantile(h, 0.4)).toBeCloseTo(0.005);
    expect(histogramQuantile(h, 0.9)).toBeCloseTo(0.01 + 0.015 * 0.5);
    expect(histogramQuantile(h, 1)).toBeCloseTo(0.025);
  });

  it('gives the top bound for a rank beyond it, NaN when nothing was observed, and nothing for an absent name', () => {
    const h = parseHistogram(metrics([0, 0, 1, 5], 9), 'x_seconds')!;
    expect(histogramQuantile(h, 0.99)).toBe(0.05);
    expect(histogramQuantile(histogramSince(h, h), 0.5)).toBeNaN();
    expect(parseHistogram(metrics([0, 0, 0, 0], 0), 'y_seconds')).toBeUndefined();
  });

  it('reads the series of one label value, and plain values', () => {
    const text = [
      'gc_seconds_bucket{le="0.001",kind="minor"} 5',
      'gc_seconds_bucket{le="0.1",kind="minor"} 6',
      'gc_seconds_bucket{le="+Inf",kind="minor"} 6',
      'gc_seconds_sum{kind="minor"} 0.02',
      'gc_seconds_bucket{le="0.001",kind="major"} 0',
      'gc_seconds_bucket{le="0.1",kind="major"} 2',
      'gc_seconds_bucket{le="+Inf",kind="major"} 3',
      'gc_seconds_sum{kind="major"} 0.4',
      'lag_max_seconds 0.125',
    ].join('\n');
    expect(parseHistogram(text, 'gc_seconds', 'kind="major"')).toEqual({
      bounds: [0.001, 0.1],
      cumulative: [0, 2, 3],
      sum: 0.4,
    });
    expect(histogramCount(parseHistogram(text, 'gc_seconds', 'kind="minor"')!)).toBe(6);
    expect(parseHistogram(text, 'gc_seconds')).toBeUndefined();
    expect(parseValue(text, 'lag_max_seconds')).toBe(0.125);
    expect(parseValue(text, 'lag_p99_seconds')).toBeNaN();
  });
});
