/**
 * The Prometheus metrics of one server (docs/operations.md, "Metrics"). Each server has its own
 * Registry, never prom-client's global one: tests run many servers in one process. Components
 * get the few instruments they count with (src/ops/instruments.ts); counts are plain numbers
 * read when /metrics is scraped, and gauges of what exists (connections, streams) are computed
 * then too, so the hot path only adds to a number or observes one.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { HttpInstruments } from '../api/ops.js';
import {
  type BrokerInstruments,
  DISCONNECT_CATEGORIES,
  MQTT_IN_KINDS,
  MQTT_OUT_KINDS,
  MQTT_REFUSALS,
  type MqttRefusal,
} from '../broker/instruments.js';
import { ERROR_TYPES, typeForStatus } from '../core/errors.js';
import { COMMAND_ROUTES, type CommandRoute } from '../core/platform.js';
import type { WriteQueueInstruments } from '../core/write-queue.js';
import { DEVICE_CLASSES } from '../domain/model.js';
import type { WorkflowInstruments } from '../workflows/engine.js';
import { type Count, Tally } from './instruments.js';

export const METRIC_PREFIX = 'gatehouse_';

/** Buckets of the latency histograms, in seconds: 0.5 ms to 5 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Buckets of the group-commit batch size, in writers joined. */
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/** What the gauges of things that exist read at scrape time; the server points them at its parts. */
export interface MetricSources {
  /** Authenticated MQTT connections by device class. */
  connectionsByClass(): ReadonlyMap<string, number>;
  /** Open Server-Sent Event streams. */
  openStreams(): number;
}

type Labels<L extends string> = Record<L, string>;

/** A counter whose series are Tallies bound at set-up and read when scraped. */
class TallyCounter<L extends string> {
  private readonly series: Array<{ labels: Labels<L>; tally: Tally }> = [];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
    const series = this.series;
    new Counter<L>({
      name: METRIC_PREFIX + name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, tally } of series) this.inc(labels, tally.value);
      },
    });
  }

  /** A series of this counter; shown (at 0) from the first scrape on. */
  bind(labels: Labels<L>): Tally {
    const tally = new Tally();
    this.series.push({ labels, tally });
    return tally;
  }

  /** One series per key, labelled by `labelsOf(key)`. */
  bindAll<K extends string>(keys: readonly K[], labelsOf: (key: K) => Labels<L>): Record<K, Count> {
    const counts = {} as Record<K, Count>;
    for (const key of keys) counts[key] = this.bind(labelsOf(key));
    return counts;
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly writes: WriteQueueInstruments;
  readonly commandRoutes: Record<CommandRoute, Count>;
  readonly broker: BrokerInstruments;
  readonly http: HttpInstruments;
  readonly workflows: WorkflowInstruments;
  private sources: MetricSources = { connectionsByClass: () => new Map(), openStreams: () => 0 };

  /** `defaults: false` leaves out the process and Node.js metrics (an API that never listens). */
  constructor(options: { defaults?: boolean } = {}) {
    const registry = this.registry;
    if (options.defaults !== false) collectDefaultMetrics({ register: registry });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new TallyCounter(registry, name, help, labelNames);
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name: METRIC_PREFIX + name, help, buckets, registers: [registry] });

    const sources = () => this.sources;
    new Gauge({
      name: `${METRIC_PREFIX}mqtt_connections`,
      help: 'Authenticated MQTT connections, by the class of their device.',
      labelNames: ['device_class'],
      registers: [registry],
      collect() {
        const counts = sources().connectionsByClass();
        for (const deviceClass of DEVICE_CLASSES) this.set({ device_class: deviceClass }, counts.get(deviceClass) ?? 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}sse_streams`,
      help: 'Open Server-Sent Event streams.',
      registers: [registry],
      collect() {
        this.set(sources().openStreams());
      },
    });

    const messagesIn = counter(
      'messages_in_total',
      'Messages received: MQTT publishes by the kind of their topic, REST state posts and command requests.',
      ['protocol', 'kind'],
    );
    const messagesOut = counter('messages_out_total', 'Messages delivered to MQTT clients, by kind.', ['kind']);
    const refusals = counter(
      'refusals_total',
      'Refused connections, publishes, subscriptions and requests, by reason category and HTTP status.',
      ['protocol', 'reason', 'status'],
    );
    const disconnects = counter('mqtt_disconnects_total', 'MQTT connections ended, by reason category.', ['reason']);
    const single = (name: string, help: string) => counter(name, help, []).bind({});
    const routes = counter('command_routes_total', 'Commands recorded, by where they were routed.', ['outcome']);

    this.writes = {
      batchSize: histogram(
        'group_commit_batch_size',
        'Writes (states, connection changes, log entries, commands) joined in one group commit.',
        BATCH_BUCKETS,
      ),
      commitSeconds: histogram('group_commit_duration_seconds', 'Time one group commit took.', LATENCY_BUCKETS),
      commitFailures: single('group_commit_failures_total', 'Group commits that failed (rolled back).'),
      statesStored: single('states_stored_total', 'States committed to the database.'),
      peripheralMessages: single(
        'peripheral_messages_total',
        'Accepted state messages a gateway sent for another device (a peripheral), committed.',
      ),
    };
    this.commandRoutes = routes.bindAll(COMMAND_ROUTES, (outcome) => ({ outcome }));
    const mqttRefusals = Object.keys(MQTT_REFUSALS) as MqttRefusal[];
    this.broker = {
      connects: single('mqtt_connects_total', 'MQTT connections accepted.'),
      disconnects: disconnects.bindAll(DISCONNECT_CATEGORIES, (reason) => ({ reason })),
      messagesIn: messagesIn.bindAll(MQTT_IN_KINDS, (kind) => ({ protocol: 'mqtt', kind })),
      messagesOut: messagesOut.bindAll(MQTT_OUT_KINDS, (kind) => ({ kind })),
      refusals: refusals.bindAll(mqttRefusals, (reason) => ({
        protocol: 'mqtt',
        reason,
        status: String(MQTT_REFUSALS[reason]),
      })),
      pubackSeconds: histogram(
        'mqtt_puback_seconds',
        'Time from a QoS 1 publish reaching the broker to its PUBACK being written.',
        LATENCY_BUCKETS,
      ),
    };
    // One series per 4xx status, named by the error type of that status (src/core/errors.ts).
    const restRefusals = new Map<number, Count>();
    const restRefusal = (status: number): Count => {
      let count = restRefusals.get(status);
      if (!count) {
        count = refusals.bind({ protocol: 'rest', reason: typeForStatus(status), status: String(status) });
        restRefusals.set(status, count);
      }
      return count;
    };
    for (const status of Object.values(ERROR_TYPES)) if (status < 500) restRefusal(status);
    this.http = {
      messagesIn: {
        state: messagesIn.bind({ protocol: 'rest', kind: 'state' }),
        command: messagesIn.bind({ protocol: 'rest', kind: 'command' }),
      },
      refusal: restRefusal,
    };
    const runs = counter(
      'workflow_runs_total',
      "Workflow runs: finished without an error, finished with one, or refused because their flow's queue was full.",
      ['outcome'],
    );
    this.workflows = {
      succeeded: runs.bind({ outcome: 'succeeded' }),
      failed: runs.bind({ outcome: 'failed' }),
      refused: runs.bind({ outcome: 'refused' }),
      unmatched: single(
        'workflow_states_unmatched_total',
        "States never matched against the workflows' triggers because the engine's intake was full.",
      ),
    };
  }

  /** Points the gauges of things that exist at the server's parts. */
  watch(sources: MetricSources): void {
    this.sources = sources;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
