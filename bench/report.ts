/** What the scenarios found: table rows, notes, and the clean-up to run however the run ends. */

import type { LoadResult } from './load.js';
import { backgroundMeter, cpuMicros, rssKb } from './proc.js';
import type { Row } from './stats.js';

export const ms2 = (n: number): number => Math.round(n * 100) / 100;

export class Report {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  /** CPUs kept busy by other processes of the machine during each scenario. */
  readonly background: Array<[string, number]> = [];

  note(text: string): void {
    this.notes.push(text);
  }

  /** A row for a load scenario; CPU and RSS read from `pid` now, CPU relative to `cpu0`. Returns CPU µs/msg. */
  loadRow(
    name: string,
    r: LoadResult,
    pid: number,
    cpu0: number,
    perSecond: number,
    withLatency: boolean,
    suffix = '',
  ): number {
    const cpu = cpuMicros(pid) - cpu0;
    const perMessage = r.done > 0 ? cpu / r.done : Number.NaN;
    this.rows.push({
      scenario: `${name}${r.aborted ? ' (ABORTED)' : suffix}`,
      messages: r.done,
      perSecond,
      p50: withLatency ? ms2(r.latencies.percentile(50)) : 'n/a',
      p99: withLatency ? ms2(r.latencies.percentile(99)) : 'n/a',
      cpuUsPerMsg: perMessage,
      rssMb: rssKb(pid) / 1024,
    });
    return perMessage;
  }
}

export class Cleanups {
  private readonly fns: Array<() => Promise<unknown>> = [];

  add(fn: () => Promise<unknown>): void {
    this.fns.push(fn);
  }

  /** Runs the clean-ups, newest first; a failing one does not stop the others. */
  async run(): Promise<void> {
    while (this.fns.length > 0) {
      const fn = this.fns.pop()!;
      await fn().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    }
  }
}

/** CPU time of this process (the load generator) since the call, in µs. */
export function clientMeter(): () => number {
  const cpu0 = process.cpuUsage();
  return () => {
    const d = process.cpuUsage(cpu0);
    return d.user + d.system;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (up to `maxMs`) for a half second in which other processes keep less than 0.1 CPU busy,
 * so that a scenario does not start in the middle of someone else's build. Notes any wait.
 */
export async function waitForQuiet(report: Report, label: string, pids: number[], maxMs = 20_000): Promise<void> {
  const start = performance.now();
  for (;;) {
    const meter = backgroundMeter(pids);
    await sleep(500);
    const busy = meter();
    if (busy < 0.1) break;
    if (performance.now() - start > maxMs) {
      report.note(
        `${label}: started although other processes kept ${busy.toFixed(2)} CPUs busy after ${maxMs / 1000} s`,
      );
      return;
    }
  }
  const waited = performance.now() - start;
  if (waited > 1_000) report.note(`${label}: waited ${(waited / 1000).toFixed(1)} s for other processes to go quiet`);
}
