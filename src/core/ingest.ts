/**
 * The one ingest path: MQTT publishes and REST posts both hand state to `ingestState`, so the
 * two protocols validate, authorize, rate-limit, store and log state identically.
 */
import { authorize, type Principal } from '../domain/authorization.js';
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
      issues: StateIssue[];
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

/** The pseudo device id recorded as `reportedBy` for state posted with an API token. */
export const API_REPORTER = 'api';

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
  const where = req.topic ? ` on ${req.topic}` : '';

  const decision = authorize(principal, { type: 'reportState', target });
  if (!decision.allow) {
    // Refused messages count against the sender (spec: MQTT): past its limit it is disconnected.
    const overLimit = platform.countMessage(req.principal, undefined, req.receivedAt);
    const outcome = platform.reject(req, target, decision.status, `${decision.reason}${where}`);
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
    return platform.reject(req, device, 413, `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES} bytes${where}`);
  }
  const json = parseJson(req.payload);
  if (!json.ok) return platform.reject(req, device, 400, `${json.reason}${where}`);
  const parsed = parseStates(json.value, device.attributes, req.receivedAt);
  if (!parsed.ok) return platform.reject(req, device, 400, `${parsed.reason}${where}`);

  const reportedBy = actor?.id ?? API_REPORTER;
  const states: StateRecord[] = parsed.states.map((s) => ({
    deviceId: device.id,
    // Without a time of their own, two states arriving in one millisecond would merge into one:
    // receive times are kept strictly increasing per device instead.
    time: s.receiveTime ? platform.nextReceiveTime(device.id, s.time) : s.time,
    data: s.data,
    reportedBy,
  }));
  const issueLogs = parsed.issues.map((issue) =>
    platform.logEntry(device, 'dropped', {
      via: req.via,
      reason: issue.reason,
      ...(issue.attribute ? { attribute: issue.attribute } : {}),
      ...(req.topic ? { topic: req.topic } : {}),
      reportedBy,
    }),
  );
  if (states.length === 0) {
    const reasons = parsed.issues.map((i) => i.reason).join('; ') || '"data" holds no attribute';
    return platform.reject(req, device, 400, `nothing to store: ${reasons}`, issueLogs);
  }
  const committed = platform.writes.enqueue({
    states,
    logs: issueLogs,
    reports: actor ? [{ deviceId: device.id, reportedBy: actor.id, time: req.receivedAt }] : [],
  });
  platform.noteReport(device, actor, req.receivedAt);
  return { ok: true, stored: states.length, issues: parsed.issues, committed };
}
