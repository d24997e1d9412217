/**
 * A few thousand generated MQTT and REST cases against the real server (runner.ts). A failure
 * prints the seed; `npm run fuzz -- CASES --seed SEED` replays the same cases, and each failure
 * comes with the minimal case fast-check shrank it to.
 */
import { describe, expect, it } from 'vitest';
import { formatResult } from './report.js';
import { runFuzz } from './runner.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_202);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);

describe('the real server under generated traffic', () => {
  it(`survives ${CASES} MQTT and REST cases with no 5xx, no corrupted state and no leak (seed ${SEED})`, async () => {
    const result = await runFuzz({ cases: CASES, seed: SEED, shrinkMs: 15_000 });
    const report = `replay with: npm run fuzz -- ${CASES} --seed ${SEED}\n${formatResult(result)}`;
    expect(result.aborted, report).toBeUndefined();
    expect(result.cases).toBe(CASES);
    // A timeout is reported but not failed on: under a loaded machine it may be the machine.
    const failures = result.failures.filter((f) => f.kind !== 'timeout');
    expect(failures.length === 0 ? 'no failures' : report).toBe('no failures');
  }, 180_000);
});
