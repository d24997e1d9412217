/**
 * Copies of the SQLite database for `gatehouse backup` and `gatehouse restore`, made with
 * SQLite's online backup: a consistent snapshot, taken while a server may be writing.
 *
 * The source is opened as `gatehouse token create` opens it: a second connection beside the
 * running server, without the data directory's lock, creating and migrating nothing (see
 * `openSqliteStore({shared: true})`). Unlike the token command it accepts any schema: a copy made
 * before an upgrade is the one that matters most. Every page is copied in one backup step, which
 * reads one WAL snapshot while the server goes on writing. Copied in several steps, each write
 * of the server would restart the copy from its first page, and a busy server would keep it
 * from ever finishing.
 */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILENAME } from './sqlite-store.js';

/** The database file of a data directory. */
export function databaseFile(dataDir: string): string {
  return join(dataDir, DATABASE_FILENAME);
}

/** The files SQLite keeps beside a database in WAL mode. */
function walFiles(file: string): string[] {
  return [`${file}-wal`, `${file}-shm`];
}

/** Pages per backup step: all of them at once (the binding takes at most 2^31 - 1). */
const ALL_PAGES = 0x7fff_ffff;

/**
 * Writes a consistent copy of the database `source` to `destination`, a file that must not
 * exist (a temporary name; the caller renames it). On failure nothing is left at `destination`.
 * The copy is one self-contained file: it is taken out of WAL mode, so that opening it (to check
 * it, or to restore it) leaves no -wal and -shm files beside it. The server puts its database
 * back into WAL mode when it opens it. Returns the number of pages copied.
 */
export async function copySqliteDatabase(source: string, destination: string): Promise<number> {
  if (existsSync(destination)) throw new Error(`${destination} exists`);
  const db = new Database(source, { fileMustExist: true });
  try {
    // The server may hold the write lock for a group commit; a reader in WAL mode rarely waits.
    db.pragma('busy_timeout = 5000');
    const { totalPages } = await db.backup(destination, { progress: () => ALL_PAGES });
    const copy = new Database(destination, { fileMustExist: true });
    try {
      copy.pragma('journal_mode = DELETE');
    } finally {
      copy.close();
    }
    return totalPages;
  } catch (err) {
    removeDatabaseFiles(destination);
    throw err;
  } finally {
    db.close();
  }
}

/**
 * What is wrong with `file` as a Gatehouse database, or undefined when it passes SQLite's
 * integrity check and holds Gatehouse's schema (of any version: the server migrates it).
 */
export function sqliteDatabaseProblem(file: string): string | undefined {
  let db: Database.Database;
  try {
    // Read-write, though nothing is written: a read-only connection to a database in WAL mode
    // would leave -wal and -shm files beside it, which the last read-write one removes on close.
    db = new Database(file, { fileMustExist: true });
  } catch (err) {
    return (err as Error).message;
  }
  try {
    const rows = db.prepare<[], { integrity_check: string }>('PRAGMA integrity_check').all();
    const result = rows.map((r) => r.integrity_check).join('; ');
    if (result !== 'ok') return `integrity check failed: ${result}`;
    const schema = db
      .prepare<[], { found: number }>(
        "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
      )
      .get();
    if (!schema) return 'not a gatehouse database (no schema_migrations table)';
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    db.close();
  }
}

/**
 * Makes `backup` the database of `dataDir`, replacing the one there. The caller holds the data
 * directory's lock (no server uses it). The copy is made beside the database under a temporary
 * name first; then the old database's WAL files go (they belong to the old database and would
 * be applied to the new one), and the copy is renamed into place.
 */
export async function installSqliteDatabase(backup: string, dataDir: string): Promise<void> {
  const target = databaseFile(dataDir);
  const temporary = `${target}.restoring`;
  removeDatabaseFiles(temporary);
  await copySqliteDatabase(backup, temporary);
  try {
    for (const file of walFiles(target)) rmSync(file, { force: true });
    renameSync(temporary, target);
    syncDirectory(dataDir);
  } catch (err) {
    removeDatabaseFiles(temporary);
    throw err;
  }
}

/** Removes a database file and whatever SQLite may have left beside it. */
export function removeDatabaseFiles(file: string): void {
  for (const f of [file, `${file}-journal`, ...walFiles(file)]) rmSync(f, { force: true });
}

/** Makes a rename in `dir` durable. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
