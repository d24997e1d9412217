/**
 * `gatehouse backup` and `gatehouse restore`: the checks and the one-line answers. The copying
 * itself is SQLite's and lives in src/store/sqlite/backup.ts. Only the embedded SQLite store
 * exists today; a PostgreSQL backend will be backed up with pg_dump, and these commands will
 * have to refuse it with that advice.
 */
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  linkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { ConfigError, optionName } from './config.js';
import {
  copySqliteDatabase,
  databaseFile,
  installSqliteDatabase,
  removeDatabaseFiles,
  sqliteDatabaseProblem,
  syncDirectory,
} from './store/sqlite/backup.js';
import { lockDataDir, makeDirectory } from './store/sqlite/data-dir.js';

export interface CopyResult {
  /** The file copied: the database, or the backup restored. */
  from: string;
  /** The file written: the backup, or the restored database. */
  file: string;
  bytes: number;
  ms: number;
}

const DATA_DIR = () => optionName('dataDir');

/** Resolves `file` through symbolic links of its directory, for comparing paths. */
function canonical(file: string): string {
  try {
    return path.join(realpathSync(path.dirname(file)), path.basename(file));
  } catch {
    return path.resolve(file);
  }
}

/**
 * Writes a consistent copy of the database in `dataDir` to `to`, while a server may be running
 * on it. Refuses an existing `to` unless `force`. The copy is written under a temporary name
 * beside `to` and renamed, so `to` is either absent or complete.
 */
export async function backupDataDir(options: { dataDir: string; to: string; force: boolean }): Promise<CopyResult> {
  const started = performance.now();
  const { dataDir, force } = options;
  const source = databaseFile(dataDir);
  if (!existsSync(source)) {
    throw new ConfigError(`no database in ${dataDir}: start \`gatehouse serve\` there first (set ${DATA_DIR()})`);
  }
  const to = path.resolve(options.to);
  const sourceCanonical = canonical(source);
  const siblings = [sourceCanonical, `${sourceCanonical}-wal`, `${sourceCanonical}-shm`, `${sourceCanonical}-journal`];
  if (siblings.includes(canonical(to))) {
    throw new ConfigError(`${to} is the database being backed up: name another file (set --to)`);
  }
  const existing = statOrUndefined(to);
  if (existing?.isDirectory()) throw new ConfigError(`${to} is a directory: name the backup file (set --to)`);
  if (existing && !force) throw new ConfigError(`${to} already exists (set --to, or --force to replace it)`);
  const dir = path.dirname(to);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new ConfigError(`cannot write the backup to ${to}: ${errorCode(err)} on ${dir} (set --to)`);
  }

  const temporary = `${to}.partial-${process.pid}`;
  removeDatabaseFiles(temporary);
  try {
    await copySqliteDatabase(source, temporary);
  } catch (err) {
    // Reading the database and writing the copy happen in one SQLite call: either may have failed.
    throw new ConfigError(
      `cannot back up the database in ${dataDir} to ${to}: ${(err as Error).message} (set ${DATA_DIR()}, or --to)`,
    );
  }
  try {
    // The database holds the secret that signs device tokens: the copy is for its owner only.
    chmodSync(temporary, 0o600);
    if (force) renameSync(temporary, to);
    else linkNew(temporary, to);
    syncDirectory(dir);
  } finally {
    removeDatabaseFiles(temporary);
  }
  return { from: source, file: to, bytes: statSync(to).size, ms: performance.now() - started };
}

/**
 * Makes the backup `from` the database of `dataDir`. Refuses while a server runs on that
 * directory (it holds the lock), and refuses to replace a database there unless `force`.
 */
export async function restoreDataDir(options: { from: string; dataDir: string; force: boolean }): Promise<CopyResult> {
  const started = performance.now();
  const { dataDir, force } = options;
  const from = path.resolve(options.from);
  const found = statOrUndefined(from);
  if (!found) throw new ConfigError(`no backup at ${from} (set --from)`);
  if (!found.isFile()) throw new ConfigError(`${from} is not a file (set --from)`);
  const problem = sqliteDatabaseProblem(from);
  if (problem) throw new ConfigError(`cannot restore ${from}: ${problem} (set --from)`);
  const target = databaseFile(dataDir);
  if (canonical(from) === canonical(target)) {
    throw new ConfigError(`${from} is already the database of ${dataDir} (set --from or ${DATA_DIR()})`);
  }
  try {
    makeDirectory(dataDir);
  } catch (err) {
    throw new ConfigError(`cannot use data directory ${dataDir}: ${errorCode(err)} (set ${DATA_DIR()})`);
  }
  let lock: ReturnType<typeof lockDataDir>;
  try {
    lock = lockDataDir(dataDir);
  } catch (err) {
    throw new ConfigError(`cannot use data directory ${dataDir}: ${(err as Error).message} (set ${DATA_DIR()})`);
  }
  if (!lock) {
    throw new ConfigError(
      `data directory ${dataDir} is in use by a running gatehouse server: stop it first (set ${DATA_DIR()})`,
    );
  }
  try {
    if (existsSync(target) && !force) {
      throw new ConfigError(
        `data directory ${dataDir} already holds a database (set ${DATA_DIR()}, or --force to replace it)`,
      );
    }
    try {
      await installSqliteDatabase(from, dataDir);
    } catch (err) {
      throw new ConfigError(`cannot restore into ${dataDir}: ${(err as Error).message} (set ${DATA_DIR()})`);
    }
  } finally {
    lock.release();
  }
  return { from, file: target, bytes: statSync(target).size, ms: performance.now() - started };
}

/** `12.3 MiB (12912312 bytes)`. */
export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}

/** `0.42 s`. */
export function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Gives `temporary` the name `to` only if nothing has it yet (a hard link fails when it exists). */
function linkNew(temporary: string, to: string): void {
  try {
    linkSync(temporary, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ConfigError(`${to} already exists (set --to, or --force to replace it)`);
    // A file system without hard links: the check made before the copy has to do.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      if (existsSync(to)) throw new ConfigError(`${to} already exists (set --to, or --force to replace it)`);
      renameSync(temporary, to);
      return;
    }
    throw new ConfigError(`cannot write the backup to ${to}: ${code ?? (err as Error).message} (set --to)`);
  }
  rmSync(temporary, { force: true });
}

function statOrUndefined(file: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
