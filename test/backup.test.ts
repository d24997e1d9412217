/**
 * `gatehouse backup` and `gatehouse restore` as an operator runs them (the built CLI in a child
 * process; `npm test` builds first), against a real server that keeps ingesting.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './helpers/server.js';

const CLI = path.resolve('dist/src/cli.js');
const dirs: string[] = [];
const servers: TestServer[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-backup-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function serverOn(dataDir?: string): Promise<TestServer> {
  const server = await startTestServer({ ...(dataDir ? { dataDir } : {}), keepData: true });
  servers.push(server);
  return server;
}

/** Runs the CLI to its end: exit code, stdout and stderr. */
function gatehouse(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, GATEHOUSE_DATA_DIR: '' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The one line of a command that failed with exit code 1. */
async function oneLineFailure(args: string[]): Promise<string> {
  const run = await gatehouse(args);
  expect(run.code).toBe(1);
  expect(run.out).toBe('');
  const lines = run.err.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0] ?? '';
}

function integrityCheck(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>)
      .map((r) => r.integrity_check)
      .join('; ');
  } finally {
    db.close();
  }
}

/** Every stored state of a device between `start` and `end`, read in pages with start, end and limit. */
async function allStates(
  server: TestServer,
  applicationId: string,
  deviceId: string,
  start: number,
  end: number,
): Promise<Array<{ time: string; data: { seq: number } }>> {
  const states: Array<{ time: string; data: { seq: number } }> = [];
  let from = start;
  for (;;) {
    const page = ok(
      await server.http<Array<{ time: string; data: { seq: number } }>>(
        'GET',
        `/applications/${applicationId}/devices/${deviceId}/state?start=${from}&end=${end}&limit=10000&sortDirection=asc`,
      ),
      200,
    );
    states.push(...page);
    if (page.length < 10_000) return states;
    from = Date.parse((page.at(-1) as { time: string }).time) + 1;
  }
}

// Each test runs the CLI several times; a loaded machine takes seconds per start.
describe('gatehouse backup', { timeout: 90_000 }, () => {
  it('copies a database while a device publishes at QoS 1; the restored copy holds every state acknowledged before', async () => {
    const tmp = tempDir();
    const server = await serverOn();
    const app = ok(
      await server.http<{ id: string }>('POST', '/applications', {
        name: 'backup',
        rateLimit: { messages: 0, windowSeconds: 15 },
      }),
    );
    const device = ok(
      await server.http<{ id: string }>('POST', `/applications/${app.id}/devices`, {
        name: 'd',
        attributes: [{ name: 'seq', dataType: 'number' }],
      }),
    );
    const key = ok(await server.http<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {}));
    const client = await mqtt.connectAsync(server.running.urls.mqtt, {
      clientId: device.id,
      username: key.key,
      password: key.secret,
      reconnectPeriod: 0,
    });

    // States carry their own time, base + seq, so a seq names exactly one state.
    const base = Date.now() - 3_600_000;
    let next = 0;
    let backupBegan = false;
    let stop = false;
    const ackedBefore: number[] = [];
    const ackedAfter: number[] = [];
    const publisher = async () => {
      while (!stop) {
        const seq = next++;
        await client.publishAsync(`losant/${device.id}/state`, JSON.stringify({ data: { seq }, time: base + seq }), {
          qos: 1,
        });
        (backupBegan ? ackedAfter : ackedBefore).push(seq);
      }
    };
    // Twenty publishes in flight: the backup lands among group commits.
    const publishing = Promise.all(Array.from({ length: 20 }, publisher));
    while (ackedBefore.length < 2000) await new Promise((r) => setTimeout(r, 10));

    const backupFile = path.join(tmp, 'copies', 'gatehouse-backup.db');
    mkdirSync(path.dirname(backupFile));
    backupBegan = true;
    const backup = await gatehouse(['backup', '--data-dir', server.dataDir, '--to', backupFile]);
    stop = true;
    await publishing;
    await client.endAsync();

    expect(backup.err).toBe('');
    expect(backup.code).toBe(0);
    const line = backup.out.trimEnd().split('\n');
    expect(line).toHaveLength(1);
    expect(line[0]).toMatch(
      new RegExp(
        `^backup of ${server.dataDir} written to ${backupFile}: [\\d.]+ [KMG]iB \\(\\d+ bytes\\) in \\d+\\.\\d\\d s$`,
      ),
    );
    // Nothing else was left beside it: the temporary file was renamed, no -wal or -shm.
    expect(readdirSync(path.dirname(backupFile))).toEqual(['gatehouse-backup.db']);
    // It holds the secret that signs device tokens: readable by its owner only.
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(integrityCheck(backupFile)).toBe('ok');
    await server.stop();

    // Restored with the command into a new data directory, and by hand (the file copied in as gatehouse.db).
    const restoredDir = path.join(tmp, 'restored');
    const restore = await gatehouse(['restore', '--from', backupFile, '--data-dir', restoredDir]);
    expect(restore).toMatchObject({ code: 0, err: '' });
    expect(restore.out).toMatch(
      new RegExp(`^restored ${backupFile} into ${path.join(restoredDir, 'gatehouse.db')}: .* in \\d+\\.\\d\\d s\\n$`),
    );
    const byHandDir = path.join(tmp, 'by-hand');
    mkdirSync(byHandDir);
    copyFileSync(backupFile, path.join(byHandDir, 'gatehouse.db'));

    const end = base + next;
    let restoredSeqs: number[] = [];
    for (const dir of [restoredDir, byHandDir]) {
      const restored = await serverOn(dir);
      const states = await allStates(restored, app.id, device.id, base, end);
      const seqs = states.map((s) => s.data.seq);
      const stored = new Set(seqs);
      // Every state acknowledged before the backup began is in the copy...
      expect(ackedBefore.filter((seq) => !stored.has(seq))).toEqual([]);
      // ...each once, and nothing that was never sent.
      expect(stored.size).toBe(seqs.length);
      expect(seqs.every((seq) => seq < next)).toBe(true);
      // One snapshot: the composite state is the newest stored state's, as it was when that was stored.
      const newest = states.at(-1) as { time: string; data: { seq: number } };
      const composite = ok(
        await restored.http<Record<string, { value: unknown; time: string }>>(
          'GET',
          `/applications/${app.id}/devices/${device.id}/compositeState`,
        ),
        200,
      );
      expect(composite.seq).toEqual({ value: newest.data.seq, time: newest.time });
      // Minute rollups the server held in memory at the backup were rebuilt on the first start:
      // counts and sums per minute agree with the states.
      const series = ok(
        await restored.http<{ devices: Record<string, { points: Array<{ data: { seq?: number } }> }> }>(
          'POST',
          `/applications/${app.id}/data/time-series-query`,
          { deviceIds: [device.id], start: base, end, resolution: 60_000, aggregation: 'SUM' },
        ),
        200,
      );
      const sum = (series.devices[device.id]?.points ?? []).reduce((total, p) => total + (p.data.seq ?? 0), 0);
      expect(sum).toBe(seqs.reduce((a, b) => a + b, 0));
      await restored.stop();
      expect(integrityCheck(path.join(dir, 'gatehouse.db'))).toBe('ok');
      if (dir === restoredDir) restoredSeqs = seqs;
      else expect(seqs).toEqual(restoredSeqs);
    }
  });

  it('refuses with one line naming the option to change, and replaces a file only with --force', async () => {
    const tmp = tempDir();
    const server = await serverOn();
    const existing = path.join(tmp, 'existing.db');
    writeFileSync(existing, 'keep me');

    expect(await oneLineFailure(['backup', '--data-dir', server.dataDir, '--to', existing])).toBe(
      `gatehouse: ${existing} already exists (set --to, or --force to replace it)`,
    );
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    const forced = await gatehouse(['backup', '--data-dir', server.dataDir, '--to', existing, '--force']);
    expect(forced).toMatchObject({ code: 0, err: '' });
    expect(integrityCheck(existing)).toBe('ok');

    const empty = path.join(tmp, 'empty');
    expect(await oneLineFailure(['backup', '--data-dir', empty, '--to', path.join(tmp, 'x.db')])).toBe(
      `gatehouse: no database in ${empty}: start \`gatehouse serve\` there first (set --data-dir or GATEHOUSE_DATA_DIR)`,
    );
    expect(existsSync(empty)).toBe(false);
    const broken = path.join(tmp, 'broken');
    mkdirSync(broken);
    writeFileSync(path.join(broken, 'gatehouse.db'), 'this is not SQLite, just some text that is long enough');
    const brokenTo = path.join(tmp, 'from-broken.db');
    expect(await oneLineFailure(['backup', '--data-dir', broken, '--to', brokenTo])).toBe(
      `gatehouse: cannot back up the database in ${broken} to ${brokenTo}: file is not a database (set --data-dir or GATEHOUSE_DATA_DIR, or --to)`,
    );
    expect(readdirSync(tmp).filter((f) => f.startsWith('from-broken'))).toEqual([]);
    const nowhere = path.join(tmp, 'no-such-dir', 'x.db');
    expect(await oneLineFailure(['backup', '--data-dir', server.dataDir, '--to', nowhere])).toBe(
      `gatehouse: cannot write the backup to ${nowhere}: ENOENT on ${path.dirname(nowhere)} (set --to)`,
    );
    const itself = path.join(server.dataDir, 'gatehouse.db');
    expect(await oneLineFailure(['backup', '--data-dir', server.dataDir, '--to', itself, '--force'])).toBe(
      `gatehouse: ${itself} is the database being backed up: name another file (set --to)`,
    );
    expect(await oneLineFailure(['backup', '--data-dir', server.dataDir, '--to', tmp])).toBe(
      `gatehouse: ${tmp} is a directory: name the backup file (set --to)`,
    );
    expect(await oneLineFailure(['backup', '--data-dir', server.dataDir])).toBe(
      "error: required option '--to <file>' not specified",
    );
    // The server went on: it still answers, and its database is whole.
    ok(await server.http('GET', '/applications'), 200);
    expect(integrityCheck(itself)).toBe('ok');
  });
});

describe('gatehouse restore', { timeout: 90_000 }, () => {
  it('refuses a data directory a server is running on, one that holds a database (without --force), and a file that is no backup', async () => {
    const tmp = tempDir();
    const server = await serverOn();
    ok(await server.http('POST', '/applications', { name: 'before the backup' }));
    const backupFile = path.join(tmp, 'b.db');
    expect((await gatehouse(['backup', '--data-dir', server.dataDir, '--to', backupFile])).code).toBe(0);
    ok(await server.http('POST', '/applications', { name: 'after the backup' }));

    expect(await oneLineFailure(['restore', '--from', backupFile, '--data-dir', server.dataDir, '--force'])).toBe(
      `gatehouse: data directory ${server.dataDir} is in use by a running gatehouse server: stop it first (set --data-dir or GATEHOUSE_DATA_DIR)`,
    );
    ok(await server.http('GET', '/applications'), 200);
    await server.stop();

    expect(await oneLineFailure(['restore', '--from', backupFile, '--data-dir', server.dataDir])).toBe(
      `gatehouse: data directory ${server.dataDir} already holds a database (set --data-dir or GATEHOUSE_DATA_DIR, or --force to replace it)`,
    );
    const text = path.join(tmp, 'notes.txt');
    writeFileSync(text, 'not a database, only some text long enough to be read as one');
    expect(await oneLineFailure(['restore', '--from', text, '--data-dir', path.join(tmp, 'new')])).toBe(
      `gatehouse: cannot restore ${text}: file is not a database (set --from)`,
    );
    const missing = path.join(tmp, 'missing.db');
    expect(await oneLineFailure(['restore', '--from', missing, '--data-dir', path.join(tmp, 'new')])).toBe(
      `gatehouse: no backup at ${missing} (set --from)`,
    );

    // With --force the stopped server's database is replaced: what came after the backup is gone.
    const forced = await gatehouse(['restore', '--from', backupFile, '--data-dir', server.dataDir, '--force']);
    expect(forced).toMatchObject({ code: 0, err: '' });
    const again = await serverOn(server.dataDir);
    const names = ok(await again.http<{ items: Array<{ name: string }> }>('GET', '/applications'), 200).items.map(
      (a) => a.name,
    );
    expect(names).toEqual(['before the backup']);
  });
});
