/** Sizes of the benchmark; the BENCH_* environment variables shrink them for a quick trial run. */

const int = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? Number.NaN : Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
};

export const config = {
  gateways: 10,
  perGateway: 100,
  restConcurrency: 20,
  warmup: int('BENCH_WARMUP', 5_000),
  qos0Total: int('BENCH_QOS0', 50_000),
  qos1Total: int('BENCH_QOS1', 50_000),
  /** QoS 1 publishes awaiting PUBACK per client. */
  window: 100,
  fixedRate: 5_000,
  fixedMs: int('BENCH_FIXED_MS', 6_000),
  idle: int('BENCH_IDLE', 10_000),
  idleBatch: 200,
  /** Days of 1 Hz data for the query scenario f (0 skips it). */
  queryDays: int('BENCH_QUERY_DAYS', 30),
  /** QoS 1 states sent in each step of the workflow scenario w (0 skips it). */
  workflowStates: int('BENCH_WORKFLOW_STATES', 50_000),
  /** Every scenario is abandoned after this long. */
  scenarioMs: 120_000,
  /**
   * Payloads carry a `time` unique per device unless BENCH_RECEIVE_TIME=1. Without it the server
   * stamps the receive time, and states of one device received in the same millisecond merge
   * (spec: State), so fewer rows are stored than sent. See docs/benchmarks.md.
   */
  explicitTime: process.env.BENCH_RECEIVE_TIME !== '1',
};

export type Config = typeof config;

export const TARGETS = {
  /** PUBACK p99 at 5,000 states/s (c). */
  fixedP99Ms: 10,
  idleConnections: 10_000,
  /** Server RSS added by 10,000 idle connections (d). */
  idleMb: 150,
  /** Stored states/s at QoS 1 saturation (b), at least this share of Mosquitto's relay of the same load (e). */
  mosquittoRatio: 0.7,
  /** A REST command, from the request sent to the gateway's client receiving it, p99 (k). */
  commandP99Ms: 5,
  /** A time-series query over one device-month of 1 Hz data, resolution >= 1 min (f). */
  monthQueryMs: 1_000,
  /** Stored states/s with 10 enabled flows, at least this share of those with none (w). */
  workflowIngestRatio: 0.85,
  /** The console's first load on loopback, fresh browser context, slowest page's p50 (g). */
  consoleFirstLoadMs: 1_000,
  /** The fleet scenario: PUBACK p99 per minute, the last minute within this share of the first. */
  fleetP99Ms: 20,
  fleetP99Drift: 0.2,
  /** Server CPU per message in the fleet scenario, at most this many times the small fleet's (b). */
  fleetCpuRatio: 2,
  fleetRssMb: 400,
};

export const deadline = (): number => Date.now() + config.scenarioMs;
