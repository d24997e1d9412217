/**
 * Background upkeep (issue 3): marks devices inactive after their application's inactivity
 * timeout, and enforces state and log retention. Deletes run in small chunks, each its own
 * short transaction, with the event loop free between them, so ingest never waits long.
 */
import type { Application } from '../domain/model.js';
import type { Platform } from './platform.js';

export interface MaintenanceOptions {
  /** How often to look for inactive devices. */
  inactivityIntervalMs?: number;
  /** How often to enforce retention. */
  retentionIntervalMs?: number;
  /** Rows deleted per transaction. */
  chunk?: number;
  /**
   * Whether this node runs the jobs now (nodes sharing Redis: the holder of the singleton lease);
   * default: always.
   */
  singleton?: () => boolean;
}

export interface MaintenanceReport {
  inactive: string[];
  prunedStates: number;
  prunedLogs: number;
}

const DAY_MS = 86_400_000;
const yieldToIngest = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Maintenance {
  private readonly inactivityIntervalMs: number;
  private readonly retentionIntervalMs: number;
  private readonly chunk: number;
  private timers: NodeJS.Timeout[] = [];
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly singleton: () => boolean;

  constructor(
    private readonly platform: Platform,
    options: MaintenanceOptions = {},
  ) {
    this.inactivityIntervalMs = options.inactivityIntervalMs ?? 30_000;
    this.retentionIntervalMs = options.retentionIntervalMs ?? 10 * 60_000;
    this.chunk = options.chunk ?? 5_000;
    this.singleton = options.singleton ?? (() => true);
  }

  start(): void {
    this.stopped = false;
    const every = (ms: number, job: () => Promise<unknown>) => {
      const timer = setInterval(() => {
        if (!this.singleton()) return;
        // One job at a time; a slow run is not stacked by the next tick.
        this.running = this.running
          .then(job)
          .catch((err: unknown) =>
            this.platform.logger.error(
              { component: 'maintenance', event: 'maintenanceFailed', err },
              'maintenance failed',
            ),
          );
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.inactivityIntervalMs, () => this.markInactive());
    every(this.retentionIntervalMs, () => this.enforceRetention());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.running;
  }

  /** Runs both jobs now (tests, and an operator who does not want to wait). */
  async runOnce(now = this.platform.clock()): Promise<MaintenanceReport> {
    const inactive = await this.markInactive(now);
    const { states, logs } = await this.enforceRetention(now);
    return { inactive, prunedStates: states, prunedLogs: logs };
  }

  /** Marks devices silent for longer than their application's timeout; one log entry each. */
  async markInactive(now = this.platform.clock()): Promise<string[]> {
    const marked: string[] = [];
    for (const app of await this.applications()) {
      if (app.inactivityTimeoutSeconds === null) continue;
      const ids = await this.platform.store.listInactivityCandidates(app.id, now - app.inactivityTimeoutSeconds * 1000);
      if (ids.length === 0) continue;
      await this.platform.store.markInactive(ids, now);
      const entries = [];
      for (const id of ids) {
        const device = await this.platform.registry.device(id);
        if (device) {
          entries.push(
            this.platform.logEntry(device, 'inactive', {
              reason: `nothing reported for ${app.inactivityTimeoutSeconds} s`,
              inactivityTimeoutSeconds: app.inactivityTimeoutSeconds,
            }),
          );
        }
      }
      this.platform.log(entries);
      marked.push(...ids);
    }
    return marked;
  }

  async enforceRetention(now = this.platform.clock()): Promise<{ states: number; logs: number }> {
    let states = 0;
    let logs = 0;
    for (const app of await this.applications()) {
      if (app.stateRetentionDays !== null) {
        states += await this.prune((limit) =>
          this.platform.store.pruneStates(app.id, now - (app.stateRetentionDays as number) * DAY_MS, limit),
        );
      }
      logs += await this.prune((limit) =>
        this.platform.store.pruneLogs(app.id, now - app.logRetentionDays * DAY_MS, limit),
      );
    }
    return { states, logs };
  }

  private async prune(step: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await step(this.chunk);
      total += deleted;
      if (deleted < this.chunk || this.stopped) return total;
      await yieldToIngest();
    }
  }

  private applications(): Promise<Application[]> {
    return this.platform.registry.listApplications();
  }
}
