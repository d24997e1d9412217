/** Seeds the fuzzer's fleet over REST (model.ts describes it) and gives it some history to protect. */
import {
  type AppRole,
  ATTRIBUTES_A,
  ATTRIBUTES_B,
  type AttributeDef,
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
  app: AppRole;
  deviceClass: DeviceClass;
  gateway?: DeviceRole;
  tags?: Array<{ key: string; value: string }>;
}

const PLAN: Record<DeviceRole, DevicePlan> = {
  G1: { app: 'A', deviceClass: 'gateway', tags: [{ key: 'site', value: 'north' }] },
  G2: { app: 'A', deviceClass: 'edgeCompute', tags: [{ key: 'site', value: 'south' }] },
  S1: { app: 'A', deviceClass: 'standalone', tags: [{ key: 'site', value: 'north' }] },
  S2: { app: 'A', deviceClass: 'standalone' },
  S3: { app: 'A', deviceClass: 'standalone', tags: [{ key: '__proto__', value: 'constructor' }] },
  E1: { app: 'A', deviceClass: 'embedded', tags: [{ key: 'kind', value: 'embedded' }] },
  P1: { app: 'A', deviceClass: 'peripheral', gateway: 'G1' },
  P2: { app: 'A', deviceClass: 'peripheral', gateway: 'G2' },
  P3: { app: 'A', deviceClass: 'peripheral' },
  F1: { app: 'A', deviceClass: 'floating', tags: [{ key: 'site', value: 'north' }] },
  GB: { app: 'B', deviceClass: 'gateway', tags: [{ key: 'site', value: 'north' }] },
  SB: { app: 'B', deviceClass: 'standalone' },
  PB: { app: 'B', deviceClass: 'peripheral', gateway: 'GB' },
  FB: { app: 'B', deviceClass: 'floating' },
  C1: { app: 'C', deviceClass: 'gateway' },
  C2: { app: 'C', deviceClass: 'peripheral', gateway: 'C1' },
  C3: { app: 'C', deviceClass: 'standalone' },
};

const KEY_PLAN: Record<KeyRole, { app: AppRole; body: Record<string, unknown> }> = {
  KA: { app: 'A', body: { description: 'all topics', filterType: 'all' } },
  KN: { app: 'A', body: { description: 'S2 only', deviceIds: ['S2'] } },
  KW: {
    app: 'A',
    body: {
      description: 'whitelist, by tag',
      filterType: 'whitelist',
      deviceTags: [{ key: 'kind', value: 'embedded' }],
      pubTopics: ['fuzz/#', 'shared/+/x'],
      subTopics: ['fuzz/#', 'shared/+/x'],
    },
  },
  KI: { app: 'A', body: { description: 'inactive', status: 'inactive', filterType: 'all' } },
  KB: { app: 'B', body: { description: 'all topics', filterType: 'all' } },
  KBL: {
    app: 'B',
    body: { description: 'blacklist', filterType: 'blacklist', pubTopics: ['secret/#'], subTopics: ['secret/#'] },
  },
  KC: { app: 'C', body: { description: 'scratch' } },
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
    const attributes = attributesOf(plan.app);
    const gatewayId = plan.gateway ? devices[plan.gateway].id : undefined;
    const created = await call<{ id: string }>(
      'POST',
      `/applications/${apps[plan.app]}/devices`,
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
      app: plan.app,
      deviceClass: plan.deviceClass,
      gateway: plan.gateway ?? null,
      attributes,
    };
  }

  const keys = {} as Record<KeyRole, FleetKey>;
  for (const role of KEY_ROLES) {
    const plan = KEY_PLAN[role];
    const body = { ...plan.body };
    if (Array.isArray(body.deviceIds)) body.deviceIds = (body.deviceIds as DeviceRole[]).map((r) => devices[r].id);
    const created = await call<{ id: string; key: string; secret: string }>(
      'POST',
      `/applications/${apps[plan.app]}/keys`,
      body,
      201,
    );
    keys[role] = { role, id: created.id, app: plan.app, key: created.key, secret: created.secret };
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
