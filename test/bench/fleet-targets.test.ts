import { describe, expect, it } from 'vitest';
import { type FleetOutcome, fleetTargets } from '../../bench/fleet.js';

function outcome(overrides: Partial<FleetOutcome> = {}): FleetOutcome {
  const minute = (n: number, p99: number) => ({ minute: n, acked: 1_000, p50: 2, p99, serverUs: NaN, pgUs: NaN });
  return {
    store: 'sqlite',
    minutes: [minute(1, 10), minute(2, 11), minute(3, 11.5)],
    sent: 3_000,
    acked: 3_000,
    failed: 0,
    stored: 3_000,
    cpuUsPerMessage: 50,
    pgUsPerMessage: NaN,
    rssMb: 300,
    peakRssMb: 350,
    ...overrides,
  };
}

const verdicts = (lines: string[]) => lines.map((line) => line.trim().split(/\s+/, 1)[0]);

describe('the fleet scenario’s verdicts', () => {
  it('passes a run that meets every target', () => {
    expect(verdicts(fleetTargets(outcome(), 30))).toEqual(['PASS', 'PASS', 'PASS', 'PASS', 'PASS']);
  });

  it('misses each target on its own figure', () => {
    const slow = outcome({
      minutes: [
        { minute: 1, acked: 1_000, p50: 2, p99: 10, serverUs: NaN, pgUs: NaN },
        { minute: 2, acked: 1_000, p50: 2, p99: 25, serverUs: NaN, pgUs: NaN },
      ],
    });
    expect(verdicts(fleetTargets(slow, 30))).toEqual(['MISS', 'MISS', 'PASS', 'PASS', 'PASS']);
    expect(verdicts(fleetTargets(outcome({ peakRssMb: 400 }), 30))[2]).toBe('MISS');
    expect(verdicts(fleetTargets(outcome({ stored: 2_999 }), 30))[3]).toBe('MISS');
    expect(verdicts(fleetTargets(outcome({ cpuUsPerMessage: 61 }), 30))[4]).toBe('MISS');
    expect(verdicts(fleetTargets(outcome(), undefined))[4]).toBe('SKIPPED');
  });

  it('passes no latency target when states went unacknowledged, and says how many got through', () => {
    const partial = fleetTargets(outcome({ acked: 2_000, failed: 1_000, stored: 2_000 }), 30);
    expect(verdicts(partial).slice(0, 2)).toEqual(['MISS', 'MISS']);
    expect(partial[0]).toContain('(2,000 of 3,000 states acknowledged)');
  });

  it('passes nothing when no state was acknowledged at all', () => {
    const none = fleetTargets(outcome({ minutes: [], acked: 0, failed: 3_000, stored: 0 }), 30);
    expect(verdicts(none).slice(0, 4)).toEqual(['MISS', 'MISS', 'PASS', 'MISS']);
  });
});
