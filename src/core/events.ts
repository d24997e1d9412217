import type { CommandRecord, DeviceLogEntry, StateRecord } from '../domain/model.js';

/** What the rest of the platform (streams, workflows) can follow. Payloads are stored facts. */
export interface PlatformEvents {
  /** A state stored for a device, whoever reported it. Emitted after the commit. */
  state: StateRecord & { applicationId: string };
  command: CommandRecord;
  deviceLog: DeviceLogEntry;
  /**
   * A device's connection changed, emitted once the change is committed. A peripheral's is
   * derived: connected by its first report through a connected gateway, disconnected (with
   * `gatewayId`) when that gateway disconnects or its peripheral timeout passes.
   */
  connection: ConnectionEvent;
  /** A publish on a custom topic of an application, accepted by the broker (`topic` unscoped). */
  customMessage: { applicationId: string; topic: string; payload: Buffer; publisherId: string; time: number };
}

export interface ConnectionEvent {
  deviceId: string;
  applicationId: string;
  connected: boolean;
  time: number;
  reason?: string;
  ipAddress?: string | null;
  messagesFromClient?: number;
  messagesToClient?: number;
  /** For a peripheral: the gateway its status follows. */
  gatewayId?: string;
}

/** A listener may be async: its rejection is reported like a throw. */
type Listener<T> = (payload: T) => void | Promise<void>;

interface Registration {
  listener: Listener<never>;
  owner: object | undefined;
}

/**
 * A typed event bus whose listeners cannot break the emitter: a listener that throws, or whose
 * promise rejects, is reported and the others still run, so a faulty consumer never fails
 * ingest. Emitting never waits for async listeners. Listeners registered with an owner are
 * removed together with `removeOwner(owner)`, when that module stops.
 */
export class EventBus {
  private readonly listeners = new Map<keyof PlatformEvents, Set<Registration>>();

  constructor(private readonly onListenerError: (err: unknown, event: keyof PlatformEvents) => void = () => {}) {}

  on<K extends keyof PlatformEvents>(event: K, listener: Listener<PlatformEvents[K]>, owner?: object): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    const registration: Registration = { listener: listener as Listener<never>, owner };
    set.add(registration);
    return () => set.delete(registration);
  }

  /** Removes every listener registered with `owner`. */
  removeOwner(owner: object): void {
    for (const set of this.listeners.values()) {
      for (const registration of set) if (registration.owner === owner) set.delete(registration);
    }
  }

  emit<K extends keyof PlatformEvents>(event: K, payload: PlatformEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const { listener } of set) {
      try {
        const result = (listener as Listener<PlatformEvents[K]>)(payload);
        if (result && typeof result.then === 'function') {
          result.then(undefined, (err: unknown) => this.onListenerError(err, event));
        }
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }

  hasListeners(event: keyof PlatformEvents): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }
}
