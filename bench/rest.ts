/** REST setup of the benchmark fleet, with a bounded number of requests in flight. */

export class Rest {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async get<T>(url: string): Promise<T> {
    const res = await fetch(`${this.baseUrl}${url}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${url}: expected 200, got ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  async delete(url: string): Promise<void> {
    const res = await fetch(`${this.baseUrl}${url}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (res.status !== 200) throw new Error(`DELETE ${url}: expected 200, got ${res.status}: ${await res.text()}`);
  }

  async patch(url: string, body: unknown): Promise<void> {
    const res = await fetch(`${this.baseUrl}${url}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    if (res.status !== 200) throw new Error(`PATCH ${url}: expected 200, got ${res.status}: ${await res.text()}`);
  }

  async post<T>(url: string, body: unknown, expected = 201): Promise<T> {
    const res = await fetch(`${this.baseUrl}${url}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`POST ${url}: expected ${expected}, got ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }
}

/** Runs `task(i)` for i in 0..count-1 with at most `concurrency` running; results in index order. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

export const ATTRIBUTES = [
  { name: 'temperature', dataType: 'number' },
  { name: 'seq', dataType: 'number' },
];

export interface Fleet {
  applicationId: string;
  key: string;
  secret: string;
  gateways: Array<{ id: string; peripherals: string[] }>;
}

/** One application (rate limit off), `gateways` gateways with `perGateway` peripherals each (half bound), one key. */
export async function createFleet(rest: Rest, gateways: number, perGateway: number, concurrency: number) {
  const app = await rest.post<{ id: string }>('/applications', {
    name: 'bench',
    rateLimit: { messages: 0, windowSeconds: 15 },
  });
  const devicesUrl = `/applications/${app.id}/devices`;
  const gatewayIds = await pool(gateways, concurrency, async (g) => {
    const d = await rest.post<{ id: string }>(devicesUrl, {
      name: `gateway ${g}`,
      deviceClass: 'gateway',
      attributes: ATTRIBUTES,
    });
    return d.id;
  });
  const peripheralIds = await pool(gateways * perGateway, concurrency, async (i) => {
    const g = Math.floor(i / perGateway);
    const bound = i % perGateway < perGateway / 2;
    const d = await rest.post<{ id: string }>(devicesUrl, {
      name: `peripheral ${g}.${i % perGateway}`,
      deviceClass: 'peripheral',
      ...(bound ? { gatewayId: gatewayIds[g] } : {}),
      // What the workflow scenario's flows trigger on.
      tags: [{ key: 'fleet', value: 'bench' }],
      attributes: ATTRIBUTES,
    });
    return d.id;
  });
  const key = await rest.post<{ key: string; secret: string }>(`/applications/${app.id}/keys`, {
    description: 'bench',
  });
  const fleet: Fleet = {
    applicationId: app.id,
    key: key.key,
    secret: key.secret,
    gateways: gatewayIds.map((id, g) => ({
      id,
      peripherals: peripheralIds.slice(g * perGateway, (g + 1) * perGateway),
    })),
  };
  return fleet;
}

/** `count` standalone devices in the application, for the idle-connection scenario. */
export function createStandalone(rest: Rest, applicationId: string, count: number, concurrency: number) {
  return pool(count, concurrency, async (i) => {
    const d = await rest.post<{ id: string }>(`/applications/${applicationId}/devices`, {
      name: `idle ${i}`,
      attributes: ATTRIBUTES,
    });
    return d.id;
  });
}
