/**
 * What fires `timer` triggers: intervals and cron schedules. The engine takes a TimerSource, so
 * tests can drive timers by hand (ManualTimers) instead of waiting on real time.
 */
import { Cron } from 'croner';

export interface TimerSource {
  /** Calls `fire` every `ms`; answers the function that stops it. */
  every(ms: number, fire: () => void): () => void;
  /** Calls `fire` on a cron schedule (5 or 6 fields) read in `timezone`; answers the function that stops it. */
  cron(pattern: string, timezone: string, fire: () => void): () => void;
}

/** Real time: setInterval and croner, neither keeping the process alive. */
export const realTimers: TimerSource = {
  every(ms, fire) {
    const timer = setInterval(fire, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  cron(pattern, timezone, fire) {
    const job = new Cron(pattern, { timezone, unref: true, mode: '5-or-6-parts', protect: true }, fire);
    return () => job.stop();
  },
};

export interface ManualTimer {
  kind: 'every' | 'cron';
  /** The interval in ms, or the cron pattern. */
  schedule: number | string;
  timezone?: string;
  fire: () => void;
  stopped: boolean;
}

/** Timers that fire only when told to (tests). */
export class ManualTimers implements TimerSource {
  readonly timers: ManualTimer[] = [];

  every(ms: number, fire: () => void): () => void {
    return this.add({ kind: 'every', schedule: ms, fire, stopped: false });
  }

  cron(pattern: string, timezone: string, fire: () => void): () => void {
    return this.add({ kind: 'cron', schedule: pattern, timezone, fire, stopped: false });
  }

  /** The timers running now. */
  get running(): ManualTimer[] {
    return this.timers.filter((t) => !t.stopped);
  }

  /** Fires every running timer whose schedule is `schedule` (all when omitted); how many fired. */
  fire(schedule?: number | string): number {
    const due = this.running.filter((t) => schedule === undefined || t.schedule === schedule);
    for (const t of due) t.fire();
    return due.length;
  }

  private add(timer: ManualTimer): () => void {
    this.timers.push(timer);
    return () => {
      timer.stopped = true;
    };
  }
}
