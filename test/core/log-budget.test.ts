import { describe, expect, it } from 'vitest';
import { LogBudget } from '../../src/core/log-budget.js';
import type { DeviceLogEntry } from '../../src/domain/model.js';

const entry = (deviceId: string, time: number): DeviceLogEntry => ({
  deviceId,
  applicationId: 'app',
  time,
  kind: 'rejected',
  details: { reason: 'x' },
});

describe('LogBudget', () => {
  it('admits a bounded number of entries per device and window, and summarizes the rest once', () => {
    const budget = new LogBudget({ entries: 3, windowMs: 60_000 });
    const first = budget.admit(
      Array.from({ length: 10 }, (_, i) => entry('d', i)),
      0,
    );
    expect(first).toHaveLength(3);
    expect(budget.admit([entry('other', 5)], 5)).toHaveLength(1);
    expect(budget.sweep(59_999)).toEqual([]);
    const summaries = budget.sweep(60_000);
    expect(summaries).toEqual([
      expect.objectContaining({
        deviceId: 'd',
        applicationId: 'app',
        kind: 'suppressed',
        details: expect.objectContaining({
          count: 7,
          reason: '7 more log entries suppressed (at most 3 per device in 60 s)',
        }),
      }),
    ]);
    expect(budget.sweep(120_000)).toEqual([]);
  });

  it('puts the summary of an ended window before the first entry of the next', () => {
    const budget = new LogBudget({ entries: 1, windowMs: 1_000 });
    budget.admit([entry('d', 0), entry('d', 1)], 0);
    const next = budget.admit([entry('d', 1_000)], 1_000);
    expect(next.map((e) => e.kind)).toEqual(['suppressed', 'rejected']);
  });
});
