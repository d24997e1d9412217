/**
 * `npm run fuzz -- N [--seed S] [--concurrency C] [--shrink-seconds T]`: N fuzz cases against the
 * real server, then the summary. Exits 1 when anything failed.
 */
import { formatResult } from './report.js';
import { runFuzz } from './runner.js';

function parse(argv: string[]): { cases: number; seed: number; concurrency?: number; shrinkMs?: number } {
  const args = [...argv];
  const opts: { cases: number; seed: number; concurrency?: number; shrinkMs?: number } = {
    cases: 10_000,
    seed: Date.now() % 2 ** 31,
  };
  while (args.length > 0) {
    const a = args.shift()!;
    const value = () => {
      const v = Number(args.shift());
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--seed') opts.seed = value();
    else if (a === '--concurrency') opts.concurrency = value();
    else if (a === '--shrink-seconds') opts.shrinkMs = value() * 1000;
    else if (/^\d+$/.test(a)) opts.cases = Number(a);
    else
      throw new Error(
        `unknown argument ${a}; usage: npm run fuzz -- N [--seed S] [--concurrency C] [--shrink-seconds T]`,
      );
  }
  return opts;
}

const opts = parse(process.argv.slice(2));
console.log(`fuzzing ${opts.cases} cases, seed ${opts.seed}`);
const result = await runFuzz({ ...opts, log: (line) => console.log(line) });
console.log(`\n${formatResult(result)}`);
process.exitCode = result.failures.length > 0 || result.aborted ? 1 : 0;
