/**
 * The one authorization rule of the platform. Every decision — MQTT connect, publish and
 * subscribe, and every REST route — is answered here, so the broker and the API cannot
 * disagree. Pure: callers resolve the devices first, then ask.
 *
 * The rule (spec: Devices, Access keys, MQTT):
 * - a device acts for itself; a `gateway` or `edgeCompute` device also acts for peripherals
 *   of its application: a `peripheral` bound to it, or a `peripheral` without `gatewayId`
 *   or a `floating` device (any gateway);
 * - peripherals never connect or authenticate themselves;
 * - the access key must be active and cover the acting device (by all, ids or tags); it
 *   need not list the peripherals, the device-class rule decides those;
 * - a device reads (state, composite state, logs, definition, streams) what it may act for:
 *   itself and, for a gateway, those peripherals; its device list holds exactly those devices.
 *   Its error topic stays its own.
 */
import { actsForPeripherals, boundGatewayId, isPeripheralClass } from './device-class.js';
import type { AccessKey, Device } from './model.js';
import { filterCovers, filterMatches, filtersOverlap, hasWildcard } from './topics.js';

export type Principal =
  /** An operator's API token: manages everything, is never an MQTT client. */
  | { kind: 'admin' }
  /** A device, over its MQTT connection or with a device token from `POST /auth/device`. */
  | { kind: 'device'; device: Device; key: AccessKey };

export type Action =
  | { type: 'connect' }
  | { type: 'reportState'; target: Device | undefined }
  | { type: 'receiveCommands'; target: Device | undefined }
  | { type: 'receiveErrors'; target: Device | undefined }
  | { type: 'readDevice'; target: Device | undefined }
  /** The device list of an application; a device token sees only `deviceListScope`. */
  | { type: 'listDevices'; applicationId: string }
  | { type: 'sendCommand'; target: Device | undefined }
  | { type: 'manage' }
  /** A topic outside the platform prefix, governed by the key's filterType. */
  | { type: 'publishTopic'; topic: string }
  /** A message on a custom topic, delivered to a subscriber: checked again at each delivery. */
  | { type: 'receiveTopic'; topic: string }
  | { type: 'subscribeTopic'; filter: string; prefix: string };

export type Decision =
  | { allow: true }
  /** 401: the credential itself is not usable; 403: not allowed; 404: no such device here. */
  | { allow: false; status: 401 | 403 | 404; reason: string };

const ALLOW: Decision = { allow: true };
const deny = (status: 401 | 403 | 404, reason: string): Decision => ({ allow: false, status, reason });

export function keyCoversDevice(key: AccessKey, device: Device): boolean {
  if (key.applicationId !== device.applicationId) return false;
  if (key.deviceIds === null && key.deviceTags === null) return true;
  if (key.deviceIds?.includes(device.id)) return true;
  return key.deviceTags?.some((want) => device.tags.some((t) => t.key === want.key && t.value === want.value)) ?? false;
}

export function authorize(principal: Principal, action: Action): Decision {
  if (principal.kind === 'admin') return authorizeAdmin(action);
  const { device: actor, key } = principal;
  if (key.status !== 'active') return deny(401, `access key ${key.key} is inactive`);
  if (!keyCoversDevice(key, actor)) {
    return deny(401, `access key ${key.key} does not cover device ${actor.id}`);
  }
  if (isPeripheralClass(actor.deviceClass)) {
    return deny(403, `${actor.id} is a ${actor.deviceClass} device; peripherals connect only through a gateway`);
  }

  switch (action.type) {
    case 'connect':
      return ALLOW;
    case 'manage':
      return deny(403, 'a device token cannot manage applications, devices or keys');
    case 'reportState':
    case 'receiveCommands':
      return actFor(actor, action.target);
    case 'receiveErrors':
      if (!action.target) return deny(404, 'device not found');
      if (action.target.id !== actor.id) {
        return sameApplication(actor, action.target)
          ? deny(403, `device ${actor.id} may receive only its own errors, not those of ${action.target.id}`)
          : notInApplication(actor, action.target);
      }
      return ALLOW;
    case 'readDevice': {
      // What a device may act for, it may read: its own data, and a gateway's peripherals'.
      const decision = actFor(actor, action.target);
      if (decision.allow || decision.status !== 403) return decision;
      return deny(403, `device ${actor.id} may read only what it may act for: ${decision.reason}`);
    }
    case 'listDevices':
      return action.applicationId === actor.applicationId
        ? ALLOW
        : deny(404, `application ${action.applicationId} not found`);
    case 'sendCommand':
      if (!action.target) return deny(404, 'device not found');
      if (!sameApplication(actor, action.target)) return notInApplication(actor, action.target);
      return keyCoversDevice(key, action.target)
        ? ALLOW
        : deny(403, `access key ${key.key} does not cover device ${action.target.id}`);
    case 'publishTopic':
      // A topic name never holds wildcards [MQTT-3.3.2-2]; as a "topic" it would slip past a blacklist.
      if (hasWildcard(action.topic)) return deny(403, `a publish topic cannot contain + or #: ${action.topic}`);
      return customTopic(key, key.pubTopics, action.topic, 'publish');
    case 'receiveTopic':
      return customTopic(key, key.subTopics, action.topic, 'receive');
    case 'subscribeTopic':
      return customSubscription(key, action.filter, action.prefix);
  }
}

function authorizeAdmin(action: Action): Decision {
  switch (action.type) {
    case 'connect':
    case 'publishTopic':
    case 'receiveTopic':
    case 'subscribeTopic':
      return deny(403, 'an API token is not an MQTT client');
    case 'manage':
    case 'listDevices':
      return ALLOW;
    default:
      return action.target ? ALLOW : deny(404, 'device not found');
  }
}

/**
 * The devices a principal's device list holds: every device (null) for an API token; for a
 * device token, the device itself and, when it acts for peripherals, the `floating` devices and
 * the `peripheral` devices bound to it or to no gateway: exactly the devices `actFor` allows.
 * A store applies it as a filter (`DeviceQuery.scope`).
 */
export function deviceListScope(principal: Principal): { deviceId: string; withPeripherals: boolean } | null {
  if (principal.kind === 'admin') return null;
  return { deviceId: principal.device.id, withPeripherals: actsForPeripherals(principal.device.deviceClass) };
}

function sameApplication(a: Device, b: Device): boolean {
  return a.applicationId === b.applicationId;
}

// Another application's device is reported as absent, so ids cannot be probed across applications.
function notInApplication(actor: Device, target: Device): Decision {
  return deny(404, `device ${target.id} not found in application ${actor.applicationId}`);
}

/** May `actor` report state for / receive commands of `target`? */
function actFor(actor: Device, target: Device | undefined): Decision {
  if (!target) return deny(404, 'device not found');
  if (target.id === actor.id) return ALLOW;
  if (!sameApplication(actor, target)) return notInApplication(actor, target);
  if (!actsForPeripherals(actor.deviceClass)) {
    return deny(403, `${actor.deviceClass} device ${actor.id} may act only for itself, not for ${target.id}`);
  }
  if (!isPeripheralClass(target.deviceClass)) {
    return deny(
      403,
      `gateway ${actor.id} may act only for peripherals; ${target.id} is a ${target.deviceClass} device`,
    );
  }
  const bound = boundGatewayId(target);
  if (bound !== null && bound !== actor.id) {
    return deny(403, `peripheral ${target.id} is bound to gateway ${bound}, not to ${actor.id}`);
  }
  return ALLOW;
}

function customTopic(key: AccessKey, listed: string[], topic: string, verb: string): Decision {
  if (topic.startsWith('$')) return deny(403, `topics starting with $ are reserved: ${topic}`);
  switch (key.filterType) {
    case 'all':
      return ALLOW;
    case 'none':
      return deny(403, `access key ${key.key} allows no topics outside the platform's; cannot ${verb} ${topic}`);
    case 'whitelist':
      return listed.some((p) => filterMatches(p, topic))
        ? ALLOW
        : deny(403, `topic ${topic} is not in the ${verb} topics of access key ${key.key}`);
    case 'blacklist':
      return listed.some((p) => filterMatches(p, topic))
        ? deny(403, `topic ${topic} is blacklisted for ${verb} by access key ${key.key}`)
        : ALLOW;
  }
}

function customSubscription(key: AccessKey, filter: string, prefix: string): Decision {
  if (filter.startsWith('$')) return deny(403, `topics starting with $ are reserved: ${filter}`);
  // A wildcard that could reach the platform's own topics would leak other devices' commands.
  if (filtersOverlap(filter, `${prefix}/#`)) {
    return deny(403, `subscription ${filter} could match ${prefix}/ topics; subscribe to exact device topics`);
  }
  switch (key.filterType) {
    case 'all':
      return ALLOW;
    case 'none':
      return deny(403, `access key ${key.key} allows no topics outside the platform's; cannot subscribe ${filter}`);
    case 'whitelist':
      return key.subTopics.some((p) => filterCovers(p, filter))
        ? ALLOW
        : deny(403, `subscription ${filter} is not within the subscribe topics of access key ${key.key}`);
    case 'blacklist':
      return key.subTopics.some((p) => filtersOverlap(p, filter))
        ? deny(403, `subscription ${filter} overlaps a blacklisted topic of access key ${key.key}`)
        : ALLOW;
  }
}
