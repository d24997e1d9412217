import { describe, expect, it } from 'vitest';
import {
  isRollupValue,
  minuteOf,
  RollupAccumulator,
  type RollupRow,
  RollupStage,
  recentFrom,
} from '../../src/store/rollup-accumulator.js';

const M = 1_700_000_040_000; // on a minute

const rows = (acc: RollupAccumulator): RollupRow[] =>
  [...acc.values()]
    .map((r) => ({ ...r }))
    .sort((a, b) => (a.deviceId + a.attribute + a.bucket < b.deviceId + b.attribute + b.bucket ? -1 : 1));

/** A small deterministic generator (the same LCG as the store contract). */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    return s / 2_147_483_648;
  };
}

describe('minuteOf and recentFrom', () => {
  it('floor to the minute, also before 1970', () => {
    expect(minuteOf(M)).toBe(M);
    expect(minuteOf(M + 59_999)).toBe(M);
    expect(minuteOf(M - 1)).toBe(M - 60_000);
    expect(minuteOf(0)).toBe(0);
    expect(minuteOf(-1)).toBe(-60_000);
    expect(minuteOf(-60_000)).toBe(-60_000);
  });

  it('count as recent the minute of now - 120 s and everything after it', () => {
    expect(recentFrom(M + 120_000)).toBe(M);
    expect(recentFrom(M + 179_999)).toBe(M);
    expect(recentFrom(M + 180_000)).toBe(M + 60_000);
  });

  it('take finite numbers only', () => {
    expect(
      [1, 0, -2.5, true, false, '3', null, {}, [], Number.NaN, Number.POSITIVE_INFINITY].map(isRollupValue),
    ).toEqual([true, true, true, false, false, false, false, false, false, false, false]);
  });
});

describe('RollupAccumulator', () => {
  it('keeps count, sum, min, max, first and last per device, attribute and minute', () => {
    const acc = new RollupAccumulator();
    acc.add('d', 't', M + 30_000, 5);
    acc.add('d', 't', M + 10_000, 7);
    acc.add('d', 't', M + 50_000, 3);
    acc.add('d', 't', M + 60_000, 1); // next minute
    acc.add('d', 'h', M + 1, 40); // another attribute
    acc.add('e', 't', M + 1, 9); // another device
    expect(acc.size).toBe(4);
    expect(acc.has('d', 't', M)).toBe(true);
    expect(acc.has('d', 't', M + 60_000)).toBe(true);
    expect(acc.has('d', 'x', M)).toBe(false);
    expect(rows(acc)).toEqual([
      {
        deviceId: 'd',
        attribute: 'h',
        bucket: M,
        count: 1,
        sum: 40,
        min: 40,
        max: 40,
        firstTime: M + 1,
        firstValue: 40,
        lastTime: M + 1,
        lastValue: 40,
      },
      {
        deviceId: 'd',
        attribute: 't',
        bucket: M,
        count: 3,
        sum: 15,
        min: 3,
        max: 7,
        firstTime: M + 10_000,
        firstValue: 7,
        lastTime: M + 50_000,
        lastValue: 3,
      },
      {
        deviceId: 'd',
        attribute: 't',
        bucket: M + 60_000,
        count: 1,
        sum: 1,
        min: 1,
        max: 1,
        firstTime: M + 60_000,
        firstValue: 1,
        lastTime: M + 60_000,
        lastValue: 1,
      },
      {
        deviceId: 'e',
        attribute: 't',
        bucket: M,
        count: 1,
        sum: 9,
        min: 9,
        max: 9,
        firstTime: M + 1,
        firstValue: 9,
        lastTime: M + 1,
        lastValue: 9,
      },
    ]);
    acc.clear();
    expect(acc.size).toBe(0);
    expect([...acc.values()]).toEqual([]);
  });

  it('breaks ties at equal times like the state merge: first keeps the earlier arrival, last takes the later', () => {
    const acc = new RollupAccumulator();
    acc.add('d', 't', M + 5, 1);
    acc.add('d', 't', M + 5, 2);
    acc.add('d', 't', M + 5, 3);
    expect(rows(acc)[0]).toMatchObject({ count: 3, sum: 6, firstTime: M + 5, firstValue: 1, lastValue: 3 });
  });

  it('adds the finite numbers of a state and skips everything else', () => {
    const acc = new RollupAccumulator();
    acc.addState('d', M, { t: 1, on: true, label: 'x', n: null, nested: { a: 1 }, s: '2', h: 2.5 });
    expect(rows(acc).map((r) => [r.attribute, r.sum])).toEqual([
      ['h', 2.5],
      ['t', 1],
    ]);
  });

  it('gets the same rows from values staged per batch and drained, as from the values added at once', () => {
    const random = lcg(11);
    // Few distinct times, so ties happen; integers and halves.
    const values = Array.from({ length: 2_000 }, () => ({
      device: `d${Math.floor(random() * 3)}`,
      attribute: random() < 0.5 ? 't' : 'h',
      time: M + Math.floor(random() * 40) * 5_000,
      value: Math.floor(random() * 40) / 2 - 10,
    }));
    const all = new RollupAccumulator();
    for (const v of values) all.add(v.device, v.attribute, v.time, v.value);

    // The store's path: each batch staged, then drained into the accumulator once it commits;
    // a batch that rolls back is cleared instead.
    const held = new RollupAccumulator();
    const stage = new RollupStage();
    for (let i = 0; i < values.length; ) {
      const size = 1 + Math.floor(random() * 300);
      stage.push('rolled', 'back', M, 1);
      stage.clear();
      for (const v of values.slice(i, i + size)) stage.push(v.device, v.attribute, v.time, v.value);
      expect(stage.size).toBe(Math.min(size, values.length - i));
      stage.drainInto(held);
      expect(stage.size).toBe(0);
      i += size;
    }
    expect(rows(held)).toEqual(rows(all));
    expect(rows(all).some((r) => r.count > 10)).toBe(true);
  });
});

describe('RollupAccumulator with wide devices', () => {
  /** The rules stated plainly: one object per (device, attribute, minute) in a map on a joined key. */
  function reference(values: Array<{ device: string; attribute: string; time: number; value: number }>) {
    const byKey = new Map<string, RollupRow>();
    for (const { device, attribute, time, value } of values) {
      const bucket = minuteOf(time);
      const k = `${device}|${attribute}|${bucket}`;
      const r = byKey.get(k);
      if (!r) {
        byKey.set(k, {
          deviceId: device,
          attribute,
          bucket,
          count: 1,
          sum: value,
          min: value,
          max: value,
          firstTime: time,
          firstValue: value,
          lastTime: time,
          lastValue: value,
        });
        continue;
      }
      r.count++;
      r.sum += value;
      r.min = Math.min(r.min, value);
      r.max = Math.max(r.max, value);
      if (time < r.firstTime) [r.firstTime, r.firstValue] = [time, value];
      if (time >= r.lastTime) [r.lastTime, r.lastValue] = [time, value];
    }
    return [...byKey.values()].sort(keyOrder);
  }

  /** Primary-key order: device, attribute, minute. */
  const keyOrder = (a: RollupRow, b: RollupRow): number =>
    a.deviceId !== b.deviceId
      ? a.deviceId < b.deviceId
        ? -1
        : 1
      : a.attribute !== b.attribute
        ? a.attribute < b.attribute
          ? -1
          : 1
        : a.bucket - b.bucket;

  it('keeps the rows of devices with many attributes and minutes exact, before and after they pass the chain length', () => {
    const random = lcg(23);
    // d-wide: 60 attributes over 4 minutes (240 rows); d-edge: just past the chain; d-narrow: 2 rows.
    const shapes: Record<string, { attributes: number; minutes: number }> = {
      'd-wide': { attributes: 60, minutes: 4 },
      'd-edge': { attributes: 17, minutes: 1 },
      'd-narrow': { attributes: 2, minutes: 1 },
    };
    const values = Array.from({ length: 6_000 }, () => {
      const device = Object.keys(shapes)[Math.floor(random() * 3)] as string;
      const shape = shapes[device] as { attributes: number; minutes: number };
      return {
        device,
        attribute: `a${Math.floor(random() * shape.attributes)}`,
        time: M + Math.floor(random() * shape.minutes * 12) * 5_000 + Math.floor(random() * 3),
        value: Math.floor(random() * 100) - 50,
      };
    });
    const acc = new RollupAccumulator();
    for (const [i, v] of values.entries()) {
      acc.add(v.device, v.attribute, v.time, v.value);
      // Every row stays findable while the devices pass from chain to attribute index.
      if (i % 97 === 0) expect(acc.has(v.device, v.attribute, minuteOf(v.time))).toBe(true);
    }
    const expected = reference(values);
    expect(acc.size).toBe(expected.length);
    expect([...acc.values()].sort(keyOrder)).toEqual(expected);
    expect(acc.sortedRows()).toEqual(expected);
    expect(acc.has('d-wide', 'a0', M + 4 * 60_000)).toBe(false);
    expect(acc.has('d-edge', 'a17', M)).toBe(false);
  });

  it('starts empty again after clear, wide devices included', () => {
    const acc = new RollupAccumulator();
    for (let a = 0; a < 40; a++) acc.add('d', `a${a}`, M, a);
    acc.clear();
    expect(acc.size).toBe(0);
    expect(acc.has('d', 'a0', M)).toBe(false);
    acc.add('d', 'a0', M, 5);
    acc.add('d', 'a0', M + 1, 7);
    expect(rows(acc)).toEqual([expect.objectContaining({ deviceId: 'd', attribute: 'a0', count: 2, sum: 12 })]);
  });
});

describe('RollupAccumulator.sortedRows', () => {
  it('gives every row once, in primary-key order (device, attribute, minute), whatever the arrival order', () => {
    const acc = new RollupAccumulator();
    const next = lcg(7);
    const devices = ['c0', 'a1', 'b2', 'a0'];
    const attributes = ['t', 'h', 'T', 'a_b'];
    for (let i = 0; i < 400; i++) {
      const device = devices[Math.floor(next() * devices.length)] as string;
      const attribute = attributes[Math.floor(next() * attributes.length)] as string;
      acc.add(device, attribute, M + Math.floor(next() * 5) * 60_000 - 7, i);
    }
    const sorted = acc.sortedRows();
    expect(sorted).toHaveLength(acc.size);
    const key = (r: RollupRow) => [r.deviceId, r.attribute, r.bucket] as const;
    for (let i = 1; i < sorted.length; i++) {
      const [d0, a0, b0] = key(sorted[i - 1] as RollupRow);
      const [d1, a1, b1] = key(sorted[i] as RollupRow);
      expect(d0 < d1 || (d0 === d1 && (a0 < a1 || (a0 === a1 && b0 < b1)))).toBe(true);
    }
    expect([...sorted].sort((a, b) => (key(a).join() < key(b).join() ? -1 : 1))).toEqual(
      [...acc.values()].sort((a, b) => (key(a).join() < key(b).join() ? -1 : 1)),
    );
  });
});
