/** Finished runs waiting to be written: bounded per flow, counted in full, refusals summed. */
import { describe, expect, it } from 'vitest';
import type { FlowRun } from '../../src/workflows/definition.js';
import { inParts, PendingRunLog } from '../../src/workflows/run-log.js';

function run(flowId: string, time: number, failed = false): FlowRun {
  return {
    flowId,
    time,
    flowVersion: 'develop',
    triggerType: 'deviceId',
    triggerId: 'd',
    pathsCompleted: failed ? 0 : 1,
    pathsFailed: failed ? 1 : 0,
    wallTime: 0,
    latency: 0,
    errors: failed ? [{ nodeId: 'n', nodeType: 'DebugNode', message: 'x' }] : [],
  };
}

describe('PendingRunLog', () => {
  it('holds only the newest runs of each flow, oldest first, but counts every run and error', () => {
    const log = new PendingRunLog(3);
    for (let i = 0; i < 10; i++) log.add(run('a', i, i % 2 === 0));
    log.add(run('b', 100));
    const { runs, stats } = log.take(1_000, 50);
    expect(runs.map((r) => `${r.flowId}${r.time}`)).toEqual(['a7', 'a8', 'a9', 'b100']);
    expect(stats).toEqual([
      { flowId: 'a', runs: 10, errors: 5 },
      { flowId: 'b', runs: 1, errors: 0 },
    ]);
    expect(log.size).toBe(0);
    expect(log.take(2_000, 50)).toEqual({ runs: [], stats: [] });
  });

  it('starts each period afresh: runs, errors and counts of the last write do not come back', () => {
    const log = new PendingRunLog(3);
    for (let i = 0; i < 4; i++) log.add(run('a', i, i === 3));
    expect(log.take(100, 50).runs.map((r) => [r.time, r.errors.length])).toEqual([
      [1, 0],
      [2, 0],
      [3, 1],
    ]);
    log.add(run('a', 10));
    log.add(run('a', 11, true));
    const { runs, stats } = log.take(200, 50);
    expect(runs.map((r) => [r.time, r.errors.length])).toEqual([
      [10, 0],
      [11, 1],
    ]);
    expect(runs[1]).toEqual(run('a', 11, true));
    expect(stats).toEqual([{ flowId: 'a', runs: 2, errors: 1 }]);
    expect(log.take(300, 50)).toEqual({ runs: [], stats: [] });
  });

  it('sums refused triggers into one entry per flow and write, outside the stats', () => {
    const log = new PendingRunLog(10);
    for (let i = 0; i < 250; i++) log.refuse('a', 'deviceTag', 'v2');
    const { runs, stats } = log.take(5_000, 1_000);
    expect(stats).toEqual([]);
    expect(runs).toEqual([
      expect.objectContaining({
        flowId: 'a',
        time: 5_000,
        flowVersion: 'v2',
        triggerType: 'deviceTag',
        errors: [
          {
            nodeId: '',
            nodeType: 'trigger',
            message: "250 runs were not started: the flow's queue was full (1000 waiting)",
          },
        ],
      }),
    ]);
  });
});

describe('inParts', () => {
  const stats = [{ flowId: 'a', runs: 450, errors: 0 }];

  it('splits runs into writes of at most the given size, in order, with the stats in the first only', () => {
    const runs = Array.from({ length: 450 }, (_, i) => run('a', i));
    const parts = inParts({ runs, stats }, 200);
    expect(parts.map((p) => p.runs.length)).toEqual([200, 200, 50]);
    expect(parts.flatMap((p) => p.runs)).toEqual(runs);
    expect(parts.map((p) => p.stats)).toEqual([stats, [], []]);
  });

  it('keeps stats without runs as one write, and makes none of nothing', () => {
    expect(inParts({ runs: [], stats }, 200)).toEqual([{ runs: [], stats }]);
    expect(inParts({ runs: [], stats: [] }, 200)).toEqual([]);
  });
});
