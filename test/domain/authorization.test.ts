import { describe, expect, it } from 'vitest';
import {
  type Action,
  applicationScope,
  authorize,
  type Decision,
  deviceListScope,
  keyCoversDevice,
  type Principal,
  principalId,
  type Role,
} from '../../src/domain/authorization.js';
import type { AccessKey, Device, DeviceClass, Tag } from '../../src/domain/model.js';

// Fixtures -----------------------------------------------------------------------------------

const APP = 'a0a0a0a0a0a0a0a0a0a0a0a0';
const OTHER_APP = 'b0b0b0b0b0b0b0b0b0b0b0b0';

let seq = 0;
function nextId(): string {
  seq++;
  return seq.toString(16).padStart(24, '0');
}

function device(
  deviceClass: DeviceClass,
  opts: { app?: string; gatewayId?: string | null; tags?: Tag[] } = {},
): Device {
  return {
    id: nextId(),
    applicationId: opts.app ?? APP,
    name: `${deviceClass} ${seq}`,
    description: '',
    deviceClass,
    gatewayId: opts.gatewayId ?? null,
    tags: opts.tags ?? [],
    attributes: [],
    creationDate: 0,
    lastUpdated: 0,
  };
}

function accessKey(opts: Partial<AccessKey> = {}): AccessKey {
  const id = nextId();
  return {
    id,
    applicationId: APP,
    key: `key-${id}`,
    description: '',
    status: 'active',
    filterType: 'none',
    deviceIds: null,
    deviceTags: null,
    pubTopics: [],
    subTopics: [],
    creationDate: 0,
    lastUpdated: 0,
    ...opts,
  };
}

const allKey = accessKey();
const otherAppKey = accessKey({ applicationId: OTHER_APP });

const standalone = device('standalone', { tags: [{ key: 'site', value: 'north' }] });
const gateway = device('gateway', { tags: [{ key: 'site', value: 'north' }] });
const gateway2 = device('gateway', { tags: [{ key: 'site', value: 'south' }] });
const edge = device('edgeCompute');
const system = device('system');
const embedded = device('embedded');
const boundToGateway = device('peripheral', { gatewayId: gateway.id });
const boundToGateway2 = device('peripheral', { gatewayId: gateway2.id });
const boundToEdge = device('peripheral', { gatewayId: edge.id });
const unbound = device('peripheral');
const floating = device('floating');

const otherStandalone = device('standalone', { app: OTHER_APP });
const otherGateway = device('gateway', { app: OTHER_APP });
const otherUnbound = device('peripheral', { app: OTHER_APP });
const otherFloating = device('floating', { app: OTHER_APP });
const otherBoundToGateway = device('peripheral', { app: OTHER_APP, gatewayId: otherGateway.id });

/** A readable name for a fixture device, for case names. */
function label(d: Device): string {
  const where = d.applicationId === OTHER_APP ? ' of another application' : '';
  return `${d.deviceClass}${d.gatewayId ? ' (bound)' : ''}${where}`;
}

const ADMIN: Principal = { kind: 'admin', via: 'token', id: 'c0c0c0c0c0c0c0c0c0c0c0c0' };
const as = (d: Device, key: AccessKey = allKey): Principal => ({ kind: 'device', device: d, key });

type TargetAction = 'reportState' | 'receiveCommands' | 'receiveErrors' | 'readDevice' | 'sendCommand' | 'readCommands';
const TARGET_ACTIONS: TargetAction[] = ['reportState', 'receiveCommands', 'receiveErrors', 'readDevice', 'sendCommand'];
const on = (type: TargetAction, target: Device | undefined): Action => ({ type, target });
const pub = (topic: string): Action => ({ type: 'publishTopic', topic });
const sub = (filter: string, prefix = 'losant'): Action => ({ type: 'subscribeTopic', filter, prefix });

const EVERY_ACTION: Action[] = [
  { type: 'connect' },
  { type: 'readApplication', applicationId: APP },
  { type: 'editApplication', applicationId: APP },
  { type: 'ownApplication', applicationId: APP },
  { type: 'createApplication' },
  { type: 'listApplications' },
  { type: 'manageUsers' },
  { type: 'listDevices', applicationId: APP },
  ...TARGET_ACTIONS.map((t) => on(t, standalone)),
  pub('custom/topic'),
  sub('custom/topic'),
];

// Expected outcomes --------------------------------------------------------------------------

type Expect = 'allow' | { status: 401 | 403 | 404; mentions?: string[] };
interface Case {
  name: string;
  principal: Principal;
  action: Action;
  expect: Expect;
}

const ALLOW = 'allow' as const;
const deny = (status: 401 | 403 | 404, ...mentions: string[]): Expect => ({ status, mentions });

/** Rows that hold the same for reportState and for receiveCommands (spec: the device-class rule). */
interface ActForRow {
  name: string;
  actor: Device;
  target: Device | undefined;
  expect: Expect;
}

const actForRows: ActForRow[] = [
  // Every class acting for itself: allowed, except peripherals, which never act themselves.
  { name: 'standalone for itself', actor: standalone, target: standalone, expect: ALLOW },
  { name: 'gateway for itself', actor: gateway, target: gateway, expect: ALLOW },
  { name: 'edgeCompute for itself', actor: edge, target: edge, expect: ALLOW },
  { name: 'system for itself', actor: system, target: system, expect: ALLOW },
  { name: 'embedded for itself', actor: embedded, target: embedded, expect: ALLOW },
  {
    name: 'bound peripheral for itself',
    actor: boundToGateway,
    target: boundToGateway,
    expect: deny(403, boundToGateway.id),
  },
  { name: 'unbound peripheral for itself', actor: unbound, target: unbound, expect: deny(403, unbound.id) },
  { name: 'floating for itself', actor: floating, target: floating, expect: deny(403, floating.id) },

  // Gateway for peripherals of its application.
  { name: 'gateway for a peripheral bound to it', actor: gateway, target: boundToGateway, expect: ALLOW },
  { name: 'gateway for an unbound peripheral (any gateway)', actor: gateway, target: unbound, expect: ALLOW },
  { name: 'gateway for a floating device (any gateway)', actor: gateway, target: floating, expect: ALLOW },
  {
    name: 'gateway for a peripheral bound to another gateway',
    actor: gateway,
    target: boundToGateway2,
    expect: deny(403, boundToGateway2.id, gateway2.id, gateway.id),
  },
  {
    name: 'gateway for a peripheral bound to an edgeCompute device',
    actor: gateway,
    target: boundToEdge,
    expect: deny(403, boundToEdge.id, edge.id, gateway.id),
  },
  { name: 'second gateway for the peripheral bound to it', actor: gateway2, target: boundToGateway2, expect: ALLOW },
  {
    name: 'second gateway for a peripheral bound to the first',
    actor: gateway2,
    target: boundToGateway,
    expect: deny(403, boundToGateway.id, gateway.id, gateway2.id),
  },
  { name: 'second gateway for an unbound peripheral', actor: gateway2, target: unbound, expect: ALLOW },
  { name: 'second gateway for a floating device', actor: gateway2, target: floating, expect: ALLOW },

  // Gateway never for non-peripherals.
  {
    name: 'gateway for a standalone device',
    actor: gateway,
    target: standalone,
    expect: deny(403, gateway.id, standalone.id),
  },
  { name: 'gateway for another gateway', actor: gateway, target: gateway2, expect: deny(403, gateway.id, gateway2.id) },
  { name: 'gateway for an edgeCompute device', actor: gateway, target: edge, expect: deny(403, gateway.id, edge.id) },
  { name: 'gateway for a system device', actor: gateway, target: system, expect: deny(403, gateway.id, system.id) },
  {
    name: 'gateway for an embedded device',
    actor: gateway,
    target: embedded,
    expect: deny(403, gateway.id, embedded.id),
  },

  // edgeCompute acts as a gateway.
  { name: 'edgeCompute for a peripheral bound to it', actor: edge, target: boundToEdge, expect: ALLOW },
  { name: 'edgeCompute for an unbound peripheral', actor: edge, target: unbound, expect: ALLOW },
  { name: 'edgeCompute for a floating device', actor: edge, target: floating, expect: ALLOW },
  {
    name: 'edgeCompute for a peripheral bound to a gateway',
    actor: edge,
    target: boundToGateway,
    expect: deny(403, boundToGateway.id, gateway.id, edge.id),
  },
  { name: 'edgeCompute for a standalone device', actor: edge, target: standalone, expect: deny(403, standalone.id) },
  { name: 'edgeCompute for a gateway', actor: edge, target: gateway, expect: deny(403, gateway.id) },

  // Non-gateway classes act only for themselves.
  ...([standalone, system, embedded] as const).flatMap((actor): ActForRow[] =>
    [boundToGateway, unbound, floating, gateway, standalone, system, embedded]
      .filter((t) => t !== actor)
      .map((target) => ({
        name: `${actor.deviceClass} for a ${label(target)}`,
        actor,
        target,
        expect: deny(403, actor.id, target.id),
      })),
  ),

  // Peripherals never act, not even for their siblings.
  {
    name: 'bound peripheral for another peripheral',
    actor: boundToGateway,
    target: unbound,
    expect: deny(403, boundToGateway.id),
  },
  { name: 'floating for a peripheral', actor: floating, target: unbound, expect: deny(403, floating.id) },
  { name: 'unbound peripheral for its gateway', actor: unbound, target: gateway, expect: deny(403, unbound.id) },

  // Another application: 404, never 403, whatever the classes.
  {
    name: 'gateway for an unbound peripheral of another application',
    actor: gateway,
    target: otherUnbound,
    expect: deny(404, otherUnbound.id, APP),
  },
  {
    name: 'gateway for a floating device of another application',
    actor: gateway,
    target: otherFloating,
    expect: deny(404, otherFloating.id, APP),
  },
  {
    name: 'gateway for a bound peripheral of another application',
    actor: gateway,
    target: otherBoundToGateway,
    expect: deny(404, otherBoundToGateway.id, APP),
  },
  {
    name: 'gateway for a standalone device of another application',
    actor: gateway,
    target: otherStandalone,
    expect: deny(404, otherStandalone.id, APP),
  },
  {
    name: 'standalone for a device of another application',
    actor: standalone,
    target: otherStandalone,
    expect: deny(404, otherStandalone.id, APP),
  },
  {
    name: 'edgeCompute for a peripheral of another application',
    actor: edge,
    target: otherUnbound,
    expect: deny(404, otherUnbound.id, APP),
  },
  {
    name: 'system for a device of another application',
    actor: system,
    target: otherGateway,
    expect: deny(404, otherGateway.id, APP),
  },

  // No such device.
  ...[standalone, gateway, edge, system, embedded].map(
    (actor): ActForRow => ({
      name: `${actor.deviceClass} for an unknown device`,
      actor,
      target: undefined,
      expect: deny(404),
    }),
  ),
];

const cases: Case[] = [
  // reportState / receiveCommands: the device-class rule, identical for both.
  ...(['reportState', 'receiveCommands'] as const).flatMap((type) =>
    actForRows.map((row) => ({
      name: `${type}: ${row.name}`,
      principal: as(row.actor),
      action: on(type, row.target),
      expect: row.expect,
    })),
  ),

  // connect: every class that may connect, peripherals refused with 403.
  ...[standalone, gateway, edge, system, embedded].map((d) => ({
    name: `connect: ${d.deviceClass} with a key covering it`,
    principal: as(d),
    action: { type: 'connect' } as Action,
    expect: ALLOW,
  })),
  ...[boundToGateway, unbound, floating].map((d) => ({
    name: `connect: ${label(d)} is refused`,
    principal: as(d),
    action: { type: 'connect' } as Action,
    expect: deny(403, d.id),
  })),

  // Inactive key: 401 for every action, whatever the actor.
  ...EVERY_ACTION.flatMap((action) =>
    [standalone, gateway, boundToGateway].map((actor) => {
      const key = accessKey({ status: 'inactive' });
      return {
        name: `inactive key: ${action.type} by ${actor.deviceClass}`,
        principal: as(actor, key),
        action,
        expect: deny(401, key.key),
      };
    }),
  ),

  // Key restricted by deviceIds.
  (() => {
    const key = accessKey({ deviceIds: [gateway.id] });
    return {
      name: 'deviceIds key covering the actor: connect',
      principal: as(gateway, key),
      action: { type: 'connect' },
      expect: ALLOW,
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceIds: [gateway2.id, standalone.id] });
    return {
      name: 'deviceIds key not covering the actor: connect',
      principal: as(gateway, key),
      action: { type: 'connect' },
      expect: deny(401, key.key, gateway.id),
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceIds: [standalone.id] });
    return {
      name: 'deviceIds key not covering the actor: reportState for itself',
      principal: as(gateway, key),
      action: on('reportState', gateway),
      expect: deny(401, key.key, gateway.id),
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceIds: [] });
    return {
      name: 'empty deviceIds key covers nothing',
      principal: as(standalone, key),
      action: { type: 'connect' },
      expect: deny(401, key.key, standalone.id),
    } as Case;
  })(),
  // A gateway's key need not list the peripherals (to act for them, or to read them).
  ...[boundToGateway, unbound, floating].flatMap((target) =>
    (['reportState', 'receiveCommands', 'readDevice'] as const).map(
      (type): Case => ({
        name: `${type}: gateway key listing only the gateway, for a ${label(target)}`,
        principal: as(gateway, accessKey({ deviceIds: [gateway.id] })),
        action: on(type, target),
        expect: ALLOW,
      }),
    ),
  ),
  // ...but the device-class rule still applies.
  (() => {
    const key = accessKey({ deviceIds: [gateway.id, boundToGateway2.id] });
    return {
      name: 'reportState: key listing a peripheral bound to another gateway does not let the gateway act for it',
      principal: as(gateway, key),
      action: on('reportState', boundToGateway2),
      expect: deny(403, boundToGateway2.id, gateway2.id),
    } as Case;
  })(),

  (() => {
    const key = accessKey({ deviceIds: [gateway.id, boundToGateway2.id] });
    return {
      name: 'readDevice: key listing a peripheral bound to another gateway does not let the gateway read it',
      principal: as(gateway, key),
      action: on('readDevice', boundToGateway2),
      expect: deny(403, boundToGateway2.id, gateway2.id),
    } as Case;
  })(),

  // Key restricted by deviceTags.
  {
    name: 'deviceTags key with a matching tag: connect',
    principal: as(gateway, accessKey({ deviceTags: [{ key: 'site', value: 'north' }] })),
    action: { type: 'connect' },
    expect: ALLOW,
  },
  {
    name: 'deviceTags key matching one of several tags: connect',
    principal: as(
      gateway,
      accessKey({
        deviceTags: [
          { key: 'site', value: 'east' },
          { key: 'site', value: 'north' },
        ],
      }),
    ),
    action: { type: 'connect' },
    expect: ALLOW,
  },
  (() => {
    const key = accessKey({ deviceTags: [{ key: 'site', value: 'south' }] });
    return {
      name: 'deviceTags key with the same tag key but another value: connect',
      principal: as(gateway, key),
      action: { type: 'connect' },
      expect: deny(401, key.key, gateway.id),
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceTags: [{ key: 'north', value: 'site' }] });
    return {
      name: 'deviceTags key with key and value swapped: connect',
      principal: as(gateway, key),
      action: { type: 'connect' },
      expect: deny(401, key.key, gateway.id),
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceTags: [{ key: 'site', value: 'north' }] });
    return {
      name: 'deviceTags key for a device without tags: connect',
      principal: as(edge, key),
      action: { type: 'connect' },
      expect: deny(401, key.key, edge.id),
    } as Case;
  })(),
  {
    name: 'deviceIds and deviceTags: covered by the ids only',
    principal: as(edge, accessKey({ deviceIds: [edge.id], deviceTags: [{ key: 'site', value: 'south' }] })),
    action: { type: 'connect' },
    expect: ALLOW,
  },
  {
    name: 'deviceIds and deviceTags: covered by the tags only',
    principal: as(gateway, accessKey({ deviceIds: [edge.id], deviceTags: [{ key: 'site', value: 'north' }] })),
    action: { type: 'connect' },
    expect: ALLOW,
  },

  // Key of another application.
  ...EVERY_ACTION.map(
    (action): Case => ({
      name: `key of another application: ${action.type}`,
      principal: as(standalone, otherAppKey),
      action,
      expect: deny(401, otherAppKey.key, standalone.id),
    }),
  ),
  {
    name: 'key of another application listing the device id: connect',
    principal: as(standalone, accessKey({ applicationId: OTHER_APP, deviceIds: [standalone.id] })),
    action: { type: 'connect' },
    expect: deny(401, standalone.id),
  },

  // receiveErrors: only the device itself.
  ...[standalone, gateway, edge, system, embedded].map(
    (d): Case => ({
      name: `receiveErrors: ${d.deviceClass} for itself`,
      principal: as(d),
      action: on('receiveErrors', d),
      expect: ALLOW,
    }),
  ),
  {
    name: 'receiveErrors: gateway for a peripheral bound to it',
    principal: as(gateway),
    action: on('receiveErrors', boundToGateway),
    expect: deny(403, gateway.id, boundToGateway.id),
  },
  {
    name: 'receiveErrors: gateway for an unbound peripheral',
    principal: as(gateway),
    action: on('receiveErrors', unbound),
    expect: deny(403, gateway.id, unbound.id),
  },
  {
    name: 'receiveErrors: gateway for a floating device',
    principal: as(gateway),
    action: on('receiveErrors', floating),
    expect: deny(403, gateway.id, floating.id),
  },
  {
    name: 'receiveErrors: standalone for another standalone-like device',
    principal: as(standalone),
    action: on('receiveErrors', system),
    expect: deny(403, standalone.id, system.id),
  },
  {
    name: 'receiveErrors: device of another application',
    principal: as(standalone),
    action: on('receiveErrors', otherStandalone),
    expect: deny(404, otherStandalone.id, APP),
  },
  {
    name: 'receiveErrors: unknown device',
    principal: as(gateway),
    action: on('receiveErrors', undefined),
    expect: deny(404),
  },
  {
    name: 'receiveErrors: peripheral for itself',
    principal: as(unbound),
    action: on('receiveErrors', unbound),
    expect: deny(403, unbound.id),
  },

  // readDevice: what the device may act for (the device-class rule, as for reportState): itself,
  // and for a gateway or edgeCompute device the peripherals bound to it or to no gateway.
  ...actForRows.map(
    (row): Case => ({
      name: `readDevice: ${row.name}`,
      principal: as(row.actor),
      action: on('readDevice', row.target),
      expect: row.expect,
    }),
  ),
  {
    name: 'readDevice: the refusal says reading follows acting',
    principal: as(standalone),
    action: on('readDevice', floating),
    expect: deny(403, 'may read only what it may act for', standalone.id, floating.id),
  },

  // listDevices: an API token lists everything; a device token lists (itself and the peripherals
  // it may act for, see deviceListScope) in its own application only.
  { name: 'admin: listDevices', principal: ADMIN, action: { type: 'listDevices', applicationId: APP }, expect: ALLOW },
  {
    name: 'admin: listDevices of another application',
    principal: ADMIN,
    action: { type: 'listDevices', applicationId: OTHER_APP },
    expect: ALLOW,
  },
  ...[standalone, gateway, edge, system, embedded].flatMap((d): Case[] => [
    {
      name: `listDevices: ${d.deviceClass} device token, its own application`,
      principal: as(d),
      action: { type: 'listDevices', applicationId: APP },
      expect: ALLOW,
    },
    {
      name: `listDevices: ${d.deviceClass} device token, another application`,
      principal: as(d),
      action: { type: 'listDevices', applicationId: OTHER_APP },
      expect: deny(404, OTHER_APP),
    },
  ]),
  ...[boundToGateway, unbound, floating].map(
    (d): Case => ({
      name: `listDevices: ${label(d)} device token is refused`,
      principal: as(d),
      action: { type: 'listDevices', applicationId: APP },
      expect: deny(403, d.id),
    }),
  ),
  (() => {
    const key = accessKey({ deviceIds: [standalone.id] });
    return {
      name: 'listDevices: key not covering the actor',
      principal: as(gateway, key),
      action: { type: 'listDevices', applicationId: APP },
      expect: deny(401, key.key, gateway.id),
    } as Case;
  })(),

  // sendCommand: the key must cover the target.
  {
    name: 'sendCommand: all-devices key, to itself',
    principal: as(standalone),
    action: on('sendCommand', standalone),
    expect: ALLOW,
  },
  {
    name: 'sendCommand: all-devices key, to another device',
    principal: as(standalone),
    action: on('sendCommand', gateway),
    expect: ALLOW,
  },
  {
    name: 'sendCommand: all-devices key, to a peripheral',
    principal: as(standalone),
    action: on('sendCommand', boundToGateway2),
    expect: ALLOW,
  },
  {
    name: 'sendCommand: deviceIds key listing the target',
    principal: as(standalone, accessKey({ deviceIds: [standalone.id, embedded.id] })),
    action: on('sendCommand', embedded),
    expect: ALLOW,
  },
  (() => {
    const key = accessKey({ deviceIds: [gateway.id] });
    return {
      name: 'sendCommand: deviceIds key not listing the target',
      principal: as(gateway, key),
      action: on('sendCommand', standalone),
      expect: deny(403, key.key, standalone.id),
    } as Case;
  })(),
  (() => {
    const key = accessKey({ deviceIds: [gateway.id] });
    return {
      name: 'sendCommand: gateway key not listing its own peripheral',
      principal: as(gateway, key),
      action: on('sendCommand', boundToGateway),
      expect: deny(403, key.key, boundToGateway.id),
    } as Case;
  })(),
  {
    name: 'sendCommand: deviceTags key whose tag the target carries',
    principal: as(gateway, accessKey({ deviceTags: [{ key: 'site', value: 'north' }] })),
    action: on('sendCommand', standalone),
    expect: ALLOW,
  },
  (() => {
    const key = accessKey({ deviceTags: [{ key: 'site', value: 'south' }] });
    return {
      name: 'sendCommand: deviceTags key whose tag value the target does not carry',
      principal: as(gateway2, key),
      action: on('sendCommand', standalone),
      expect: deny(403, key.key, standalone.id),
    } as Case;
  })(),
  {
    name: 'sendCommand: device of another application',
    principal: as(standalone),
    action: on('sendCommand', otherStandalone),
    expect: deny(404, otherStandalone.id, APP),
  },
  {
    name: 'sendCommand: unknown device',
    principal: as(standalone),
    action: on('sendCommand', undefined),
    expect: deny(404),
  },

  // Admin: every action but being an MQTT client.
  { name: 'admin: connect', principal: ADMIN, action: { type: 'connect' }, expect: deny(403) },
  { name: 'admin: publishTopic', principal: ADMIN, action: pub('custom/x'), expect: deny(403) },
  { name: 'admin: subscribeTopic', principal: ADMIN, action: sub('custom/x'), expect: deny(403) },
  // Receiving commands and errors is what an MQTT client does: never an operator.
  ...TARGET_ACTIONS.flatMap((type): Case[] => {
    const mqttOnly = type === 'receiveCommands' || type === 'receiveErrors';
    return [
      ...[standalone, gateway, boundToGateway, unbound, floating, otherStandalone].map((target) => ({
        name: `admin: ${type} on a ${label(target)}`,
        principal: ADMIN,
        action: on(type, target),
        expect: mqttOnly ? deny(403, 'MQTT client') : ALLOW,
      })),
      {
        name: `admin: ${type} on an unknown device`,
        principal: ADMIN,
        action: on(type, undefined),
        expect: mqttOnly ? deny(403) : deny(404),
      },
    ];
  }),
];

// Custom topics ------------------------------------------------------------------------------

const keyAll = accessKey({ filterType: 'all', pubTopics: ['ignored/#'], subTopics: ['ignored/#'] });
const keyNone = accessKey({ filterType: 'none', pubTopics: ['custom/#'], subTopics: ['custom/#'] });
const keyWhite = accessKey({
  filterType: 'whitelist',
  pubTopics: ['sensors/+/temp', 'fleet/#', 'exact/topic'],
  subTopics: ['alerts/+/high', 'config/#', 'exact/sub'],
});
const keyBlack = accessKey({
  filterType: 'blacklist',
  pubTopics: ['secret/#', 'private/+/data'],
  subTopics: ['secret/#', 'private/+/data'],
});

const topicCases: Case[] = [
  // filterType all
  { name: 'all: publish a custom topic', principal: as(standalone, keyAll), action: pub('custom/a/b'), expect: ALLOW },
  { name: 'all: gateway publishes a custom topic', principal: as(gateway, keyAll), action: pub('x'), expect: ALLOW },
  {
    name: 'all: publish $SYS',
    principal: as(standalone, keyAll),
    action: pub('$SYS/broker'),
    expect: deny(403, '$SYS/broker'),
  },
  {
    name: 'all: publish $ topic',
    principal: as(standalone, keyAll),
    action: pub('$custom'),
    expect: deny(403, '$custom'),
  },
  {
    name: 'all: publish with +',
    principal: as(standalone, keyAll),
    action: pub('custom/+'),
    expect: deny(403, 'custom/+'),
  },
  {
    name: 'all: publish with #',
    principal: as(standalone, keyAll),
    action: pub('custom/#'),
    expect: deny(403, 'custom/#'),
  },
  { name: 'all: subscribe a custom topic', principal: as(standalone, keyAll), action: sub('custom/a'), expect: ALLOW },
  { name: 'all: subscribe custom/#', principal: as(standalone, keyAll), action: sub('custom/#'), expect: ALLOW },
  { name: 'all: subscribe custom/+/x', principal: as(standalone, keyAll), action: sub('custom/+/x'), expect: ALLOW },
  {
    name: 'all: subscribe losantx/a (not the prefix)',
    principal: as(standalone, keyAll),
    action: sub('losantx/a'),
    expect: ALLOW,
  },
  {
    name: 'all: subscribe $SYS/#',
    principal: as(standalone, keyAll),
    action: sub('$SYS/#'),
    expect: deny(403, '$SYS/#'),
  },
  {
    name: 'all: subscribe $share/g/x',
    principal: as(standalone, keyAll),
    action: sub('$share/g/x'),
    expect: deny(403, '$share/g/x'),
  },
  ...[
    '#',
    '+',
    '+/#',
    '+/x/command',
    '+/+/command',
    '+/+/+',
    'losant/#',
    'losant/+/command',
    'losant/+/state',
    'losant/+/+',
    'losant',
    'losant/+',
    `losant/${standalone.id}/+`,
  ].map(
    (filter): Case => ({
      name: `all: subscribe ${filter} (could match losant/#)`,
      principal: as(standalone, keyAll),
      action: sub(filter),
      expect: deny(403, filter, 'losant'),
    }),
  ),
  {
    name: 'all, custom prefix: # could match acme/#',
    principal: as(standalone, keyAll),
    action: sub('#', 'acme'),
    expect: deny(403, 'acme'),
  },
  {
    name: 'all, custom prefix: acme/+/command',
    principal: as(standalone, keyAll),
    action: sub('acme/+/command', 'acme'),
    expect: deny(403, 'acme/+/command'),
  },
  {
    name: 'all, custom prefix: losant/# is a custom topic there',
    principal: as(standalone, keyAll),
    action: sub('losant/#', 'acme'),
    expect: ALLOW,
  },

  // filterType none
  {
    name: 'none: publish',
    principal: as(standalone, keyNone),
    action: pub('custom/a'),
    expect: deny(403, keyNone.key, 'custom/a'),
  },
  {
    name: 'none: subscribe',
    principal: as(standalone, keyNone),
    action: sub('custom/a'),
    expect: deny(403, keyNone.key, 'custom/a'),
  },
  { name: 'none: publish $', principal: as(standalone, keyNone), action: pub('$SYS/x'), expect: deny(403) },
  { name: 'none: subscribe #', principal: as(standalone, keyNone), action: sub('#'), expect: deny(403) },

  // filterType whitelist: publish against pubTopics
  {
    name: 'whitelist: publish matching +',
    principal: as(standalone, keyWhite),
    action: pub('sensors/a1/temp'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: publish matching # (parent level)',
    principal: as(standalone, keyWhite),
    action: pub('fleet'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: publish matching # (deep)',
    principal: as(standalone, keyWhite),
    action: pub('fleet/a/b/c'),
    expect: ALLOW,
  },
  { name: 'whitelist: publish exact', principal: as(standalone, keyWhite), action: pub('exact/topic'), expect: ALLOW },
  {
    name: 'whitelist: publish where + would need two levels',
    principal: as(standalone, keyWhite),
    action: pub('sensors/a/b/temp'),
    expect: deny(403, 'sensors/a/b/temp', keyWhite.key),
  },
  {
    name: 'whitelist: publish another leaf',
    principal: as(standalone, keyWhite),
    action: pub('sensors/a1/humidity'),
    expect: deny(403, 'sensors/a1/humidity', keyWhite.key),
  },
  {
    name: 'whitelist: publish a longer exact topic',
    principal: as(standalone, keyWhite),
    action: pub('exact/topic/more'),
    expect: deny(403, 'exact/topic/more'),
  },
  {
    name: 'whitelist: publish a topic only in subTopics',
    principal: as(standalone, keyWhite),
    action: pub('exact/sub'),
    expect: deny(403, 'exact/sub'),
  },
  { name: 'whitelist: publish $', principal: as(standalone, keyWhite), action: pub('$fleet'), expect: deny(403) },
  // filterType whitelist: subscribe within subTopics
  {
    name: 'whitelist: subscribe exact under +',
    principal: as(standalone, keyWhite),
    action: sub('alerts/t1/high'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: subscribe the same + pattern',
    principal: as(standalone, keyWhite),
    action: sub('alerts/+/high'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: subscribe the same # pattern',
    principal: as(standalone, keyWhite),
    action: sub('config/#'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: subscribe a narrower # pattern',
    principal: as(standalone, keyWhite),
    action: sub('config/a/#'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: subscribe + within #',
    principal: as(standalone, keyWhite),
    action: sub('config/+/x'),
    expect: ALLOW,
  },
  {
    name: 'whitelist: subscribe the # parent level',
    principal: as(standalone, keyWhite),
    action: sub('config'),
    expect: ALLOW,
  },
  { name: 'whitelist: subscribe exact', principal: as(standalone, keyWhite), action: sub('exact/sub'), expect: ALLOW },
  {
    name: 'whitelist: subscribe broader than a + pattern',
    principal: as(standalone, keyWhite),
    action: sub('alerts/#'),
    expect: deny(403, 'alerts/#', keyWhite.key),
  },
  {
    name: 'whitelist: subscribe + where the pattern has a literal',
    principal: as(standalone, keyWhite),
    action: sub('alerts/t1/+'),
    expect: deny(403, 'alerts/t1/+'),
  },
  {
    name: 'whitelist: subscribe a topic only in pubTopics',
    principal: as(standalone, keyWhite),
    action: sub('exact/topic'),
    expect: deny(403, 'exact/topic'),
  },
  { name: 'whitelist: subscribe #', principal: as(standalone, keyWhite), action: sub('#'), expect: deny(403, '#') },
  { name: 'whitelist: subscribe $', principal: as(standalone, keyWhite), action: sub('$SYS/#'), expect: deny(403) },

  // filterType blacklist: publish against pubTopics
  {
    name: 'blacklist: publish a free topic',
    principal: as(standalone, keyBlack),
    action: pub('public/x'),
    expect: ALLOW,
  },
  {
    name: 'blacklist: publish where + would need two levels',
    principal: as(standalone, keyBlack),
    action: pub('private/a/b/data'),
    expect: ALLOW,
  },
  {
    name: 'blacklist: publish under #',
    principal: as(standalone, keyBlack),
    action: pub('secret/a/b'),
    expect: deny(403, 'secret/a/b', keyBlack.key),
  },
  {
    name: 'blacklist: publish the # parent',
    principal: as(standalone, keyBlack),
    action: pub('secret'),
    expect: deny(403, 'secret'),
  },
  {
    name: 'blacklist: publish matching +',
    principal: as(standalone, keyBlack),
    action: pub('private/p1/data'),
    expect: deny(403, 'private/p1/data'),
  },
  {
    name: 'blacklist: publish a wildcard that would dodge the list',
    principal: as(standalone, keyBlack),
    action: pub('secret/+'),
    expect: deny(403, 'secret/+'),
  },
  { name: 'blacklist: publish $', principal: as(standalone, keyBlack), action: pub('$SYS/x'), expect: deny(403) },
  // filterType blacklist: subscribe overlapping subTopics
  {
    name: 'blacklist: subscribe a free topic',
    principal: as(standalone, keyBlack),
    action: sub('public/x'),
    expect: ALLOW,
  },
  {
    name: 'blacklist: subscribe a free wildcard',
    principal: as(standalone, keyBlack),
    action: sub('public/#'),
    expect: ALLOW,
  },
  {
    name: 'blacklist: subscribe private/+ (one level short)',
    principal: as(standalone, keyBlack),
    action: sub('private/+'),
    expect: ALLOW,
  },
  {
    name: 'blacklist: subscribe under #',
    principal: as(standalone, keyBlack),
    action: sub('secret/x'),
    expect: deny(403, 'secret/x', keyBlack.key),
  },
  {
    name: 'blacklist: subscribe a wildcard overlapping a blacklisted topic',
    principal: as(standalone, keyBlack),
    action: sub('+/x'),
    expect: deny(403, '+/x'),
  },
  {
    name: 'blacklist: subscribe private/#',
    principal: as(standalone, keyBlack),
    action: sub('private/#'),
    expect: deny(403, 'private/#'),
  },
  {
    name: 'blacklist: subscribe private/+/data exactly',
    principal: as(standalone, keyBlack),
    action: sub('private/p/data'),
    expect: deny(403, 'private/p/data'),
  },
  { name: 'blacklist: subscribe #', principal: as(standalone, keyBlack), action: sub('#'), expect: deny(403, '#') },
  { name: 'blacklist: subscribe $', principal: as(standalone, keyBlack), action: sub('$SYS/#'), expect: deny(403) },

  // Custom topics still need a usable key and a connecting device.
  {
    name: 'all: peripheral cannot publish',
    principal: as(unbound, keyAll),
    action: pub('custom/x'),
    expect: deny(403, unbound.id),
  },
  {
    name: 'all: key not covering the device',
    principal: as(standalone, accessKey({ filterType: 'all', deviceIds: [gateway.id] })),
    action: sub('custom/x'),
    expect: deny(401, standalone.id),
  },
];

// Runner -------------------------------------------------------------------------------------

function check(decision: Decision, expected: Expect): void {
  if (expected === 'allow') {
    expect(decision).toEqual({ allow: true });
    return;
  }
  expect(decision.allow).toBe(false);
  if (decision.allow) return;
  expect(decision.status).toBe(expected.status);
  expect(decision.reason).toEqual(expect.any(String));
  expect(decision.reason.length).toBeGreaterThan(0);
  for (const fragment of expected.mentions ?? []) expect(decision.reason).toContain(fragment);
}

describe('authorize()', () => {
  const all = [...cases, ...topicCases];

  it('has unique case names', () => {
    const names = all.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(all)('$name', ({ principal, action, expect: expected }) => {
    check(authorize(principal, action), expected);
  });
});

// Every principal × every route class × same / other application -------------------------------
//
// One row per principal, one column per route class; each cell is the outcome for a target in
// the principal's application and for one in another application. Spelled out cell by cell so
// that a change in who may do what shows up here as a visible edit.

const USER_ID = 'd0d0d0d0d0d0d0d0d0d0d0d0';
const TOKEN_ID = 'e0e0e0e0e0e0e0e0e0e0e0e0';
const member = (role: Role): Principal => ({ kind: 'user', userId: USER_ID, roles: new Map([[APP, role]]) });
const token = (role: Role): Principal => ({ kind: 'apiToken', tokenId: TOKEN_ID, applicationId: APP, role });

const PRINCIPALS = {
  'admin token': ADMIN,
  'admin user': { kind: 'admin', via: 'user', id: USER_ID },
  owner: member('owner'),
  editor: member('editor'),
  viewer: member('viewer'),
  'owner token': token('owner'),
  'editor token': token('editor'),
  'viewer token': token('viewer'),
  workflow: { kind: 'workflow', flowId: 'f0f0f0f0f0f0f0f0f0f0f0f0', applicationId: APP },
  'device token': as(standalone),
  'gateway token': as(gateway),
} satisfies Record<string, Principal>;
type PrincipalName = keyof typeof PRINCIPALS;

/** Route classes whose target lies in an application: [same application, other application]. */
const SCOPED = {
  'read application (definition, members, logs, data, event stream)': (app: string): Action => ({
    type: 'readApplication',
    applicationId: app,
  }),
  'list devices': (app: string): Action => ({ type: 'listDevices', applicationId: app }),
  'read a peripheral (state, logs, device stream)': (app: string): Action =>
    on('readDevice', app === APP ? unbound : otherUnbound),
  'edit (devices, keys, flows, dashboards)': (app: string): Action => ({ type: 'editApplication', applicationId: app }),
  "report a peripheral's state": (app: string): Action => on('reportState', app === APP ? unbound : otherUnbound),
  'command a peripheral': (app: string): Action => on('sendCommand', app === APP ? unbound : otherUnbound),
  "read a peripheral's command history": (app: string): Action =>
    on('readCommands', app === APP ? unbound : otherUnbound),
  'own (settings, deletion, members, tokens)': (app: string): Action => ({
    type: 'ownApplication',
    applicationId: app,
  }),
  "receive a peripheral's commands over MQTT": (app: string): Action =>
    on('receiveCommands', app === APP ? unbound : otherUnbound),
} as const;
/** Route classes without an application. */
const UNSCOPED = {
  'create an application': { type: 'createApplication' },
  'list applications': { type: 'listApplications' },
  'manage users': { type: 'manageUsers' },
  'connect over MQTT': { type: 'connect' },
} as const satisfies Record<string, Action>;

type Cell = 'allow' | 401 | 403 | 404;
type Row = { [K in keyof typeof SCOPED]: [Cell, Cell] } & { [K in keyof typeof UNSCOPED]: Cell };

const A = 'allow' as const;
const operator: Row = {
  'read application (definition, members, logs, data, event stream)': [A, A],
  'list devices': [A, A],
  'read a peripheral (state, logs, device stream)': [A, A],
  'edit (devices, keys, flows, dashboards)': [A, A],
  "report a peripheral's state": [A, A],
  'command a peripheral': [A, A],
  "read a peripheral's command history": [A, A],
  'own (settings, deletion, members, tokens)': [A, A],
  "receive a peripheral's commands over MQTT": [403, 403],
  'create an application': A,
  'list applications': A,
  'manage users': A,
  'connect over MQTT': 403,
};
const byRole = (role: Role, createsApplications: boolean): Row => {
  const edits = role !== 'viewer';
  const owns = role === 'owner';
  return {
    'read application (definition, members, logs, data, event stream)': [A, 404],
    'list devices': [A, 404],
    'read a peripheral (state, logs, device stream)': [A, 404],
    'edit (devices, keys, flows, dashboards)': [edits ? A : 403, 404],
    "report a peripheral's state": [edits ? A : 403, 404],
    'command a peripheral': [edits ? A : 403, 404],
    "read a peripheral's command history": [A, 404],
    'own (settings, deletion, members, tokens)': [owns ? A : 403, 404],
    "receive a peripheral's commands over MQTT": [403, 403],
    'create an application': createsApplications ? A : 403,
    'list applications': A,
    'manage users': 403,
    'connect over MQTT': 403,
  };
};

const MATRIX: Record<PrincipalName, Row> = {
  'admin token': operator,
  'admin user': operator,
  owner: byRole('owner', true),
  editor: byRole('editor', true),
  viewer: byRole('viewer', true),
  'owner token': byRole('owner', false),
  'editor token': byRole('editor', false),
  'viewer token': byRole('viewer', false),
  workflow: byRole('editor', false),
  'device token': {
    'read application (definition, members, logs, data, event stream)': [403, 404],
    'list devices': [A, 404],
    'read a peripheral (state, logs, device stream)': [403, 404],
    'edit (devices, keys, flows, dashboards)': [403, 404],
    "report a peripheral's state": [403, 404],
    'command a peripheral': [A, 404],
    "read a peripheral's command history": [A, 404],
    'own (settings, deletion, members, tokens)': [403, 404],
    "receive a peripheral's commands over MQTT": [403, 404],
    'create an application': 403,
    'list applications': 403,
    'manage users': 403,
    'connect over MQTT': A,
  },
  'gateway token': {
    'read application (definition, members, logs, data, event stream)': [403, 404],
    'list devices': [A, 404],
    'read a peripheral (state, logs, device stream)': [A, 404],
    'edit (devices, keys, flows, dashboards)': [403, 404],
    "report a peripheral's state": [A, 404],
    'command a peripheral': [A, 404],
    "read a peripheral's command history": [A, 404],
    'own (settings, deletion, members, tokens)': [403, 404],
    "receive a peripheral's commands over MQTT": [A, 404],
    'create an application': 403,
    'list applications': 403,
    'manage users': 403,
    'connect over MQTT': A,
  },
};

const matrixCases = (Object.keys(MATRIX) as PrincipalName[]).flatMap((who) => {
  const row = MATRIX[who];
  const principal: Principal = PRINCIPALS[who];
  const cell = (c: Cell): Expect => (c === 'allow' ? ALLOW : deny(c));
  return [
    ...(Object.keys(SCOPED) as Array<keyof typeof SCOPED>).flatMap((route) =>
      (['same application', 'other application'] as const).map((where, i) => ({
        name: `${who} × ${route} × ${where}`,
        principal,
        action: SCOPED[route](i === 0 ? APP : OTHER_APP),
        expect: cell(row[route][i] as Cell),
      })),
    ),
    ...(Object.keys(UNSCOPED) as Array<keyof typeof UNSCOPED>).map((route) => ({
      name: `${who} × ${route}`,
      principal,
      action: UNSCOPED[route] as Action,
      expect: cell(row[route]),
    })),
  ];
});

describe('authorize(): every principal × every route class × same / other application', () => {
  it('covers every principal and route class', () => {
    expect(matrixCases).toHaveLength(
      Object.keys(PRINCIPALS).length * (2 * Object.keys(SCOPED).length + Object.keys(UNSCOPED).length),
    );
  });

  it.each(matrixCases)('$name', ({ principal, action, expect: expected }) => {
    check(authorize(principal, action), expected);
  });

  it('names the role that was missing, and never reveals another application', () => {
    const refused = authorize(member('viewer'), { type: 'editApplication', applicationId: APP });
    expect(refused).toMatchObject({ allow: false, status: 403 });
    if (!refused.allow) expect(refused.reason).toMatch(/viewer.*editor/);
    const hidden = authorize(token('owner'), { type: 'ownApplication', applicationId: OTHER_APP });
    expect(hidden).toMatchObject({ allow: false, status: 404 });
    if (!hidden.allow) expect(hidden.reason).not.toContain(APP);
  });

  it('a user with roles in two applications has each role in its own application only', () => {
    const two: Principal = {
      kind: 'user',
      userId: USER_ID,
      roles: new Map<string, Role>([
        [APP, 'viewer'],
        [OTHER_APP, 'owner'],
      ]),
    };
    expect(authorize(two, { type: 'ownApplication', applicationId: OTHER_APP })).toEqual({ allow: true });
    expect(authorize(two, { type: 'ownApplication', applicationId: APP })).toMatchObject({ status: 403 });
    expect(authorize(two, on('sendCommand', otherUnbound))).toEqual({ allow: true });
    expect(authorize(two, on('sendCommand', unbound))).toMatchObject({ status: 403 });
  });
});

describe('applicationScope()', () => {
  it('is every application for an operator, the member applications for a user, its own for a token', () => {
    expect(applicationScope(ADMIN)).toBeNull();
    expect(applicationScope(PRINCIPALS['admin user'])).toBeNull();
    expect(applicationScope(member('viewer'))).toEqual([APP]);
    expect(applicationScope(token('editor'))).toEqual([APP]);
    expect(applicationScope(PRINCIPALS.workflow)).toEqual([APP]);
    expect(applicationScope(as(standalone))).toEqual([]);
  });
});

describe('principalId()', () => {
  it('names each kind of principal distinctly', () => {
    expect(principalId(ADMIN)).toBe('token:c0c0c0c0c0c0c0c0c0c0c0c0');
    expect(principalId(PRINCIPALS['admin user'])).toBe(`user:${USER_ID}`);
    expect(principalId(member('owner'))).toBe(`user:${USER_ID}`);
    expect(principalId(token('viewer'))).toBe(`token:${TOKEN_ID}`);
    expect(principalId(PRINCIPALS.workflow)).toBe('flow:f0f0f0f0f0f0f0f0f0f0f0f0');
    expect(principalId(as(gateway))).toBe(gateway.id);
  });
});

describe('deviceListScope()', () => {
  it('is everything for anyone but a device', () => {
    for (const p of [ADMIN, member('viewer'), token('viewer'), PRINCIPALS.workflow])
      expect(deviceListScope(p)).toBeNull();
  });

  it.each([
    [standalone, false],
    [system, false],
    [embedded, false],
    [gateway, true],
    [edge, true],
  ] as const)('names the device, with peripherals for a gateway (%#)', (d, withPeripherals) => {
    expect(deviceListScope(as(d))).toEqual({ deviceId: d.id, withPeripherals });
  });
});

describe('keyCoversDevice()', () => {
  const rows: Array<{ name: string; key: AccessKey; device: Device; covers: boolean }> = [
    { name: 'unrestricted key', key: allKey, device: standalone, covers: true },
    { name: 'unrestricted key, peripheral', key: allKey, device: unbound, covers: true },
    { name: 'key of another application', key: otherAppKey, device: standalone, covers: false },
    { name: 'listed id', key: accessKey({ deviceIds: [standalone.id] }), device: standalone, covers: true },
    { name: 'unlisted id', key: accessKey({ deviceIds: [gateway.id] }), device: standalone, covers: false },
    {
      name: 'matching tag',
      key: accessKey({ deviceTags: [{ key: 'site', value: 'north' }] }),
      device: standalone,
      covers: true,
    },
    {
      name: 'same tag key, other value',
      key: accessKey({ deviceTags: [{ key: 'site', value: 'south' }] }),
      device: standalone,
      covers: false,
    },
    {
      name: 'device without tags',
      key: accessKey({ deviceTags: [{ key: 'site', value: 'north' }] }),
      device: system,
      covers: false,
    },
    {
      name: 'same id, other application',
      key: accessKey({ applicationId: OTHER_APP, deviceIds: [standalone.id] }),
      device: standalone,
      covers: false,
    },
  ];
  it.each(rows)('$name', ({ key, device: d, covers }) => {
    expect(keyCoversDevice(key, d)).toBe(covers);
  });
});
