/**
 * A time-series chart (uPlot) of one or more series. The box has a fixed height before data
 * arrives, so the page does not jump; the width follows the container.
 */
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  /** [epoch ms, value or null] in time order. */
  points: Array<[number, number | null]>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf'];

/** Aligns the series on one time axis (uPlot wants one x array). */
function align(series: Series[]): uPlot.AlignedData {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const ys: Array<number | null> = new Array(times.length).fill(null);
    for (const [t, v] of s.points) ys[index.get(t)!] = v;
    return ys;
  });
  return [times.map((t) => t / 1000), ...ys];
}

export function Chart({
  series,
  height = 240,
  label,
  range,
}: {
  series: Series[];
  height?: number;
  label: string;
  /** The time range shown [from, to] in epoch ms; default: the data's own. */
  range?: [number, number] | undefined;
}) {
  const box = useRef<HTMLDivElement>(null);
  // Read by the x scale at each redraw: a range of one point would otherwise span years.
  const rangeRef = useRef(range);
  rangeRef.current = range;
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('\u0000');

  // A new plot when the series change in number or name; new data otherwise.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => {
            const r = rangeRef.current;
            return r ? [r[0] / 1000, r[1] / 1000] : [min, max];
          },
        },
      },
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
          points: { show: true, size: 4 },
        })),
      ],
      axes: [{}, { size: valueAxisSize }],
    };
    const p = new uPlot(opts, align(series), el);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(align(series));
  }, [series]);

  const empty = series.every((s) => s.points.length === 0);
  return (
    <figure class="chart" style={{ minHeight: `${height + 40}px` }} aria-label={label}>
      <div ref={box} />
      {empty ? <figcaption class="chart-empty">No data in this range</figcaption> : null}
    </figure>
  );
}

/**
 * The width of the value axis: its widest tick label plus the ticks and the gap, so large values
 * are never cut off at the left edge.
 */
function valueAxisSize(u: uPlot, values: string[] | null, axisIdx: number, cycleNum: number): number {
  const axis = u.axes[axisIdx] as uPlot.Axis & { _size?: number; font?: [string, number] };
  // uPlot sizes axes in cycles; past the first, the size found holds.
  if (cycleNum > 1 && axis._size) return axis._size;
  let size = (axis.ticks?.size ?? 10) + (axis.gap ?? 5);
  const longest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), '');
  if (longest !== '') {
    u.ctx.font = axis.font?.[0] ?? u.ctx.font;
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.max(40, Math.ceil(size));
}
