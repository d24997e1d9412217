import type { CommandRecord, DeviceLogEntry, StateRecord } from '../domain/model.js';

/** What the rest of the platform (streams, workflows) can follow. Payloads are stored facts. */
export interface PlatformEvents {
  /** A state stored for a device, whoever reported it. Emitted after the commit. */
  state: StateRecord & { applicationId: string };
  command: CommandRecord;
  deviceLog: DeviceLogEntry;
}

type Listener<T> = (payload: T) => void;

/**
 * A typed event bus whose listeners cannot break the emitter: a throwing listener is reported
 * and the others still run, so a faulty consumer never fails ingest.
 */
export class EventBus {
  private readonly listeners = new Map<keyof PlatformEvents, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  on<K extends keyof PlatformEvents>(event: K, listener: Listener<PlatformEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof PlatformEvents>(event: K, payload: PlatformEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<PlatformEvents[K]>)(payload);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  hasListeners(event: keyof PlatformEvents): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }
}
