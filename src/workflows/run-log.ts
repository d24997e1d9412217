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

interface FlowPending {
  /** The newest runs, oldest first once `start` is applied (a ring of at most `keep`). */
  runs: FlowRun[];
  start: number;
  count: number;
  errors: number;
  refused: number;
  /** The last refused trigger, for the summary entry. */
  refusedTrigger?: { triggerType: string; flowVersion: string };
}

export class PendingRunLog {
  private byFlow = new Map<string, FlowPending>();

  /** `keep`: runs kept per flow in the stored log. */
  constructor(private readonly keep: number) {}

  get size(): number {
    return this.byFlow.size;
  }

  add(run: FlowRun): void {
    const p = this.pending(run.flowId);
    p.count++;
    if (run.errors.length > 0) p.errors++;
    if (p.runs.length < this.keep) p.runs.push(run);
    else {
      p.runs[p.start] = run;
      p.start = (p.start + 1) % this.keep;
    }
  }

  /** A trigger found the flow's queue full. */
  refuse(flowId: string, triggerType: string, flowVersion: string): void {
    const p = this.pending(flowId);
    p.refused++;
    p.refusedTrigger = { triggerType, flowVersion };
  }

  /**
   * Everything pending, emptied: runs to append (each flow's newest, oldest first), one entry per
   * flow that refused triggers, and the counts to add to the stats.
   */
  take(now: number, maxWaiting: number): { runs: FlowRun[]; stats: FlowStatsDelta[] } {
    const runs: FlowRun[] = [];
    const stats: FlowStatsDelta[] = [];
    for (const [flowId, p] of this.byFlow) {
      for (let i = 0; i < p.runs.length; i++) runs.push(p.runs[(p.start + i) % p.runs.length] as FlowRun);
      if (p.refused > 0 && p.refusedTrigger) {
        runs.push({
          flowId,
          time: now,
          flowVersion: p.refusedTrigger.flowVersion,
          triggerType: p.refusedTrigger.triggerType,
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
                `${p.refused} ${p.refused === 1 ? 'run was' : 'runs were'} not started: ` +
                `the flow's queue was full (${maxWaiting} waiting)`,
            },
          ],
        });
      }
      if (p.count > 0) stats.push({ flowId, runs: p.count, errors: p.errors });
    }
    this.byFlow = new Map();
    return { runs, stats };
  }

  private pending(flowId: string): FlowPending {
    let p = this.byFlow.get(flowId);
    if (!p) {
      p = { runs: [], start: 0, count: 0, errors: 0, refused: 0 };
      this.byFlow.set(flowId, p);
    }
    return p;
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
