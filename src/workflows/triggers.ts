/**
 * Trigger types: how each is checked on save and which events fire it. The runtime
 * (engine.ts) keeps an index of enabled triggers and asks `stateMatches` per stored state.
 */
import { Cron } from 'croner';
import type { Device } from '../domain/model.js';
import { type Problem, requireString } from './catalog.js';
import type { FlowTrigger } from './definition.js';

/** Trigger types this version runs; any other is refused on save, by name. */
export const TRIGGER_TYPES = [
  'deviceId',
  'deviceTag',
  'deviceIdConnect',
  'deviceTagConnect',
  'deviceIdDisconnect',
  'deviceTagDisconnect',
  'deviceIdInactivity',
  'deviceTagInactivity',
  'timer',
  'webhook',
  'mqttTopic',
  'virtualButton',
] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

/** Triggers whose `key` names one device. */
const BY_DEVICE_ID = new Set(['deviceId', 'deviceIdConnect', 'deviceIdDisconnect', 'deviceIdInactivity']);
/** Triggers whose `key` names a tag: `tagKey/tagValue`, `tagKey/` or `/tagValue`. */
const BY_DEVICE_TAG = new Set(['deviceTag', 'deviceTagConnect', 'deviceTagDisconnect', 'deviceTagInactivity']);

/** The longest interval or inactivity period: about a year (366 days). */
export const MAX_TRIGGER_SECONDS = 31_622_400;
/** The shortest timer interval. */
export const MIN_TIMER_SECONDS = 1;
const CRON_NICKNAMES = new Set(['@yearly', '@monthly', '@weekly', '@daily', '@hourly']);

function checkDeviceKey(trigger: FlowTrigger, problem: Problem): void {
  if (BY_DEVICE_ID.has(trigger.type)) {
    if (typeof trigger.key !== 'string' || !/^[0-9a-f]{24}$/.test(trigger.key)) {
      problem('key', 'must be a device id (24 hex characters)');
    }
  } else if (typeof trigger.key !== 'string' || !trigger.key.includes('/')) {
    problem('key', 'must be "tagKey/tagValue", "tagKey/" (any value) or "/tagValue" (any key)');
  }
}

function checkSeconds(value: unknown, field: string, min: number, problem: Problem): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TRIGGER_SECONDS) {
    problem(field, `must be a number of seconds from ${min} to ${MAX_TRIGGER_SECONDS}`);
  }
}

/** Whether `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Why a cron pattern is refused, or undefined when croner accepts it (5 or 6 fields, or a nickname). */
export function cronProblem(pattern: string, tz: string): string | undefined {
  const fields = pattern.trim().split(/\s+/);
  if (!(fields.length === 1 && CRON_NICKNAMES.has(fields[0] ?? '')) && fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day month weekday) or 6 (with seconds first), not ${fields.length}`;
  }
  try {
    const job = new Cron(pattern, { timezone: tz, paused: true, mode: '5-or-6-parts' });
    const next = job.nextRun();
    job.stop();
    return next ? undefined : 'never fires (no date matches it)';
  } catch (err) {
    return `is not a valid cron pattern: ${(err as Error).message}`;
  }
}

/** The topic filter of an `mqttTopic` trigger: `config.topic`, or Losant's `key`. */
export function mqttTopicFilter(trigger: FlowTrigger): unknown {
  const topic = trigger.config?.topic;
  return topic === undefined || topic === '' ? trigger.key : topic;
}

function checkTopicFilter(filter: unknown, problem: Problem): void {
  if (typeof filter !== 'string' || filter === '' || Buffer.byteLength(filter) > 1024) {
    problem('config/topic', 'must be an MQTT topic filter of 1 to 1024 bytes');
    return;
  }
  if (filter.startsWith('$')) {
    problem('config/topic', 'topics starting with $ are reserved');
    return;
  }
  const levels = filter.split('/');
  if (levels[0] === 'losant' || levels[0] === '#' || (levels[0] === '+' && levels.length === 1)) {
    problem('config/topic', "must be a custom topic of the application; losant/... topics are the platform's");
    return;
  }
  if (filter.includes('\u0000')) problem('config/topic', 'must not contain U+0000');
  levels.forEach((level, i) => {
    if (level === '#' && i !== levels.length - 1) problem('config/topic', '# must be the last level');
    else if (level !== '#' && level !== '+' && (level.includes('#') || level.includes('+'))) {
      problem('config/topic', 'wildcards + and # must fill a whole level');
    }
  });
}

export function validateTrigger(trigger: FlowTrigger, problem: Problem): void {
  const config = trigger.config ?? {};
  const list = (field: string) => {
    const value = config[field];
    if (value === undefined || value === null || value === '') return;
    if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      problem(`config/${field}`, 'must be a comma-separated string or an array of attribute names');
    }
  };
  switch (trigger.type as TriggerType) {
    case 'deviceId':
      if (typeof trigger.key !== 'string' || !/^[0-9a-f]{24}$/.test(trigger.key)) {
        problem('key', 'must be a device id (24 hex characters)');
      }
      list('attributeWhitelist');
      list('attributeBlacklist');
      if (config.maxAge !== undefined && !(typeof config.maxAge === 'number' && config.maxAge > 0)) {
        problem('config/maxAge', 'must be a number of seconds above 0');
      }
      break;
    case 'deviceTag':
      if (typeof trigger.key !== 'string' || !trigger.key.includes('/')) {
        problem('key', 'must be "tagKey/tagValue", "tagKey/" (any value) or "/tagValue" (any key)');
      }
      list('attributeWhitelist');
      list('attributeBlacklist');
      break;
    case 'deviceIdConnect':
    case 'deviceTagConnect':
    case 'deviceIdDisconnect':
    case 'deviceTagDisconnect':
      checkDeviceKey(trigger, problem);
      break;
    case 'deviceIdInactivity':
    case 'deviceTagInactivity':
      checkDeviceKey(trigger, problem);
      checkSeconds(config.seconds, 'config/seconds', 1, problem);
      break;
    case 'timer': {
      const hasSeconds = config.seconds !== undefined && config.seconds !== null && config.seconds !== '';
      const hasCron = config.cron !== undefined && config.cron !== null && config.cron !== '';
      if (hasSeconds && hasCron) problem('config', 'give config.seconds or config.cron, not both');
      else if (hasSeconds) checkSeconds(config.seconds, 'config/seconds', MIN_TIMER_SECONDS, problem);
      else if (hasCron) {
        const tz = config.tz ?? 'UTC';
        if (typeof tz !== 'string' || !isTimeZone(tz)) {
          problem('config/tz', `${JSON.stringify(tz)} is not an IANA time zone (e.g. "UTC", "Europe/Berlin")`);
        } else if (typeof config.cron !== 'string') problem('config/cron', 'must be a string');
        else {
          const why = cronProblem(config.cron, tz);
          if (why) problem('config/cron', why);
        }
      } else problem('config', 'needs config.seconds (an interval) or config.cron (a schedule)');
      break;
    }
    case 'webhook':
      if (typeof trigger.key !== 'string' || !/^[0-9a-f]{24}$/.test(trigger.key)) {
        problem('key', 'must be a webhook id (24 hex characters)');
      }
      break;
    case 'mqttTopic':
      checkTopicFilter(mqttTopicFilter(trigger), problem);
      break;
    case 'virtualButton':
      requireString({ key: trigger.key }, 'key', problem);
      break;
    default:
      problem(
        'type',
        `trigger type ${JSON.stringify(trigger.type)} is not supported; supported: ${TRIGGER_TYPES.join(', ')}`,
      );
  }
}

function namesOf(value: unknown): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const list = Array.isArray(value) ? value : String(value).split(',');
  return list.map((s) => String(s).trim()).filter((s) => s !== '');
}

/** Whether a device's stored state fires a trigger; the accepted attributes when it does. */
export type StateMatcher = (
  device: Device,
  data: Record<string, unknown>,
  age: number,
) => Record<string, unknown> | undefined;

/**
 * The state test of a `deviceId` or `deviceTag` trigger, with its config read once: engines call
 * it for every stored state, so nothing is parsed per call. The answer may be `data` itself when
 * nothing is filtered out; a run copies it before a node can change it.
 */
export function stateMatcher(trigger: FlowTrigger): StateMatcher {
  if (trigger.type !== 'deviceId' && trigger.type !== 'deviceTag') return () => undefined;
  const named = deviceMatcher(trigger);
  const config = trigger.config ?? {};
  const maxAgeMs = typeof config.maxAge === 'number' ? config.maxAge * 1000 : Number.POSITIVE_INFINITY;
  const allow = namesOf(config.attributeWhitelist);
  const deny = namesOf(config.attributeBlacklist);
  const allowed = allow && new Set(allow);
  const denied = deny && new Set(deny);
  return (device, data, age) => {
    if (!named(device) || age > maxAgeMs) return undefined;
    if (!allowed && !denied) return data;
    const picked: Record<string, unknown> = {};
    let any = false;
    for (const k of Object.keys(data)) {
      if ((allowed && !allowed.has(k)) || denied?.has(k)) continue;
      picked[k] = data[k];
      any = true;
    }
    // A filter that leaves nothing: the state is not about what this trigger watches.
    return any ? picked : undefined;
  };
}

/** Whether a device's stored state fires this trigger; the accepted attributes when it does. */
export function stateMatches(
  trigger: FlowTrigger,
  device: Device,
  data: Record<string, unknown>,
  age: number,
): Record<string, unknown> | undefined {
  return stateMatcher(trigger)(device, data, age);
}

/** The device test of a device-keyed trigger (by id or by tag), with its key parsed once. */
export function deviceMatcher(trigger: FlowTrigger): (device: Device) => boolean {
  if (BY_DEVICE_ID.has(trigger.type)) return (device) => trigger.key === device.id;
  if (!BY_DEVICE_TAG.has(trigger.type)) return () => false;
  const [key = '', value = ''] = (trigger.key ?? '').split('/', 2);
  return (device) => device.tags.some((t) => (key === '' || t.key === key) && (value === '' || t.value === value));
}

/** Whether a device-keyed trigger (by id or by tag) names this device. */
export function deviceMatches(trigger: FlowTrigger, device: Device): boolean {
  return deviceMatcher(trigger)(device);
}
