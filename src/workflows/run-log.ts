/**
 * Finished runs waiting to be written to the run logs, and the counts for the flows' stats. A
 * flow's log keeps its newest runs only, so no more than that many are held per flow between two
 * writes: memory stays bounded however fast runs finish, and one write (one transaction) takes
 * every flow's runs and counts at once. Refused triggers (a full queue) are summed into one entry
 * per flow and write, not one each.
 */
import type { FlowRun } from './definition.js';

export interface FlowStatsDelta {
  flowId: string;
  runs: number;
  errors: number;
}

/**
 * One flow's newest runs, a ring of at most `keep`, held in columns rather than one object per
 * run: at thousands of runs a second, run objects would each live until overwritten, long enough
 * to be promoted and collected by the old generation's (slower) collector. Strings are those the
 * engine already holds (flow version, trigger type and id), so a run adds no object of its own.
 */
class RunRing {
  readonly time: Float64Array;
  readonly wallTime: Float64Array;
  readonly latency: Float64Array;
  readonly pathsCompleted: Float64Array;
  readonly pathsFailed: Float64Array;
  readonly flowVersion: string[] = [];
  readonly triggerType: string[] = [];
  readonly triggerId: string[] = [];
  /** Errors of the runs that had some, by slot. */
  readonly errors = new Map<number, FlowRun['errors']>();
  /** Runs held, and the slot of the oldest. */
  size = 0;
  start = 0;
  count = 0;
  errorCount = 0;
  refused = 0;
  /** The last refused trigger, for the summary entry. */
  refusedTrigger?: { triggerType: string; flowVersion: string };

  constructor(readonly keep: number) {
    this.time = new Float64Array(keep);
    this.wallTime = new Float64Array(keep);
    this.latency = new Float64Array(keep);
    this.pathsCompleted = new Float64Array(keep);
    this.pathsFailed = new Float64Array(keep);
  }

  add(run: FlowRun): void {
    let slot: number;
    if (this.size < this.keep) slot = (this.start + this.size++) % this.keep;
    else {
      slot = this.start;
      this.start = (this.start + 1) % this.keep;
    }
    this.time[slot] = run.time;
    this.wallTime[slot] = run.wallTime;
    this.latency[slot] = run.latency;
    this.pathsCompleted[slot] = run.pathsCompleted;
    this.pathsFailed[slot] = run.pathsFailed;
    this.flowVersion[slot] = run.flowVersion;
    this.triggerType[slot] = run.triggerType;
    this.triggerId[slot] = run.triggerId;
    if (run.errors.length > 0) this.errors.set(slot, run.errors);
    else this.errors.delete(slot);
  }

  /** The runs held, oldest first, as objects; the ring is emptied. */
  drain(flowId: string, into: FlowRun[]): void {
    for (let i = 0; i < this.size; i++) {
      const slot = (this.start + i) % this.keep;
      into.push({
        flowId,
        time: this.time[slot] as number,
        flowVersion: this.flowVersion[slot] as string,
        triggerType: this.triggerType[slot] as string,
        triggerId: this.triggerId[slot] as string,
        pathsCompleted: this.pathsCompleted[slot] as number,
        pathsFailed: this.pathsFailed[slot] as number,
        wallTime: this.wallTime[slot] as number,
        latency: this.latency[slot] as number,
        errors: this.errors.get(slot) ?? [],
      });
    }
    this.size = 0;
    this.start = 0;
    this.errors.clear();
  }
}

export class PendingRunLog {
  private readonly byFlow = new Map<string, RunRing>();

  /** `keep`: runs kept per flow in the stored log. */
  constructor(private readonly keep: number) {}

  /** Flows with something to write. */
  get size(): number {
    let n = 0;
    for (const ring of this.byFlow.values()) if (ring.size > 0 || ring.count > 0 || ring.refused > 0) n++;
    return n;
  }

  add(run: FlowRun): void {
    const ring = this.ring(run.flowId);
    ring.count++;
    if (run.errors.length > 0) ring.errorCount++;
    ring.add(run);
  }

  /** A trigger found the flow's queue full. */
  refuse(flowId: string, triggerType: string, flowVersion: string): void {
    const ring = this.ring(flowId);
    ring.refused++;
    ring.refusedTrigger = { triggerType, flowVersion };
  }

  /**
   * Everything pending, emptied: runs to append (each flow's newest, oldest first), one entry per
   * flow that refused triggers, and the counts to add to the stats.
   */
  take(now: number, maxWaiting: number): { runs: FlowRun[]; stats: FlowStatsDelta[] } {
    const runs: FlowRun[] = [];
    const stats: FlowStatsDelta[] = [];
    for (const [flowId, ring] of this.byFlow) {
      ring.drain(flowId, runs);
      if (ring.refused > 0 && ring.refusedTrigger) {
        runs.push({
          flowId,
          time: now,
          flowVersion: ring.refusedTrigger.flowVersion,
          triggerType: ring.refusedTrigger.triggerType,
          triggerId: '',
          pathsCompleted: 0,
          pathsFailed: 0,
          wallTime: 0,
          latency: 0,
          errors: [
            {
              nodeId: '',
              nodeType: 'trigger',
              message:
                `${ring.refused} ${ring.refused === 1 ? 'run was' : 'runs were'} not started: ` +
                `the flow's queue was full (${maxWaiting} waiting)`,
            },
          ],
        });
      }
      if (ring.count > 0) stats.push({ flowId, runs: ring.count, errors: ring.errorCount });
      // Rings stay for the next period (a busy flow would only make a new one), quiet ones go.
      if (ring.count === 0 && ring.refused === 0) this.byFlow.delete(flowId);
      ring.count = 0;
      ring.errorCount = 0;
      ring.refused = 0;
      ring.refusedTrigger = undefined;
    }
    return { runs, stats };
  }

  private ring(flowId: string): RunRing {
    let ring = this.byFlow.get(flowId);
    if (!ring) {
      ring = new RunRing(this.keep);
      this.byFlow.set(flowId, ring);
    }
    return ring;
  }
}

/** What one write of the run log takes: runs to append and counts to add to the flows' stats. */
export interface RunLogPart {
  runs: FlowRun[];
  stats: FlowStatsDelta[];
}

/** Splits what `take` answered into writes of at most `size` runs, the stats with the first. */
export function inParts(taken: RunLogPart, size: number): RunLogPart[] {
  const parts: RunLogPart[] = [];
  for (let i = 0; i < taken.runs.length; i += size) {
    parts.push({ runs: taken.runs.slice(i, i + size), stats: i === 0 ? taken.stats : [] });
  }
  if (parts.length === 0 && taken.stats.length > 0) parts.push({ runs: [], stats: taken.stats });
  return parts;
}
