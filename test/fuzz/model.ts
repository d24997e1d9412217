/**
 * The seeded fleet as the fuzzer knows it, and the fuzzer's own reading of the rules it checks
 * the server against (which device may act for which). The rules are restated here from
 * docs/decisions.md, not imported from src/: an oracle that calls the code under test agrees with
 * every bug in it.
 */

/** Applications: A and B are watched by the oracle, C is the scratch area admin mutations go to. */
export type AppRole = 'A' | 'B' | 'C';

export const DEVICE_ROLES = [
  'G1', // gateway (A)
  'G2', // edgeCompute (A)
  'S1', // standalone (A)
  'S2', // standalone (A), its key allows no custom topics and covers only S2
  'S3', // standalone (A), never connected: only an API token may write to it
  'E1', // embedded (A), connected with a whitelist key that covers it by tag
  'P1', // peripheral bound to G1
  'P2', // peripheral bound to G2
  'P3', // peripheral bound to no gateway: any gateway of A
  'F1', // floating (A)
  'GB', // gateway (B)
  'SB', // standalone (B), blacklist key
  'PB', // peripheral bound to GB
  'FB', // floating (B)
  'C1', // scratch devices (C): admin may patch and delete them
  'C2',
  'C3',
] as const;
export type DeviceRole = (typeof DEVICE_ROLES)[number];
/** Devices the oracle watches. */
export const WATCHED_DEVICES = DEVICE_ROLES.filter((r) => !r.startsWith('C'));

export const KEY_ROLES = ['KA', 'KN', 'KW', 'KI', 'KB', 'KBL', 'KC'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

/** The application of each device and key role. */
export const appOfRole = (role: DeviceRole | KeyRole): AppRole =>
  role.startsWith('C') || role === 'KC' ? 'C' : role.endsWith('B') || role === 'KBL' ? 'B' : 'A';

/** MQTT clients of the fuzzer (client id = device id) and the key each connects with. */
export const CLIENT_KEYS = {
  G1: 'KA',
  G2: 'KA',
  S1: 'KA',
  S2: 'KN',
  E1: 'KW',
  GB: 'KB',
  SB: 'KBL',
} as const satisfies Partial<Record<DeviceRole, KeyRole>>;
export type ClientRole = keyof typeof CLIENT_KEYS;
export const CLIENT_ROLES = Object.keys(CLIENT_KEYS) as ClientRole[];

/** Devices with a device token (`POST /auth/device`) for REST cases. */
export const TOKEN_ROLES = ['G1', 'S1', 'E1', 'GB', 'S2'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

export type DataType = 'number' | 'string' | 'boolean' | 'gps' | 'blob';
export interface AttributeDef {
  name: string;
  dataType: DataType;
}

/** Every data type, and names that are also properties of every JavaScript object. */
export const ATTRIBUTES_A: AttributeDef[] = [
  { name: 'num', dataType: 'number' },
  { name: 'str', dataType: 'string' },
  { name: 'flag', dataType: 'boolean' },
  { name: 'pos', dataType: 'gps' },
  { name: 'bin', dataType: 'blob' },
  { name: '__proto__', dataType: 'number' },
  { name: 'constructor', dataType: 'string' },
  { name: 'toString', dataType: 'boolean' },
  { name: 'hasOwnProperty', dataType: 'gps' },
  { name: 'prototype', dataType: 'blob' },
  { name: 'valueOf', dataType: 'number' },
];
/** Application B names some attributes like A with other types, so a value crossing over shows. */
export const ATTRIBUTES_B: AttributeDef[] = [
  { name: 'num', dataType: 'string' },
  { name: 'temperature', dataType: 'number' },
  { name: 'label', dataType: 'string' },
  { name: '__proto__', dataType: 'string' },
  { name: 'constructor', dataType: 'number' },
  { name: 'pos', dataType: 'gps' },
];
export const ATTRIBUTE_NAMES = [...new Set([...ATTRIBUTES_A, ...ATTRIBUTES_B].map((a) => a.name))];

export type DeviceClass = 'standalone' | 'gateway' | 'edgeCompute' | 'peripheral' | 'floating' | 'embedded';

export interface FleetDevice {
  role: DeviceRole;
  id: string;
  app: AppRole;
  deviceClass: DeviceClass;
  /** The gateway role a peripheral is bound to. */
  gateway: DeviceRole | null;
  attributes: AttributeDef[];
}

export interface FleetKey {
  role: KeyRole;
  id: string;
  app: AppRole;
  key: string;
  secret: string;
}

export interface Fleet {
  adminToken: string;
  apps: Record<AppRole, string>;
  /** The application of the barrier device, which no case names. */
  barrierApp: string;
  barrierDevice: string;
  devices: Record<DeviceRole, FleetDevice>;
  keys: Record<KeyRole, FleetKey>;
  tokens: Record<TokenRole, string>;
  /** The seeding time: seeded states are 1, 2 and 3 hours before it, and case times are relative to it. */
  baseTime: number;
  /** Device role by id, for reading ids back from the server. */
  roleOf: Map<string, DeviceRole>;
}

const actsForPeripherals = (c: DeviceClass) => c === 'gateway' || c === 'edgeCompute';
const isPeripheral = (c: DeviceClass) => c === 'peripheral' || c === 'floating';

/**
 * May `actor` report state for (and receive commands of) `target`? Itself; and for a gateway
 * or edgeCompute device, the peripherals and floating devices of its application that are not
 * bound to another gateway.
 */
export function mayActFor(actor: FleetDevice, target: FleetDevice): boolean {
  if (actor.app !== target.app) return false;
  if (actor.role === target.role) return true;
  if (!actsForPeripherals(actor.deviceClass) || !isPeripheral(target.deviceClass)) return false;
  return target.deviceClass === 'floating' || target.gateway === null || target.gateway === actor.role;
}

/** Application roles of the clients, for the leak check of custom topics. */
export function appOfClient(fleet: Fleet, client: ClientRole): AppRole {
  return fleet.devices[client].app;
}

/** Does the MQTT filter (with + and #) match the topic? */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && !filter.startsWith('$')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The custom-topic rules of each client's key (see fleet.ts), as docs/decisions.md states them. */
const CUSTOM_RULES: Record<ClientRole, { publish: (t: string) => boolean; receive: (t: string) => boolean }> = (() => {
  const any = () => true;
  const none = () => false;
  const whitelist = (t: string) => topicMatches('fuzz/#', t) || topicMatches('shared/+/x', t);
  const blacklist = (t: string) => !topicMatches('secret/#', t);
  return {
    G1: { publish: any, receive: any },
    G2: { publish: any, receive: any },
    S1: { publish: any, receive: any },
    S2: { publish: none, receive: none },
    E1: { publish: whitelist, receive: whitelist },
    GB: { publish: any, receive: any },
    SB: { publish: blacklist, receive: blacklist },
  };
})();

const isCustom = (topic: string) => topic !== 'losant' && !topic.startsWith('losant/') && !topic.startsWith('$');

/** May this client publish to a topic outside the platform's (and have it delivered)? */
export function mayPublishCustom(client: ClientRole, topic: string): boolean {
  return isCustom(topic) && !/[+#]/.test(topic) && CUSTOM_RULES[client].publish(topic);
}

/** May this client receive a message on a topic outside the platform's? */
export function mayReceiveCustom(client: ClientRole, topic: string): boolean {
  return isCustom(topic) && CUSTOM_RULES[client].receive(topic);
}
