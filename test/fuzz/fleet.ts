/** Seeds the fuzzer's fleet over REST (model.ts describes it) and gives it some history to protect. */
import {
  type AppRole,
  ATTRIBUTES_A,
  ATTRIBUTES_B,
  type AttributeDef,
  appOfRole,
  DEVICE_ROLES,
  type DeviceClass,
  type DeviceRole,
  type Fleet,
  type FleetDevice,
  type FleetKey,
  KEY_ROLES,
  type KeyRole,
  TOKEN_ROLES,
  type TokenRole,
  WATCHED_DEVICES,
} from './model.js';

interface DevicePlan {
  deviceClass: DeviceClass;
  gateway?: DeviceRole;
  tags?: Array<{ key: string; value: string }>;
}

const PLAN: Record<DeviceRole, DevicePlan> = {
  G1: { deviceClass: 'gateway', tags: [{ key: 'site', value: 'north' }] },
  G2: { deviceClass: 'edgeCompute', tags: [{ key: 'site', value: 'south' }] },
  S1: { deviceClass: 'standalone', tags: [{ key: 'site', value: 'north' }] },
  S2: { deviceClass: 'standalone' },
  S3: { deviceClass: 'standalone', tags: [{ key: '__proto__', value: 'constructor' }] },
  E1: { deviceClass: 'embedded', tags: [{ key: 'kind', value: 'embedded' }] },
  P1: { deviceClass: 'peripheral', gateway: 'G1' },
  P2: { deviceClass: 'peripheral', gateway: 'G2' },
  P3: { deviceClass: 'peripheral' },
  F1: { deviceClass: 'floating', tags: [{ key: 'site', value: 'north' }] },
  GB: { deviceClass: 'gateway', tags: [{ key: 'site', value: 'north' }] },
  SB: { deviceClass: 'standalone' },
  PB: { deviceClass: 'peripheral', gateway: 'GB' },
  FB: { deviceClass: 'floating' },
  C1: { deviceClass: 'gateway' },
  C2: { deviceClass: 'peripheral', gateway: 'C1' },
  C3: { deviceClass: 'standalone' },
};

const KEY_PLAN: Record<KeyRole, { body: Record<string, unknown> }> = {
  KA: { body: { description: 'all topics', filterType: 'all' } },
  KN: { body: { description: 'S2 only', deviceIds: ['S2'] } },
  KW: {
    body: {
      description: 'whitelist, by tag',
      filterType: 'whitelist',
      deviceTags: [{ key: 'kind', value: 'embedded' }],
      pubTopics: ['fuzz/#', 'shared/+/x'],
      subTopics: ['fuzz/#', 'shared/+/x'],
    },
  },
  KI: { body: { description: 'inactive', status: 'inactive', filterType: 'all' } },
  KB: { body: { description: 'all topics', filterType: 'all' } },
  KBL: {
    body: { description: 'blacklist', filterType: 'blacklist', pubTopics: ['secret/#'], subTopics: ['secret/#'] },
  },
  KC: { body: { description: 'scratch' } },
};

const TOKEN_KEYS: Record<TokenRole, KeyRole> = { G1: 'KA', S1: 'KA', E1: 'KW', GB: 'KB', S2: 'KN' };

export function attributesOf(app: AppRole): AttributeDef[] {
  return app === 'B' ? ATTRIBUTES_B : ATTRIBUTES_A;
}

/** A valid value of each data type, for the seeded history. */
function validValue(def: AttributeDef, i: number): unknown {
  switch (def.dataType) {
    case 'number':
      return 20 + i + 0.25;
    case 'string':
      return `seed ${i}`;
    case 'boolean':
      return i % 2 === 0;
    case 'gps':
      return `${45 + i},${-93 - i}`;
    case 'blob':
      return Buffer.from(`seed ${i}`).toString('base64');
  }
}

export async function seedFleet(httpUrl: string, adminToken: string): Promise<Fleet> {
  const call = async <T>(method: string, url: string, body: unknown, expected: number): Promise<T> => {
    const res = await fetch(`${httpUrl}${url}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`seeding: ${method} ${url} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  };
  const noLimit = { rateLimit: { messages: 0, windowSeconds: 15 } };
  const apps = {} as Record<AppRole, string>;
  for (const role of ['A', 'B', 'C'] as const) {
    apps[role] = (await call<{ id: string }>('POST', '/applications', { name: `fuzz ${role}`, ...noLimit }, 201)).id;
  }
  const barrierApp = (await call<{ id: string }>('POST', '/applications', { name: 'fuzz barrier', ...noLimit }, 201))
    .id;
  const barrierDevice = (
    await call<{ id: string }>(
      'POST',
      `/applications/${barrierApp}/devices`,
      { name: 'barrier', attributes: [{ name: 'n', dataType: 'number' }] },
      201,
    )
  ).id;

  const devices = {} as Record<DeviceRole, FleetDevice>;
  // Gateways first: peripherals name them.
  const order = [...DEVICE_ROLES].sort(
    (a, b) => Number(PLAN[a].gateway !== undefined) - Number(PLAN[b].gateway !== undefined),
  );
  for (const role of order) {
    const plan = PLAN[role];
    const app = appOfRole(role);
    const attributes = attributesOf(app);
    const gatewayId = plan.gateway ? devices[plan.gateway].id : undefined;
    const created = await call<{ id: string }>(
      'POST',
      `/applications/${apps[app]}/devices`,
      {
        name: `${role} ${plan.deviceClass}`,
        deviceClass: plan.deviceClass,
        attributes,
        ...(plan.tags ? { tags: plan.tags } : {}),
        ...(gatewayId ? { gatewayId } : {}),
      },
      201,
    );
    devices[role] = {
      role,
      id: created.id,
      app,
      deviceClass: plan.deviceClass,
      gateway: plan.gateway ?? null,
      attributes,
    };
  }

  const keys = {} as Record<KeyRole, FleetKey>;
  for (const role of KEY_ROLES) {
    const app = appOfRole(role);
    const body = { ...KEY_PLAN[role].body };
    if (Array.isArray(body.deviceIds)) body.deviceIds = (body.deviceIds as DeviceRole[]).map((r) => devices[r].id);
    const created = await call<{ id: string; key: string; secret: string }>(
      'POST',
      `/applications/${apps[app]}/keys`,
      body,
      201,
    );
    keys[role] = { role, id: created.id, app, key: created.key, secret: created.secret };
  }

  const tokens = {} as Record<TokenRole, string>;
  for (const role of TOKEN_ROLES) {
    const key = keys[TOKEN_KEYS[role]];
    const reply = await fetch(`${httpUrl}/auth/device`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: devices[role].id, key: key.key, secret: key.secret }),
    });
    if (reply.status !== 200)
      throw new Error(`seeding: device token of ${role}: ${reply.status} ${await reply.text()}`);
    tokens[role] = ((await reply.json()) as { token: string }).token;
  }

  // History to protect: three states per watched device, an hour apart, every attribute set.
  const now = Date.now();
  for (const role of WATCHED_DEVICES) {
    const device = devices[role];
    const states = [3, 2, 1].map((h, i) => ({
      time: now - h * 3_600_000,
      data: Object.fromEntries(device.attributes.map((a) => [a.name, validValue(a, i)])),
    }));
    // Object.fromEntries defines "__proto__" as an own key, so JSON.stringify writes it out.
    const body = JSON.stringify(states);
    const res = await fetch(`${httpUrl}/applications/${apps[device.app]}/devices/${device.id}/state`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body,
    });
    if (res.status !== 200) throw new Error(`seeding: state of ${role}: ${res.status} ${await res.text()}`);
  }

  const roleOf = new Map(Object.values(devices).map((d) => [d.id, d.role]));
  return { adminToken, apps, barrierApp, barrierDevice, devices, keys, tokens, baseTime: now, roleOf };
}
