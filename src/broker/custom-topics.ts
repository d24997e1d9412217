/**
 * Custom topics (outside the platform prefix) belong to one application. Inside the broker a
 * custom topic `T` of application `A` is `$app/A/T`: publishes are rewritten on the way in,
 * subscriptions when they are granted, and topics are restored on the way out, so a client
 * never sees the scope. Retained messages are stored under the scoped topic, so they are
 * per application too. No client can publish or subscribe to a `$` topic (docs/decisions.md,
 * "Custom topics"), and wildcards at the start of a filter never match `$` topics
 * [MQTT-4.7.2-1], so one application's messages cannot reach another's clients.
 */
import { isId } from '../domain/ids.js';

const SCOPE = '$app/';
/** `$app/` + a 24-character id + `/`. */
const SCOPE_LENGTH = SCOPE.length + 24 + 1;

export function scopeTopic(applicationId: string, topic: string): string {
  return `${SCOPE}${applicationId}/${topic}`;
}

/** The application and client-side topic of a scoped topic (or filter); undefined for any other topic. */
export function unscopeTopic(scoped: string): { applicationId: string; topic: string } | undefined {
  if (!scoped.startsWith(SCOPE) || scoped.length <= SCOPE_LENGTH || scoped[SCOPE_LENGTH - 1] !== '/') return undefined;
  const applicationId = scoped.slice(SCOPE.length, SCOPE_LENGTH - 1);
  return isId(applicationId) ? { applicationId, topic: scoped.slice(SCOPE_LENGTH) } : undefined;
}

export interface RetainedLimits {
  /** Retained messages an application may hold. */
  messages: number;
  /** Their payload bytes in all. */
  bytes: number;
}

export const DEFAULT_RETAINED_LIMITS: RetainedLimits = { messages: 1_000, bytes: 16 * 1024 * 1024 };

/**
 * What an application holds in retained messages: in this node's memory (RetainedBudget) or, when
 * nodes share Redis, in Redis (src/cluster/shared-sessions.ts).
 */
export interface RetainedBounds {
  /** Why a retained publish of `bytes` on `topic` does not fit (nothing changes then), or null: taken. */
  admit(applicationId: string, topic: string, bytes: number): string | null | Promise<string | null>;
  /** Forgets an application; answers the topics it held, so their messages can be removed. */
  release(applicationId: string): string[] | Promise<string[]>;
  usage(applicationId: string): { messages: number; bytes: number } | Promise<{ messages: number; bytes: number }>;
}

export function retainedRefusal(limits: RetainedLimits): string {
  return (
    `retained messages of the application would exceed ${limits.messages} messages or ` +
    `${limits.bytes} bytes; publish an empty retained message to remove one`
  );
}

/**
 * What each application holds in retained messages, so one cannot fill the broker's memory.
 * A retained publish with an empty payload deletes the topic's message [MQTT-3.3.1-10].
 */
export class RetainedBudget implements RetainedBounds {
  private readonly apps = new Map<string, { bytes: number; topics: Map<string, number> }>();

  constructor(private readonly limits: RetainedLimits = DEFAULT_RETAINED_LIMITS) {}

  /**
   * Accounts for a retained publish of `bytes` on `topic`; returns why it does not fit (and
   * changes nothing), or null when it was taken into account.
   */
  admit(applicationId: string, topic: string, bytes: number): string | null {
    let app = this.apps.get(applicationId);
    const previous = app?.topics.get(topic);
    if (bytes === 0) {
      if (app && previous !== undefined) {
        app.topics.delete(topic);
        app.bytes -= previous;
        if (app.topics.size === 0) this.apps.delete(applicationId);
      }
      return null;
    }
    const count = (app?.topics.size ?? 0) + (previous === undefined ? 1 : 0);
    const total = (app?.bytes ?? 0) - (previous ?? 0) + bytes;
    if (count > this.limits.messages || total > this.limits.bytes) {
      return retainedRefusal(this.limits);
    }
    if (!app) {
      app = { bytes: 0, topics: new Map() };
      this.apps.set(applicationId, app);
    }
    app.topics.set(topic, bytes);
    app.bytes = total;
    return null;
  }

  /** Forgets an application; returns the topics it held, so their messages can be removed. */
  release(applicationId: string): string[] {
    const topics = [...(this.apps.get(applicationId)?.topics.keys() ?? [])];
    this.apps.delete(applicationId);
    return topics;
  }

  usage(applicationId: string): { messages: number; bytes: number } {
    const app = this.apps.get(applicationId);
    return { messages: app?.topics.size ?? 0, bytes: app?.bytes ?? 0 };
  }
}
