/**
 * What the fuzzer sent that may legitimately change stored data, so the oracle can tell an
 * accepted state from corruption. States are recorded by target device, reporter and attribute
 * with every form a lossless conversion could store; custom-topic publishes by topic and payload
 * with the applications that sent them.
 *
 * Entries live in generations: a checkpoint that found everything explained starts a new one,
 * and the previous generation is kept for anything that arrived late.
 */
import { createHash } from 'node:crypto';
import type { AppRole, DeviceRole } from './model.js';

/** How a value is compared: its JSON text, or a hash of it when long. */
export function valueKey(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 80 ? `#${createHash('sha1').update(text).digest('hex')}` : text;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every value a lossless conversion of `v` could store (loose: any type's conversion). */
function storedForms(v: unknown): unknown[] {
  if (typeof v === 'number') return v === 0 || v === 1 ? [v, String(v), v === 1] : [v, String(v)];
  if (typeof v === 'boolean') return [v, String(v)];
  if (typeof v === 'string') {
    const out: unknown[] = [v];
    const t = v.trim();
    if (t !== '' && Number.isFinite(Number(t))) out.push(Number(t));
    if (v === 'true' || v === '1') out.push(true);
    if (v === 'false' || v === '0') out.push(false);
    const parts = v.split(',');
    if (parts.length === 2) out.push(`${Number(parts[0]?.trim())},${Number(parts[1]?.trim())}`);
    return out;
  }
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [`${v[0]},${v[1]}`];
  return [];
}

export interface TimeInfo {
  /** Absolute times sent, in ms. */
  absolute: number[];
  /** A negative time: ms before the receive time. */
  before?: number;
}

/** The times a sent TIME may stand for (the fuzzer's own reading of the documented forms). */
export function sentTimes(value: unknown): TimeInfo {
  const inner = isPlainObject(value) && '$date' in value ? value.$date : value;
  const fromNumber = (n: number): TimeInfo => {
    if (!Number.isFinite(n)) return { absolute: [] };
    if (n < 0) return { absolute: [], before: -n };
    return { absolute: [Math.round(n < 1e11 ? n * 1000 : n)] };
  };
  if (typeof inner === 'number') return fromNumber(inner);
  if (typeof inner === 'string') {
    const t = inner.trim();
    if (/^-?\d+(\.\d+)?$/.test(t)) return fromNumber(Number(t));
    const ms = Date.parse(t);
    return { absolute: Number.isFinite(ms) ? [ms] : [] };
  }
  return { absolute: [] };
}

interface DeviceEntries {
  /** attribute -> value keys */
  values: Map<string, Set<string>>;
  times: Set<number>;
  /** Device ids (or `api`) that sent accepted or possibly accepted state. */
  reporters: Set<string>;
  /** The largest "ms before now" sent. */
  before: number;
  /** States sent, each possibly stored at a receive time 1 ms after the previous one. */
  count: number;
  /** The last cases that wrote here, for reports. */
  cases: number[];
}

export interface CustomEntry {
  /** Applications whose clients were allowed to publish it. */
  apps: Set<AppRole>;
  /** Applications whose clients published it although their key forbids it. */
  forbidden: Set<AppRole>;
  /** A case that published it (-1: the fuzzer's own sync messages). */
  caseIndex: number;
  case?: unknown;
}

interface Generation {
  startedAt: number;
  devices: Map<DeviceRole, DeviceEntries>;
  /** topic NUL payload hash -> applications that published it, and a case that did. */
  custom: Map<string, CustomEntry>;
}

const newGeneration = (): Generation => ({ startedAt: Date.now(), devices: new Map(), custom: new Map() });

export function customKey(topic: string, payload: Buffer): string {
  return `${topic}\u0000${createHash('sha1').update(payload).digest('hex')}`;
}

export class Ledger {
  private current = newGeneration();
  private previous: Generation | null = null;
  /** Retained custom messages outlive generations: a later subscription receives them. */
  private readonly retained = new Map<string, CustomEntry>();

  /** Starts a new generation; the one before is kept, older ones are forgotten. */
  rotate(): void {
    this.previous = this.current;
    this.current = newGeneration();
  }

  /** Since when the oldest kept generation has been recording. */
  get since(): number {
    return (this.previous ?? this.current).startedAt;
  }

  private entries(device: DeviceRole): DeviceEntries {
    let e = this.current.devices.get(device);
    if (!e) {
      e = { values: new Map(), times: new Set(), reporters: new Set(), before: 0, count: 0, cases: [] };
      this.current.devices.set(device, e);
    }
    return e;
  }

  /** A state payload `reporter` sent to `device` that the server accepted or may have accepted. */
  recordState(device: DeviceRole, reporter: string, payload: Buffer, caseIndex: number): void {
    let parsed: unknown;
    try {
      // As the server reads it: a leading byte order mark is ignored (RFC 8259 allows it).
      parsed = JSON.parse(new TextDecoder('utf-8').decode(payload));
    } catch {
      return;
    }
    const e = this.entries(device);
    e.reporters.add(reporter);
    e.cases.push(caseIndex);
    if (e.cases.length > 5) e.cases.shift();
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!isPlainObject(item) || !isPlainObject(item.data)) continue;
      e.count++;
      const t = sentTimes(item.time);
      for (const ms of t.absolute) e.times.add(ms);
      if (t.before !== undefined) e.before = Math.max(e.before, t.before);
      for (const [name, value] of Object.entries(item.data)) {
        let set = e.values.get(name);
        if (!set) {
          set = new Set();
          e.values.set(name, set);
        }
        for (const form of storedForms(value)) set.add(valueKey(form));
      }
    }
  }

  private each(device: DeviceRole): DeviceEntries[] {
    const out: DeviceEntries[] = [];
    const a = this.previous?.devices.get(device);
    const b = this.current.devices.get(device);
    if (a) out.push(a);
    if (b) out.push(b);
    return out;
  }

  wrote(device: DeviceRole): boolean {
    return this.each(device).length > 0;
  }

  explainsValue(device: DeviceRole, attribute: string, value: unknown): boolean {
    const key = valueKey(value);
    return this.each(device).some((e) => e.values.get(attribute)?.has(key));
  }

  reporters(device: DeviceRole): Set<string> {
    return new Set(this.each(device).flatMap((e) => [...e.reporters]));
  }

  /** Could a state of `device` have been stored at `time`, given what was sent since `since`? */
  explainsTime(device: DeviceRole, time: number, now: number): boolean {
    const all = this.each(device);
    if (all.some((e) => e.times.has(time))) return true;
    const before = Math.max(0, ...all.map((e) => e.before));
    const count = all.reduce((n, e) => n + e.count, 0);
    // A receive time, or one relative to it: from the start of the kept generations until now,
    // pushed later by at most 1 ms per state when several arrive within one millisecond.
    return time >= this.since - before - 1000 && time <= now + count + 1000;
  }

  casesFor(device: DeviceRole): number[] {
    return this.each(device).flatMap((e) => e.cases);
  }

  /**
   * A custom-topic publish. `allowed`: the publisher's key lets it publish there (the fuzzer's
   * reading of the key rules), so subscribers of its application may receive it.
   */
  recordCustom(
    topic: string,
    payload: Buffer,
    app: AppRole,
    allowed: boolean,
    retain: boolean,
    source: { index: number; case?: unknown },
  ): void {
    const key = customKey(topic, payload);
    const add = (map: Map<string, CustomEntry>) => {
      let entry = map.get(key);
      if (!entry) {
        entry = { apps: new Set(), forbidden: new Set(), caseIndex: source.index, case: source.case };
        map.set(key, entry);
      }
      (allowed ? entry.apps : entry.forbidden).add(app);
    };
    add(this.current.custom);
    if (retain) add(this.retained);
  }

  /** Who published this custom message, over every kept generation (undefined: nobody the fuzzer knows). */
  customPublishers(topic: string, payload: Buffer): CustomEntry | undefined {
    const key = customKey(topic, payload);
    const found = [this.current.custom.get(key), this.previous?.custom.get(key), this.retained.get(key)].filter(
      (e): e is CustomEntry => e !== undefined,
    );
    if (found.length === 0) return undefined;
    return {
      apps: new Set(found.flatMap((e) => [...e.apps])),
      forbidden: new Set(found.flatMap((e) => [...e.forbidden])),
      caseIndex: found[0]!.caseIndex,
      case: found[0]!.case,
    };
  }
}
