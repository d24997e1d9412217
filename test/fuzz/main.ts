/**
 * `npm run fuzz -- N [--seed S] [--concurrency C] [--shrink-seconds T]`: N fuzz cases against the
 * real server, then the summary. Exits 1 when anything failed.
 * `npm run fuzz -- --seed S --replay I`: case I of seed S alone on a fresh server, shrunk if it fails.
 */
import { formatResult } from './report.js';
import { FuzzRun } from './runner.js';

interface Args {
  cases: number;
  seed: number;
  concurrency?: number;
  shrinkMs?: number;
  replay?: number;
}

const USAGE = 'usage: npm run fuzz -- N [--seed S] [--concurrency C] [--shrink-seconds T] | --seed S --replay INDEX';

function parse(argv: string[]): Args {
  const args = [...argv];
  const opts: Args = {
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
    else if (a === '--replay') opts.replay = value();
    else if (/^\d+$/.test(a)) opts.cases = Number(a);
    else throw new Error(`unknown argument ${a}; ${USAGE}`);
  }
  return opts;
}

const opts = parse(process.argv.slice(2));
if (opts.replay !== undefined) {
  // Any run length reaches case INDEX: generation depends on the seed and the index only.
  console.log(await new FuzzRun({ ...opts, cases: opts.replay + 1 }).replay(opts.replay));
} else {
  console.log(`fuzzing ${opts.cases} cases, seed ${opts.seed}`);
  const result = await new FuzzRun({ ...opts, log: (line) => console.log(line) }).run();
  console.log(`\n${formatResult(result)}`);
  process.exitCode = result.failures.length > 0 || result.aborted ? 1 : 0;
}
