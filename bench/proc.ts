/** Readings from /proc: CPU time and memory of a process, the machine, file-descriptor limits. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`, 100 on Linux). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU time of a process, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1_000_000) / clkTck();
}

/** A field of /proc/PID/status in kB (VmRSS, VmHWM). */
export function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match?.[1] ? Number(match[1]) : Number.NaN;
}

export const rssKb = (pid: number): number => statusKb(pid, 'VmRSS');

export interface Machine {
  cpus: number;
  model: string;
  node: string;
  memoryGb: number;
  kernel: string;
}

export function machine(): Machine {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) model = line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  return {
    cpus: os.availableParallelism(),
    model,
    node: process.version,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
  };
}

/** Soft and hard limits on open files of this process. */
export function fileLimits(): { soft: number; hard: number } {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const parse = (v: string | undefined) =>
    v === undefined || v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v);
  return { soft: parse(match?.[1]), hard: parse(match?.[2]) };
}

/** CPU time spent by the whole machine outside idle and I/O wait, in µs. */
export function machineBusyMicros(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user). Interrupt
  // time is left out: loopback traffic is partly processed there, on nobody's account.
  const busy = [0, 1, 2, 7].reduce((sum, i) => sum + (ticks[i] || 0), 0);
  return (busy * 1_000_000) / clkTck();
}

/**
 * Measures how much CPU other processes used while a scenario ran: machine busy time minus
 * this process and the given ones. Returns a function giving the average number of CPUs they kept busy.
 */
export function backgroundMeter(pids: number[]): () => number {
  const own0 = process.cpuUsage();
  const machine0 = machineBusyMicros();
  // A process that ends meanwhile (a database backend) counts as having used nothing since.
  const pids0 = pids.map((pid) => tryCpuMicros(pid) ?? 0);
  const t0 = performance.now();
  return () => {
    const own = process.cpuUsage(own0);
    const ours =
      own.user +
      own.system +
      pids.reduce((sum, pid, i) => sum + (tryCpuMicros(pid) ?? pids0[i] ?? 0) - (pids0[i] ?? 0), 0);
    const wallMicros = (performance.now() - t0) * 1000;
    return Math.max(0, machineBusyMicros() - machine0 - ours) / Math.max(1, wallMicros);
  };
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** cpuMicros, or undefined when the process is gone or its /proc entry cannot be read (not local). */
export function tryCpuMicros(pid: number): number | undefined {
  try {
    return cpuMicros(pid);
  } catch {
    return undefined;
  }
}

/**
 * CPU used by a set of processes that may change while it is measured (a database server's
 * backends come and go): `list` names them at the start and again at the end. A process that
 * appears meanwhile counts whole; one that ends meanwhile loses what it used since the start.
 * Resolves to a function giving the µs used since, or NaN when none of them could be read.
 */
export async function groupCpuMeter(list: () => Promise<number[]>): Promise<() => Promise<number>> {
  const start = new Map<number, number>();
  for (const pid of await list()) {
    const us = tryCpuMicros(pid);
    if (us !== undefined) start.set(pid, us);
  }
  return async () => {
    let total = 0;
    let read = 0;
    for (const pid of await list()) {
      const us = tryCpuMicros(pid);
      if (us === undefined) continue;
      read++;
      total += us - (start.get(pid) ?? 0);
    }
    return read > 0 ? total : Number.NaN;
  };
}

/** Resident memory of a process by kind of mapping, in kB (from /proc/PID/smaps). */
export interface RssByMapping {
  /** The main thread's malloc arena (`[heap]`). */
  mallocMain: number;
  /** glibc's arenas of other threads (libuv's pool, workers): 64 MiB-aligned reservations. */
  mallocThreads: number;
  /** Other anonymous memory: V8's heap pages, large malloc blocks (mmap), thread stacks. */
  otherAnonymous: number;
  /** Mapped files: node's binary, shared libraries, native addons. */
  files: number;
}

const ARENA = 64 * 1024 * 1024;

export function rssByMapping(pid: number): RssByMapping {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const maps: Array<{ start: number; end: number; perms: string; path: string; rss: number }> = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      maps.push({
        start: Number.parseInt(head[1] as string, 16),
        end: Number.parseInt(head[2] as string, 16),
        perms: head[3] as string,
        path: head[4] ?? '',
        rss: 0,
      });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    const last = maps.at(-1);
    if (rss && last) last.rss = Number(rss[1]);
  }
  const out: RssByMapping = { mallocMain: 0, mallocThreads: 0, otherAnonymous: 0, files: 0 };
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i]!;
    if (m.path === '[heap]') out.mallocMain += m.rss;
    else if (m.path !== '' && !m.path.startsWith('[')) out.files += m.rss;
    else if (m.path !== '') out.otherAnonymous += m.rss;
    else {
      // A thread arena: a 64 MiB-aligned read-write part followed by its unused (---p) rest.
      const next = maps[i + 1];
      const arena =
        m.start % ARENA === 0 &&
        (m.end - m.start === ARENA ||
          (next !== undefined && next.start === m.end && next.perms.startsWith('---') && next.end - m.start === ARENA));
      if (arena) out.mallocThreads += m.rss;
      else out.otherAnonymous += m.rss;
    }
  }
  return out;
}
