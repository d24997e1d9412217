/**
 * A per-device bound on communication log entries (docs/decisions.md, "Device logs"). A device
 * that sends malformed data as fast as its rate limit allows, or a gateway whose peripherals all
 * misbehave, must not turn each message into rows on disk without end. Within each window a
 * device gets at most `entries` log entries; the rest are counted, and once the window has
 * passed one `suppressed` entry says how many were left out.
 */
import type { DeviceLogEntry } from '../domain/model.js';

export interface LogBudgetLimits {
  entries: number;
  windowMs: number;
}

export const DEFAULT_LOG_BUDGET: LogBudgetLimits = { entries: 100, windowMs: 60_000 };

interface Window {
  start: number;
  count: number;
  suppressed: number;
  applicationId: string;
}

export class LogBudget {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly limits: LogBudgetLimits = DEFAULT_LOG_BUDGET) {}

  /** The entries that fit in their devices' budgets, preceded by summaries of windows that ended. */
  admit(entries: readonly DeviceLogEntry[], now: number): DeviceLogEntry[] {
    const out: DeviceLogEntry[] = [];
    for (const entry of entries) {
      let window = this.windows.get(entry.deviceId);
      if (!window || now - window.start >= this.limits.windowMs) {
        if (window?.suppressed) out.push(this.summary(entry.deviceId, window, now));
        window = { start: now, count: 0, suppressed: 0, applicationId: entry.applicationId };
        this.windows.set(entry.deviceId, window);
      }
      if (window.count < this.limits.entries) {
        window.count++;
        out.push(entry);
      } else {
        window.suppressed++;
      }
    }
    return out;
  }

  /** Summaries of every window that ended with entries left out; forgets ended windows. */
  sweep(now: number): DeviceLogEntry[] {
    const out: DeviceLogEntry[] = [];
    for (const [deviceId, window] of this.windows) {
      if (now - window.start < this.limits.windowMs) continue;
      if (window.suppressed) out.push(this.summary(deviceId, window, now));
      this.windows.delete(deviceId);
    }
    return out;
  }

  /** Forgets a device (deleted). */
  forget(deviceId: string): void {
    this.windows.delete(deviceId);
  }

  private summary(deviceId: string, window: Window, now: number): DeviceLogEntry {
    const seconds = Math.round(this.limits.windowMs / 1000);
    return {
      deviceId,
      applicationId: window.applicationId,
      time: now,
      kind: 'suppressed',
      details: {
        count: window.suppressed,
        since: new Date(window.start).toISOString(),
        reason: `${window.suppressed} more log entries suppressed (at most ${this.limits.entries} per device in ${seconds} s)`,
      },
    };
  }
}
