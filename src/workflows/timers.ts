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

/** The longest delay Node's timers take. */
const MAX_TIMER_MS = 2_147_483_647;

/** Real time: setInterval and croner, neither keeping the process alive. */
export const realTimers: TimerSource = {
  every(ms, fire) {
    if (ms <= MAX_TIMER_MS) {
      const timer = setInterval(fire, ms);
      timer.unref();
      return () => clearInterval(timer);
    }
    // Longer than Node's timers allow (about 24.8 days, past which they fire at once): in steps.
    let due = Date.now() + ms;
    let timer: NodeJS.Timeout;
    const arm = () => {
      timer = setTimeout(
        () => {
          if (Date.now() >= due) {
            due += ms;
            fire();
          }
          arm();
        },
        Math.max(0, Math.min(due - Date.now(), MAX_TIMER_MS)),
      );
      timer.unref();
    };
    arm();
    return () => clearTimeout(timer);
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
