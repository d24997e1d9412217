/**
 * The real server as a child process: `node dist/src/cli.js serve` on port 0 with a fresh data
 * directory, its URLs read from the lines it prints once listening. The fuzzer (test/fuzz/) also
 * restarts it on the same data directory and ports after a crash.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// Compiled, this module sits in dist/bench next to dist/src; run from source (Vitest), it sits in bench/.
const CLI = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../dist/src/cli.js' : '../src/cli.js', import.meta.url),
);

export interface GatehouseProcessOptions {
  startupMs?: number;
  /** An existing data directory (a restart); stop() leaves it in place. Default: a fresh one, removed by stop(). */
  dataDir?: string;
  /** Default 0 (a free port); a restart passes the ports of the previous run so clients can reconnect. */
  mqttPort?: number;
  httpPort?: number;
  /** Default: a random one. A restart on an existing data directory must pass the first one. */
  adminToken?: string;
  /** Keep only the last lines of output (default: all of it). */
  outputLines?: number;
  /** Extra `serve` arguments, e.g. `['--log-level', 'warn']`. */
  serveArgs?: string[];
  /** Extra node flags for the server, after those of BENCH_SERVER_ARGS. */
  nodeArgs?: string[];
}

export interface GatehouseProcess {
  pid: number;
  mqttUrl: string;
  mqttPort: number;
  httpUrl: string;
  adminToken: string;
  dataDir: string;
  dbFile: string;
  /** Server output (both streams) so far, for error reports. */
  output(): string;
  /** Resolves when the process has exited, however it ended (a crash, a signal, stop()). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, wait for exit (SIGKILL after `ms`), remove the data directory if it was created here. Idempotent. */
  stop(ms?: number): Promise<number | null>;
}

export async function startGatehouseProcess(options: GatehouseProcessOptions = {}): Promise<GatehouseProcess> {
  const { startupMs = 30_000, outputLines = Number.POSITIVE_INFINITY } = options;
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-'));
  const adminToken = options.adminToken ?? `bench-${randomBytes(18).toString('hex')}`;
  // BENCH_SERVER_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = [...(process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean), ...(options.nodeArgs ?? [])];
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'serve', ...(options.serveArgs ?? [])], {
    env: {
      ...process.env,
      GATEHOUSE_DATA_DIR: dataDir,
      GATEHOUSE_MQTT_PORT: String(options.mqttPort ?? 0),
      GATEHOUSE_HTTP_PORT: String(options.httpPort ?? 0),
      GATEHOUSE_HOST: '127.0.0.1',
      GATEHOUSE_ADMIN_TOKEN: adminToken,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const record = (line: string) => {
    log.push(line);
    if (log.length > outputLines) log.shift();
  };
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const exited = ended.then(({ code }) => code);
  const removeDir = () => {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };
  // Should the benchmark die without its clean-up, the server must not outlive it.
  const onExit = () => {
    child.kill('SIGTERM');
    removeDir();
  };
  process.once('exit', onExit);
  let stopping: Promise<number | null> | undefined;
  const stop = (ms = 30_000): Promise<number | null> => {
    stopping ??= (async () => {
      const code = await terminate(child, exited, ms);
      process.off('exit', onExit);
      removeDir();
      return code;
    })();
    return stopping;
  };

  try {
    const urls = await new Promise<{ mqtt: string; http: string }>((resolve, reject) => {
      let mqtt: string | undefined;
      let http: string | undefined;
      const timer = setTimeout(() => reject(new Error(`server did not start within ${startupMs} ms`)), startupMs);
      const onLine = (line: string) => {
        record(line);
        const m = /^mqtt listening on (mqtt:\/\/\S+)$/.exec(line);
        if (m?.[1]) mqtt = m[1];
        const h = /^http listening on (http:\/\/\S+)$/.exec(line);
        if (h?.[1]) http = h[1];
        if (mqtt && http) {
          clearTimeout(timer);
          resolve({ mqtt, http });
        }
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', (line) => record(`stderr: ${line}`));
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with code ${code} before listening:\n${log.join('\n')}`));
      });
    });
    const mqttPort = Number(new URL(urls.mqtt).port);
    if (mqttPort === 1883) throw new Error('server is listening on 1883, the port of the machine-wide Mosquitto');
    return {
      pid: child.pid!,
      mqttUrl: urls.mqtt,
      mqttPort,
      httpUrl: urls.http,
      adminToken,
      dataDir,
      dbFile: path.join(dataDir, 'gatehouse.db'),
      output: () => log.join('\n'),
      exited: ended,
      stop,
    };
  } catch (err) {
    await stop(5_000);
    throw err;
  }
}

/** SIGTERM, then SIGKILL if the process has not exited after `ms`. Resolves with the exit code. */
export async function terminate(
  child: ChildProcess,
  exited: Promise<number | null>,
  ms: number,
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, ms);
  });
  const code = await Promise.race([exited, killed]);
  clearTimeout(timer);
  return code;
}
