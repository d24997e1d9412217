/**
 * The run scheduler: lanes take turns, each lane's queue and runs in progress are bounded, a
 * closed lane drops what waits, and a backlog of runs leaves the event loop to other work
 * between slices.
 */
import { describe, expect, it } from 'vitest';
import { Lane, RunScheduler } from '../../src/workflows/scheduler.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('RunScheduler', () => {
  it('lets lanes take turns, one run each, so a flooded lane cannot starve the others', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 100 });
    const flood = new Lane();
    const quiet = new Lane();
    const order: string[] = [];
    for (let i = 0; i < 50; i++) scheduler.submit(flood, () => void order.push(`flood${i}`));
    scheduler.submit(quiet, () => void order.push('quiet0'));
    scheduler.submit(quiet, () => void order.push('quiet1'));
    await scheduler.idle();
    expect(order).toHaveLength(52);
    expect(order.indexOf('quiet0')).toBe(1);
    expect(order.indexOf('quiet1')).toBe(3);
  });

  it('refuses a lane past its queue bound, and takes runs again once the queue drains', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 3 });
    const lane = new Lane();
    let ran = 0;
    for (let i = 0; i < 3; i++) {
      expect(scheduler.hasRoom(lane)).toBe(true);
      scheduler.submit(lane, () => void ran++);
    }
    expect(scheduler.hasRoom(lane)).toBe(false);
    await scheduler.idle();
    expect(ran).toBe(3);
    expect(scheduler.hasRoom(lane)).toBe(true);
  });

  it('keeps at most `concurrency` runs of a lane in progress while they wait on I/O', async () => {
    const scheduler = new RunScheduler({ concurrency: 2, maxWaiting: 100 });
    const lane = new Lane();
    let inProgress = 0;
    let most = 0;
    const release: Array<() => void> = [];
    for (let i = 0; i < 6; i++) {
      scheduler.submit(lane, () => {
        inProgress++;
        most = Math.max(most, inProgress);
        return new Promise<void>((resolve) => {
          release.push(() => {
            inProgress--;
            resolve();
          });
        });
      });
    }
    for (let round = 0; round < 3; round++) {
      while (release.length < 2) await turn();
      for (const r of release.splice(0)) r();
    }
    await scheduler.idle();
    expect(most).toBe(2);
    expect(inProgress).toBe(0);
  });

  it('drops the waiting runs of a closed lane and refuses new ones', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 100 });
    const lane = new Lane();
    let ran = 0;
    for (let i = 0; i < 10; i++) scheduler.submit(lane, () => void ran++);
    scheduler.close(lane);
    expect(scheduler.hasRoom(lane)).toBe(false);
    scheduler.submit(lane, () => void ran++);
    await scheduler.idle();
    expect(ran).toBe(0);
  });

  it('survives a run that throws', async () => {
    const scheduler = new RunScheduler();
    const lane = new Lane();
    let ran = 0;
    scheduler.submit(lane, () => {
      throw new Error('boom');
    });
    scheduler.submit(lane, () => Promise.reject(new Error('boom')));
    scheduler.submit(lane, () => void ran++);
    await scheduler.idle();
    expect(ran).toBe(1);
  });

  it('leaves the event loop to other work between slices of a long backlog', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 100_000, sliceMs: 1 });
    const lane = new Lane();
    const total = 20_000;
    let ran = 0;
    const busy = () => {
      const end = performance.now() + 0.01;
      while (performance.now() < end);
    };
    for (let i = 0; i < total; i++)
      scheduler.submit(lane, () => {
        busy();
        ran++;
        return undefined;
      });
    // A socket callback or timer queued now runs long before the backlog is through.
    const seenAt = await new Promise<number>((resolve) => setTimeout(() => resolve(ran), 0));
    await scheduler.idle();
    expect(ran).toBe(total);
    expect(seenAt).toBeLessThan(total);
  });

  it('spaces runs out while other work saturates the loop, and stops once it is quiet again', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 100_000 });
    const lane = new Lane();
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    let ran = 0;
    for (let i = 0; i < 50_000; i++)
      scheduler.submit(lane, () => {
        spin(0.005);
        ran++;
        return undefined;
      });
    // Other work: 2 ms of every turn for a while, as a flood of messages would. Slices of 1 ms
    // between turns would take a third of that stretch; spaced out, runs take a tenth.
    let busyTurns = 150;
    let sawSaturated = false;
    await new Promise<void>((resolve) => {
      const turn = () => {
        spin(2);
        sawSaturated ||= scheduler.saturated;
        if (--busyTurns > 0) setImmediate(turn);
        else resolve();
      };
      setImmediate(turn);
    });
    expect(sawSaturated).toBe(true);
    const ranWhileBusy = ran;
    await scheduler.idle();
    expect(ran).toBe(50_000);
    expect(scheduler.saturated).toBe(false);
    // Spaced out, runs took a small part of the busy stretch: most of the backlog ran after it.
    expect(ranWhileBusy).toBeLessThan(12_000);
  });

  it('keeps runs spaced out when they queue more runs, as matching a state queues the runs it fires', async () => {
    const scheduler = new RunScheduler({ maxWaiting: 100_000 });
    const intake = new Lane();
    const runs = new Lane();
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    let ran = 0;
    const run = () => {
      spin(0.005);
      ran++;
      return undefined;
    };
    for (let i = 0; i < 25_000; i++)
      scheduler.submit(intake, () => {
        scheduler.submit(runs, run);
        return run();
      });
    let busyTurns = 150;
    await new Promise<void>((resolve) => {
      const turn = () => {
        spin(2);
        if (--busyTurns > 0) setImmediate(turn);
        else resolve();
      };
      setImmediate(turn);
    });
    const ranWhileBusy = ran;
    await scheduler.idle();
    expect(ran).toBe(50_000);
    // A slice that queued work used to schedule the next one a millisecond later, not spaced out.
    expect(ranWhileBusy).toBeLessThan(12_000);
  });
});
