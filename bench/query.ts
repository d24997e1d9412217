/**
 * Scenario f: time-series and last-value queries. In this process, on a temporary SQLite store
 * opened with `openSqliteStore`: one device-month of 1 Hz data (2,592,000 states) written with
 * `applyBatch` in batches of 10,000 (timed: a bulk-ingest measurement), 1,000 more devices with
 * one state each, then each query timed over several runs. The same month queries are also
 * answered with the rollups turned off (the raw path), to show what the rollups are worth.
 *
 * Runs as part of `npm run bench`, or alone: `npm run build && node dist/bench/query.js`.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Device, StateRecord } from '../src/domain/model.js';
import { SqliteSeries } from '../src/store/sqlite/series.js';
import { DATABASE_FILENAME, openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { type Aggregation, type SeriesPoint, writeBatch } from '../src/store/types.js';
import { config } from './config.js';
import { Report, waitForQuiet } from './report.js';
import { fmt } from './stats.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** 2024-01-01T00:00:00Z: the month starts on a minute (and a day). */
const MONTH_START = Date.UTC(2024, 0, 1);
const BATCH = 10_000;
const RUNS = 5;
const RAW_RUNS = 3;

export interface QueryRow {
  query: string;
  from: string;
  points: number;
  p50: number;
  runs: number;
}

const device = (id: string, applicationId: string, name: string): Device => ({
  id,
  applicationId,
  name,
  description: '',
  deviceClass: 'standalone',
  gatewayId: null,
  tags: [],
  attributes: [
    { name: 'temperature', dataType: 'number' },
    { name: 'humidity', dataType: 'number' },
  ],
  creationDate: MONTH_START,
  lastUpdated: MONTH_START,
});

const hexId = (n: number): string => n.toString(16).padStart(24, '0');

async function p50(runs: number, fn: () => Promise<number>): Promise<{ ms: number; points: number }> {
  const times: number[] = [];
  let points = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    points = await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor((times.length - 1) / 2)] ?? Number.NaN, points };
}

const countPoints = (series: Map<string, SeriesPoint[]>): number =>
  [...series.values()].reduce((n, points) => n + points.length, 0);

export async function queryScenario(report: Report, days = config.queryDays): Promise<QueryRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-query-'));
  const store = await openSqliteStore({ dataDir: dir });
  const rawDb = new Database(path.join(dir, DATABASE_FILENAME), { readonly: true });
  try {
    const appId = hexId(1);
    await store.createApplication({
      id: appId,
      name: 'query bench',
      description: '',
      rateLimit: { messages: 0, windowSeconds: 15 },
      peripheralTimeoutSeconds: 900,
      inactivityTimeoutSeconds: null,
      stateRetentionDays: null,
      logRetentionDays: 30,
      creationDate: MONTH_START,
      lastUpdated: MONTH_START,
    });
    const monthId = hexId(2);
    await store.createDevice(device(monthId, appId, 'month'));

    // One device-month at 1 Hz, two numeric attributes, in batches of 10,000.
    const total = days * 86_400;
    await waitForQuiet(report, 'f ingest', []);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < total; i += BATCH) {
      const states: StateRecord[] = [];
      for (let k = i; k < Math.min(total, i + BATCH); k++) {
        states.push({
          deviceId: monthId,
          time: MONTH_START + k * SECOND,
          data: { temperature: 20 + Math.round(50 * Math.sin(k / 3_600)) / 10, humidity: 40 + (k % 600) / 10 },
          reportedBy: monthId,
        });
      }
      await store.applyBatch(writeBatch({ states }));
    }
    const ingestMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const dbMb = statSync(path.join(dir, DATABASE_FILENAME)).size / 2 ** 20;
    report.note(
      `f: ${fmt(total)} states (1 device, 1 Hz, ${days} days, 2 numeric attributes) written with applyBatch in ` +
        `batches of ${fmt(BATCH)}: ${fmt(ingestMs / 1000, 1)} s, ${fmt(total / (ingestMs / 1000))} states/s, ` +
        `${fmt((cpu.user + cpu.system) / total, 1)} µs CPU per state (states, composite state and minute rollups); ` +
        `database ${fmt(dbMb)} MB`,
    );

    // 1,000 devices with one state each, for the last-value query.
    const many: string[] = [];
    for (let i = 0; i < 1_000; i++) {
      const id = hexId(1_000 + i);
      await store.createDevice(device(id, appId, `d${i}`));
      many.push(id);
    }
    await store.applyBatch(
      writeBatch({
        states: many.map((id, i) => ({
          deviceId: id,
          time: MONTH_START + i,
          data: { temperature: i, humidity: 50 },
          reportedBy: id,
        })),
      }),
    );

    const end = MONTH_START + days * DAY - 1;
    const month = (resolution: number, aggregation: Aggregation) => ({
      deviceIds: [monthId],
      attributes: null,
      start: MONTH_START,
      end,
      resolution,
      aggregation,
    });
    const label = (resolution: number) => (resolution === MINUTE ? '1 min' : resolution === HOUR ? '1 hour' : '1 day');
    const rows: QueryRow[] = [];
    const raw = new SqliteSeries(rawDb, { rollups: false });

    await waitForQuiet(report, 'f queries', []);
    for (const resolution of [MINUTE, HOUR, DAY]) {
      for (const aggregation of ['MEAN', 'MAX'] as const) {
        const q = month(resolution, aggregation);
        const r = await p50(RUNS, async () => countPoints(await store.querySeries(q)));
        rows.push({
          query: `${days} days, ${label(resolution)}, ${aggregation}`,
          from: 'rollups',
          points: r.points,
          p50: r.ms,
          runs: RUNS,
        });
      }
    }
    const hourStart = MONTH_START + Math.floor(days / 2) * DAY;
    const window = await p50(RUNS, async () =>
      countPoints(
        await store.querySeries({
          deviceIds: [monthId],
          attributes: null,
          start: hourStart,
          end: hourStart + HOUR - 1,
          resolution: HOUR,
          aggregation: 'NONE',
        }),
      ),
    );
    rows.push({
      query: '1 hour, NONE (raw states)',
      from: 'states',
      points: window.points,
      p50: window.ms,
      runs: RUNS,
    });
    const last = await p50(RUNS, async () => (await store.lastValues(many, null)).size);
    rows.push({ query: 'lastValues, 1,000 devices', from: 'composite', points: last.points, p50: last.ms, runs: RUNS });

    // The same month queries with the rollups turned off: every state is read.
    for (const [resolution, aggregation] of [
      [MINUTE, 'MEAN'],
      [HOUR, 'MEAN'],
      [DAY, 'MAX'],
    ] as const) {
      const q = month(resolution, aggregation);
      const r = await p50(RAW_RUNS, async () => countPoints(raw.query(q)));
      rows.push({
        query: `${days} days, ${label(resolution)}, ${aggregation}`,
        from: 'states (rollups off)',
        points: r.points,
        p50: r.ms,
        runs: RAW_RUNS,
      });
    }
    return rows;
  } finally {
    rawDb.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const COLUMNS: Array<[keyof QueryRow, string]> = [
  ['query', 'query (one device unless said)'],
  ['from', 'answered from'],
  ['points', 'points'],
  ['p50', 'ms p50'],
  ['runs', 'runs'],
];

/** The query table, aligned and valid Markdown. */
export function queryTable(rows: QueryRow[]): string {
  const cells = rows.map((row) =>
    COLUMNS.map(([key]) => {
      const v = row[key];
      return typeof v === 'string' ? v : fmt(v, key === 'p50' ? 1 : 0);
    }),
  );
  const widths = COLUMNS.map(([, title], i) => Math.max(title.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (values: string[], header: boolean) =>
    `| ${values.map((v, i) => (header || i < 2 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [
    line(
      COLUMNS.map(([, t]) => t),
      true,
    ),
    `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...cells.map((c) => line(c, false)),
  ].join('\n');
}

// Run alone: node dist/bench/query.js
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = new Report();
  const started = performance.now();
  const rows = await queryScenario(report, config.queryDays || 30);
  console.log(queryTable(rows));
  console.log('');
  for (const note of report.notes) console.log(`- ${note}`);
  console.log(`\ntotal time ${fmt((performance.now() - started) / 1000, 1)} s`);
}
