/**
 * The REST API as the console uses it: same origin, the session cookie, and the session's CSRF
 * token on every request that changes something (docs/accounts.md). Errors come back as the
 * API's `{type, message}` so a page can show the server's own words.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
  /** The body field a validation message is about (`body/name must …` → `name`), if any. */
  get field(): string | undefined {
    return /^body\/([\w-]+)/.exec(this.message)?.[1];
  }
}

let csrfToken: string | undefined;
let onUnauthorized: () => void = () => {};

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}
/** What to do when the session has ended (a 401 on any request): back to the login page. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  // No content-type without a body: the API refuses an empty JSON body.
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const err = data as { type?: string; message?: string } | undefined;
    if (res.status === 401 && path !== '/auth/user') onUnauthorized();
    throw new ApiError(res.status, err?.type ?? 'Error', err?.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);

/** `?a=1&b=2` from the defined values (arrays repeat the key). */
export function query(params: Record<string, string | number | undefined | null | string[]>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const item of v) q.append(k, item);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// The shapes the console reads (src/api/schemas.ts has the full ones).
export interface Page<T> {
  items: T[];
  count: number;
  totalCount: number;
  page: number;
  perPage: number;
}
export interface Me {
  kind: string;
  id: string;
  user?: { id: string; email: string; name: string; admin: boolean };
  applications: { applicationId: string; role: Role }[];
  csrfToken?: string;
}
export type Role = 'viewer' | 'editor' | 'owner';
export interface Application {
  id: string;
  name: string;
  description: string;
}
export interface Tag {
  key: string;
  value: string;
}
export interface Attribute {
  name: string;
  dataType: string;
  description?: string;
}
export const DEVICE_CLASSES = [
  'standalone',
  'gateway',
  'edgeCompute',
  'peripheral',
  'floating',
  'system',
  'embedded',
] as const;
export const DATA_TYPES = ['number', 'string', 'boolean', 'gps', 'blob'] as const;
/** Classes that carry peripherals' traffic. */
export const GATEWAY_CLASSES = ['gateway', 'edgeCompute'];
export interface Device {
  id: string;
  applicationId: string;
  name: string;
  description: string;
  deviceClass: string;
  gatewayId: string | null;
  tags: Tag[];
  attributes: Attribute[];
  connectionInfo: { connected: 1 | 0 | null; time: string | null };
  lastReportedBy: { deviceId: string; time: string } | null;
  inactiveSince: string | null;
  creationDate: string;
  lastUpdated: string;
  peripherals?: { bound: string[]; recent: { deviceId: string; lastSeen: string; reports: number }[] };
  gateways?: { gatewayId: string; firstSeen: string; lastSeen: string; reports: number }[];
}
export interface StateEntry {
  time: string;
  data: Record<string, unknown>;
  reportedBy: string;
}
export type Composite = Record<string, { value: unknown; time: string }>;
export interface Key {
  id: string;
  key: string;
  description: string;
  status: string;
  filterType: string;
  deviceIds: string[] | null;
  creationDate: string;
  secret?: string;
}
