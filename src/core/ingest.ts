/**
 * The one ingest path: MQTT publishes and REST posts both hand state to `ingestState`, so the
 * two protocols validate, authorize, rate-limit, store and log state identically.
 */
import { authorize, type Principal, principalId } from '../domain/authorization.js';
import type { Device, StateRecord } from '../domain/model.js';
import { MAX_PAYLOAD_BYTES, parseJson, parseStates, type StateIssue } from '../domain/state.js';
import type { Platform } from './platform.js';

export interface IngestRequest {
  principal: Principal;
  /** The device the state is for: from the topic or the REST path. */
  targetId: string;
  /** REST: the application in the path. MQTT: the actor's application. */
  applicationId: string;
  payload: Buffer | string;
  via: 'mqtt' | 'rest';
  /** MQTT topic, for logs and error messages. */
  topic?: string;
  receivedAt: number;
}

export type IngestOutcome =
  | {
      ok: true;
      stored: number;
      /** What was left out: at most MAX_ISSUES_LISTED of them; `issueCount` says how many in all. */
      issues: StateIssue[];
      issueCount: number;
      /** One bounded sentence about what was left out (the MQTT error notice). */
      issueSummary: string;
      /** Resolves when the states are durable: a QoS 1 PUBACK or an HTTP 200 waits for it. */
      committed: Promise<void>;
    }
  | {
      ok: false;
      status: 400 | 401 | 403 | 404 | 413 | 429;
      reason: string;
      /** For 429: whose limit was hit. A device over its own limit is disconnected. */
      limited?: 'device' | 'peripheral';
      /** For 429: whole seconds until that limit's window starts afresh (REST `Retry-After`). */
      retryAfterSeconds?: number;
    };

/**
 * How many dropped values an answer or a log entry names. A payload may carry tens of thousands
 * of unknown attributes; what is said about them stays this size (docs/decisions.md, "Device logs").
 */
export const MAX_ISSUES_LISTED = 10;

/** One sentence about the issues of a payload, naming at most a few of them. */
export function summarizeIssues(issues: readonly StateIssue[]): string {
  if (issues.length === 1) return (issues[0] as StateIssue).reason;
  const named = issues.slice(0, 3).map((i) => i.reason);
  const more = issues.length > named.length ? `; and ${issues.length - named.length} more` : '';
  return `${issues.length} values left out: ${named.join('; ')}${more}`;
}

export function ingestState(platform: Platform, req: IngestRequest): Promise<IngestOutcome> | IngestOutcome {
  const target = platform.registry.deviceCached(req.targetId);
  if (target === undefined) {
    // Not in the cache: one store round trip, then the same path.
    return platform.registry.device(req.targetId).then((d) => ingestFor(platform, req, d));
  }
  return ingestFor(platform, req, target);
}

function ingestFor(platform: Platform, req: IngestRequest, found: Device | undefined): IngestOutcome {
  const { principal } = req;
  const actor = principal.kind === 'device' ? principal.device : undefined;
  const target = found && found.applicationId === req.applicationId ? found : undefined;
  // Only refusals name the topic: the string is not made for a message that is stored.
  const where = (): string => (req.topic ? ` on ${req.topic}` : '');

  const decision = authorize(principal, { type: 'reportState', target });
  if (!decision.allow) {
    // Refused messages count against the sender (spec: MQTT): past its limit it is disconnected.
    const overLimit = platform.countMessage(req.principal, undefined, req.receivedAt);
    const outcome = platform.reject(req, target, decision.status, `${decision.reason}${where()}`);
    return overLimit ? { ...outcome, limited: overLimit } : outcome;
  }
  const device = target as Device;

  const limited = platform.countMessage(principal, device, req.receivedAt);
  if (limited) {
    const reason = limited === 'peripheral' ? `Rate limit exceeded for peripheral ${device.id}` : 'Rate limit exceeded';
    const outcome = platform.reject(req, device, 429, reason);
    const retryAfterSeconds = platform.retryAfterSeconds(principal, device, req.receivedAt);
    return { ...outcome, limited, retryAfterSeconds };
  }

  const size = Buffer.byteLength(req.payload);
  if (size > MAX_PAYLOAD_BYTES) {
    return platform.reject(req, device, 413, `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES} bytes${where()}`);
  }
  const json = parseJson(req.payload);
  if (!json.ok) return platform.reject(req, device, 400, `${json.reason}${where()}`);
  const parsed = parseStates(json.value, device.attributes, req.receivedAt);
  if (!parsed.ok) return platform.reject(req, device, 400, `${parsed.reason}${where()}`);

  // A device's own id; otherwise who posted it (`token:ID`, `user:ID`, `flow:ID`).
  const reportedBy = actor?.id ?? principalId(principal);
  const states: StateRecord[] = parsed.states.map((s) => ({
    deviceId: device.id,
    // Without a time of their own, two states arriving in one millisecond would merge into one:
    // receive times are kept strictly increasing per device instead.
    time: s.receiveTime ? platform.nextReceiveTime(device.id, s.time) : s.time,
    data: s.data,
    reportedBy,
  }));
  const issueSummary = parsed.issues.length > 0 ? summarizeIssues(parsed.issues) : '';
  if (states.length === 0) {
    return platform.reject(req, device, 400, `nothing to store: ${issueSummary || '"data" holds no attribute'}`);
  }
  // One entry per message, whatever the number of values left out of it.
  const issueLogs =
    parsed.issues.length === 0
      ? undefined
      : platform.admitLogs([
          platform.logEntry(device, 'dropped', {
            via: req.via,
            reason: issueSummary,
            count: parsed.issues.length,
            ...(parsed.issues.length === 1 && parsed.issues[0]?.attribute
              ? { attribute: parsed.issues[0].attribute }
              : {}),
            ...(parsed.issues.length > 1
              ? {
                  issues: parsed.issues
                    .slice(0, MAX_ISSUES_LISTED)
                    .map(({ attribute, reason }) => ({ attribute, reason })),
                }
              : {}),
            ...(req.topic ? { topic: req.topic } : {}),
            reportedBy,
          }),
        ]);
  const committed = platform.writes.enqueue(
    actor
      ? { states, logs: issueLogs, reports: [{ deviceId: device.id, reportedBy: actor.id, time: req.receivedAt }] }
      : { states, logs: issueLogs },
  );
  platform.noteReport(device, actor, req.receivedAt);
  return {
    ok: true,
    stored: states.length,
    issues: parsed.issues.length > MAX_ISSUES_LISTED ? parsed.issues.slice(0, MAX_ISSUES_LISTED) : parsed.issues,
    issueCount: parsed.issues.length,
    issueSummary,
    committed,
  };
}
