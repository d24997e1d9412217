/**
 * A bounded queue on disk that survives a process restart. Plain files, no native modules:
 *
 * - `journal.jsonl`: one JSON line per state, appended when it is queued
 *   (`{"seq":12,"deviceId":"...","data":{...},"time":1700000000000}`);
 * - `acked`: a number; every entry with a seq at or below it has left the queue (acknowledged by
 *   the server or dropped by the bound);
 * - `lock`: the pid of the process using the directory.
 *
 * When most of the journal has been consumed it is compacted: the remaining entries are written
 * to a new file that replaces the journal by rename, keeping their seqs, so `acked` stays valid
 * whether or not the process stops in between. A line torn by a crash mid-append is cut off at
 * the next open.
 *
 * Writing `acked` after every acknowledgement is cheap but is not fsynced: after a power loss, or
 * for acknowledgements that arrived out of order, a few entries may be sent again. That is
 * harmless because every entry keeps the time it was given when queued, and Gatehouse merges two
 * states of one device with the same millisecond time.
 */
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { MemoryQueue } from './memory-queue.js';
import type { QueuedState } from './types.js';

/** Directories this process holds, so a second queue on the same one fails as it would across processes. */
const held = new Set<string>();

export class QueueLockedError extends Error {
  override name = 'QueueLockedError';
}

export interface FileQueueOptions {
  dir: string;
  maxMessages?: number;
  fsync?: boolean;
  /** Compact once at least this many consumed lines are in the journal (and they are at least half of it). Default 1000. */
  compactAfter?: number;
}

export class FileQueue extends MemoryQueue {
  readonly dir: string;
  private readonly fsync: boolean;
  private readonly compactAfter: number;
  private journalFd: number | null = null;
  private ackFd: number | null = null;
  private ackedSeq = 0;
  /** Complete lines in the journal file, consumed or not. */
  private journalLines = 0;
  /** Lines that could not be read at open (a torn or damaged line); they are skipped. */
  skippedLines = 0;

  constructor(options: FileQueueOptions) {
    super(options.maxMessages === undefined ? {} : { maxMessages: options.maxMessages });
    this.dir = path.resolve(options.dir);
    this.fsync = options.fsync ?? false;
    this.compactAfter = options.compactAfter ?? 1000;
  }

  private get journalPath(): string {
    return path.join(this.dir, 'journal.jsonl');
  }

  private get ackPath(): string {
    return path.join(this.dir, 'acked');
  }

  override open(): void {
    if (this.journalFd !== null) return;
    mkdirSync(this.dir, { recursive: true });
    this.lock();
    try {
      rmSync(`${this.journalPath}.tmp`, { force: true }); // an interrupted compaction
      this.ackedSeq = readAcked(this.ackPath);
      this.lastSeq = this.ackedSeq;
      this.load();
      this.journalFd = openSync(this.journalPath, 'a');
      this.ackFd = openSync(this.ackPath, constants.O_RDWR | constants.O_CREAT, 0o644);
      // A bound lowered since the last run.
      this.trim();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  override close(): void {
    if (this.journalFd !== null) closeSync(this.journalFd);
    if (this.ackFd !== null) closeSync(this.ackFd);
    this.journalFd = null;
    this.ackFd = null;
    if (held.delete(this.dir)) rmSync(path.join(this.dir, 'lock'), { force: true });
  }

  protected override append(entry: QueuedState): void {
    if (this.journalFd === null) throw new Error(`queue ${this.dir} is not open`);
    writeSync(this.journalFd, `${JSON.stringify(entry)}\n`);
    if (this.fsync) fsyncSync(this.journalFd);
    this.journalLines++;
  }

  protected override consumed(): void {
    const acked = this.entries[0] ? this.entries[0].seq - 1 : this.lastSeq;
    if (acked !== this.ackedSeq && this.ackFd !== null) {
      this.ackedSeq = acked;
      writeSync(this.ackFd, `${String(acked).padStart(20, ' ')}\n`, 0);
    }
    const consumedLines = this.journalLines - this.entries.length;
    if (consumedLines >= this.compactAfter && consumedLines >= this.entries.length) this.compact();
  }

  /** Rewrites the journal with the entries still queued (same seqs), then swaps it in by rename. */
  private compact(): void {
    if (this.journalFd === null) return;
    const tmp = `${this.journalPath}.tmp`;
    writeFileSync(tmp, this.entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    const tmpFd = openSync(tmp, 'r+');
    try {
      fsyncSync(tmpFd);
    } finally {
      closeSync(tmpFd);
    }
    closeSync(this.journalFd);
    this.journalFd = null;
    renameSync(tmp, this.journalPath);
    syncDirectory(this.dir);
    this.journalFd = openSync(this.journalPath, 'a');
    this.journalLines = this.entries.length;
  }

  private load(): void {
    if (!existsSync(this.journalPath)) return;
    const text = readFileSync(this.journalPath, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) truncateSync(this.journalPath, Buffer.byteLength(text.slice(0, end)));
    const lines = text.slice(0, end).split('\n');
    lines.pop(); // the empty string after the last newline
    this.journalLines = lines.length;
    for (const line of lines) {
      const entry = parseEntry(line);
      if (!entry) {
        this.skippedLines++;
        continue;
      }
      this.lastSeq = Math.max(this.lastSeq, entry.seq);
      if (entry.seq > this.ackedSeq) this.entries.push(entry);
    }
    this.entries.sort((a, b) => a.seq - b.seq);
  }

  private lock(): void {
    const file = path.join(this.dir, 'lock');
    if (held.has(this.dir)) throw new QueueLockedError(`queue directory ${this.dir} is already open in this process`);
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid !== process.pid && isAlive(pid)) {
        throw new QueueLockedError(
          `queue directory ${this.dir} is in use by process ${pid} (delete ${file} if that process is not a gateway)`,
        );
      }
      writeFileSync(file, String(process.pid)); // left by a process that is gone
    }
    held.add(this.dir);
  }
}

function readAcked(file: string): number {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function parseEntry(line: string): QueuedState | undefined {
  try {
    const v = JSON.parse(line) as Partial<QueuedState>;
    if (
      typeof v.seq === 'number' &&
      Number.isSafeInteger(v.seq) &&
      typeof v.deviceId === 'string' &&
      typeof v.time === 'number' &&
      typeof v.data === 'object' &&
      v.data !== null
    ) {
      return { seq: v.seq, deviceId: v.deviceId, data: v.data, time: v.time };
    }
  } catch {
    // a damaged line
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported on every platform; the rename itself is atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
