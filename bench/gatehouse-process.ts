/**
 * The real server as a child process: `node dist/src/cli.js serve` on port 0 with a fresh data
 * directory, its URLs read from the lines it prints once listening.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

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
  /** SIGTERM, wait for exit (SIGKILL after `ms`), remove the data directory. Idempotent. */
  stop(ms?: number): Promise<number | null>;
}

export async function startGatehouseProcess(startupMs = 30_000): Promise<GatehouseProcess> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-'));
  const adminToken = `bench-${randomBytes(18).toString('hex')}`;
  // BENCH_SERVER_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'serve'], {
    env: {
      ...process.env,
      GATEHOUSE_DATA_DIR: dataDir,
      GATEHOUSE_MQTT_PORT: '0',
      GATEHOUSE_HTTP_PORT: '0',
      GATEHOUSE_HOST: '127.0.0.1',
      GATEHOUSE_ADMIN_TOKEN: adminToken,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Should the benchmark die without its clean-up, the server must not outlive it.
  const onExit = () => {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  let stopping: Promise<number | null> | undefined;
  const stop = (ms = 30_000): Promise<number | null> => {
    stopping ??= (async () => {
      const code = await terminate(child, exited, ms);
      process.off('exit', onExit);
      rmSync(dataDir, { recursive: true, force: true });
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
        log.push(line);
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
      createInterface({ input: child.stderr! }).on('line', (line) => log.push(`stderr: ${line}`));
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
