/**
 * The data directory: creating it, and the lock that keeps a second server off it.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';

function errnoError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdirSync retries forever when mkdir answers
 * ENOENT for a path whose parent exists, which is what procfs does (`/proc/self/x`): the process
 * spins at full CPU. Here every error is thrown with its code. A path that exists must be a
 * directory (ENOTDIR otherwise).
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let current = resolve(dir);
  for (;;) {
    try {
      if (!statSync(current).isDirectory()) throw errnoError('ENOTDIR', 'mkdir', current);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const parent = dirname(current);
      if (parent === current) throw err;
      missing.push(current);
      current = parent;
    }
  }
  for (const path of missing.reverse()) {
    try {
      mkdirSync(path);
    } catch (err) {
      // Made by someone else in the meantime: fine when it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(path).isDirectory()) throw err;
    }
  }
}

export const LOCK_FILENAME = 'gatehouse.lock';

/** Held while a server uses a data directory; `release` ends it. */
export interface DataDirLock {
  release(): void;
}

/**
 * Takes the data directory for one server, or returns undefined when another process holds it.
 * The lock is SQLite's own exclusive file lock on an empty database beside the data, so the
 * operating system drops it when the holder dies: a crash never leaves a stale lock behind.
 * Tools that only add a row (`gatehouse token create`) do not take it.
 */
export function lockDataDir(dir: string): DataDirLock | undefined {
  const db = new Database(join(dir, LOCK_FILENAME));
  try {
    db.pragma('busy_timeout = 0');
    // Nothing in it to protect: no journal file beside it.
    db.pragma('journal_mode = MEMORY');
    // In exclusive locking mode the lock taken by the first write transaction is kept until close.
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return undefined;
    throw err;
  }
  return { release: () => db.close() };
}
