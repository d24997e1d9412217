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
 *
 * People and programs act through a role in an application (spec: Accounts and API tokens):
 * `viewer` reads (streams included), `editor` also changes devices, keys, state and commands,
 * `owner` also the application itself, its members and its tokens. Operators (admin tokens and
 * admin users) may do everything but be an MQTT client.
 */
import { actsForPeripherals, boundGatewayId, isPeripheralClass } from './device-class.js';
import type { AccessKey, Device } from './model.js';
import { filterCovers, filterMatches, filtersOverlap, hasWildcard } from './topics.js';

/** A member's role in one application (spec: Accounts and API tokens). */
export const ROLES = ['owner', 'editor', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do in its application; a role includes the ones below it. */
const ROLE_RANK: Record<Role, number> = { viewer: 1, editor: 2, owner: 3 };

export type Principal =
  /**
   * An operator: an admin API token (`via: 'token'`, `id` the token's) or an admin user
   * (`via: 'user'`, `id` the user's). Manages everything, is never an MQTT client.
   */
  | { kind: 'admin'; via: 'token' | 'user'; id: string }
  /** A user signed in (session cookie), with their role in each application they belong to. */
  | { kind: 'user'; userId: string; roles: ReadonlyMap<string, Role> }
  /** An application's API token: acts only within that application and role. */
  | { kind: 'apiToken'; tokenId: string; applicationId: string; role: Role }
  /** A workflow of an application acting on its devices (commands, state): an editor there. */
  | { kind: 'workflow'; flowId: string; applicationId: string }
  /** A device, over its MQTT connection or with a device token from `POST /auth/device`. */
  | { kind: 'device'; device: Device; key: AccessKey };

/**
 * Who a principal is, as the command history (`sentBy`) and rate limits name it: a device's
 * id, or `user:ID`, `token:ID`, `flow:ID`.
 */
export function principalId(principal: Principal): string {
  switch (principal.kind) {
    case 'device':
      return principal.device.id;
    case 'admin':
      return `${principal.via}:${principal.id}`;
    case 'user':
      return `user:${principal.userId}`;
    case 'apiToken':
      return `token:${principal.tokenId}`;
    case 'workflow':
      return `flow:${principal.flowId}`;
  }
}

/** Principals that act through an application role: users, API tokens and workflows. */
type Member = Extract<Principal, { kind: 'user' | 'apiToken' | 'workflow' }>;

export type Action =
  | { type: 'connect' }
  | { type: 'reportState'; target: Device | undefined }
  | { type: 'receiveCommands'; target: Device | undefined }
  | { type: 'receiveErrors'; target: Device | undefined }
  | { type: 'readDevice'; target: Device | undefined }
  /** The device list of an application; a device token sees only `deviceListScope`. */
  | { type: 'listDevices'; applicationId: string }
  | { type: 'sendCommand'; target: Device | undefined }
  /** A device's command history: whoever may send it commands, and every member who may read it. */
  | { type: 'readCommands'; target: Device | undefined }
  /** Read an application: its definition, members, logs, data queries, event stream (viewer). */
  | { type: 'readApplication'; applicationId: string }
  /** Change what an application holds: devices, keys, flows, dashboards (editor). */
  | { type: 'editApplication'; applicationId: string }
  /** Change the application itself: settings, deletion, members, API tokens (owner). */
  | { type: 'ownApplication'; applicationId: string }
  /** Make a new application (its maker becomes its owner). */
  | { type: 'createApplication' }
  /** The application list; what it holds is `applicationScope`. */
  | { type: 'listApplications' }
  /** Users of the whole installation: create, list, change, delete (operators only). */
  | { type: 'manageUsers' }
  /** A topic outside the platform prefix, governed by the key's filterType. */
  | { type: 'publishTopic'; topic: string }
  /** A message on a custom topic, delivered to a subscriber: checked again at each delivery. */
  | { type: 'receiveTopic'; topic: string }
  | { type: 'subscribeTopic'; filter: string; prefix: string };

export type ActionType = Action['type'];

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
  switch (principal.kind) {
    case 'admin':
      return authorizeAdmin(action);
    case 'device':
      return authorizeDevice(principal, action);
    default:
      return authorizeMember(principal, action);
  }
}

function authorizeDevice(principal: Extract<Principal, { kind: 'device' }>, action: Action): Decision {
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
    case 'readApplication':
    case 'editApplication':
    case 'ownApplication':
      return action.applicationId === actor.applicationId
        ? deny(403, 'a device token cannot read or manage its application; it reads the devices it may act for')
        : deny(404, `application ${action.applicationId} not found`);
    case 'createApplication':
    case 'listApplications':
    case 'manageUsers':
      return deny(403, 'a device token cannot manage applications or users');
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
    case 'readCommands':
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
    case 'receiveCommands':
    case 'receiveErrors':
    case 'publishTopic':
    case 'receiveTopic':
    case 'subscribeTopic':
      return deny(403, 'only a device is an MQTT client');
    case 'reportState':
    case 'readDevice':
    case 'sendCommand':
    case 'readCommands':
      return action.target ? ALLOW : deny(404, 'device not found');
    default:
      return ALLOW;
  }
}

/** A principal's role in an application, if it has one there. */
export function roleIn(principal: Member, applicationId: string): Role | undefined {
  if (principal.kind === 'user') return principal.roles.get(applicationId);
  if (principal.applicationId !== applicationId) return undefined;
  return principal.kind === 'apiToken' ? principal.role : 'editor';
}

function describeMember(principal: Member): string {
  switch (principal.kind) {
    case 'user':
      return `user ${principal.userId}`;
    case 'apiToken':
      return `API token ${principal.tokenId}`;
    case 'workflow':
      return `workflow ${principal.flowId}`;
  }
}

/**
 * Users, API tokens and workflows: what their role in the application allows. Outside their
 * applications nothing exists for them (404), so ids cannot be probed across tenants.
 */
function authorizeMember(principal: Member, action: Action): Decision {
  const needs = (applicationId: string, need: Role, what: string): Decision => {
    const role = roleIn(principal, applicationId);
    if (!role) return deny(404, `application ${applicationId} not found`);
    if (ROLE_RANK[role] >= ROLE_RANK[need]) return ALLOW;
    return deny(
      403,
      `${describeMember(principal)} is ${role === 'editor' ? 'an' : 'a'} ${role} of application ${applicationId}; ${what} needs the ${need} role`,
    );
  };
  const onDevice = (target: Device | undefined, need: Role, what: string): Decision =>
    target ? needs(target.applicationId, need, what) : deny(404, 'device not found');
  switch (action.type) {
    case 'connect':
    case 'receiveCommands':
    case 'receiveErrors':
    case 'publishTopic':
    case 'receiveTopic':
    case 'subscribeTopic':
      return deny(403, 'only a device is an MQTT client');
    case 'readDevice':
    case 'readCommands':
      return onDevice(action.target, 'viewer', 'reading a device');
    case 'reportState':
      return onDevice(action.target, 'editor', 'reporting state');
    case 'sendCommand':
      return onDevice(action.target, 'editor', 'sending a command');
    case 'listDevices':
    case 'readApplication':
      return needs(action.applicationId, 'viewer', 'reading the application');
    case 'editApplication':
      return needs(action.applicationId, 'editor', 'changing devices, keys, flows or dashboards');
    case 'ownApplication':
      return needs(action.applicationId, 'owner', 'changing the application, its members or its tokens');
    case 'createApplication':
      return principal.kind === 'user'
        ? ALLOW
        : deny(403, `${describeMember(principal)} acts only within its application and cannot create one`);
    case 'listApplications':
      return ALLOW;
    case 'manageUsers':
      return deny(403, 'only an administrator manages users');
  }
}

/**
 * The applications a principal's application list holds: every one (null) for an operator,
 * the ones a user belongs to, a token's or workflow's own, none for a device.
 */
export function applicationScope(principal: Principal): string[] | null {
  switch (principal.kind) {
    case 'admin':
      return null;
    case 'user':
      return [...principal.roles.keys()];
    case 'device':
      return [];
    default:
      return [principal.applicationId];
  }
}

/**
 * The devices a principal's device list holds: every device (null) for anyone who may list; for a
 * device token, the device itself and, when it acts for peripherals, the `floating` devices and
 * the `peripheral` devices bound to it or to no gateway: exactly the devices `actFor` allows.
 * A store applies it as a filter (`DeviceQuery.scope`).
 */
export function deviceListScope(principal: Principal): { deviceId: string; withPeripherals: boolean } | null {
  if (principal.kind !== 'device') return null;
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
