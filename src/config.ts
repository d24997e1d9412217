/**
 * Configuration (spec: Operator access and start-up): one schema, filled from CLI flags, then
 * GATEHOUSE_* environment variables, then defaults; validated before anything starts.
 */
import path from 'node:path';
import proxyaddr from 'proxy-addr';
import { LOG_LEVELS, type LogLevel } from './logger.js';

export interface GatehouseConfig {
  dataDir: string;
  /**
   * A PostgreSQL connection string: the store lives there instead of SQLite in `dataDir`, and
   * several nodes may share it (docs/scale-out.md). Undefined: SQLite.
   */
  databaseUrl: string | undefined;
  /**
   * A Redis connection string: this node joins the others sharing it and the same database
   * (docs/scale-out.md, "Nodes sharing Redis"). Undefined: one process, nothing shared.
   */
  redisUrl: string | undefined;
  /** What every Redis key and channel of this deployment starts with, so several can share one Redis. */
  redisPrefix: string;
  host: string;
  mqttPort: number;
  httpPort: number;
  /** MQTT over TLS, when a certificate and key are configured (which also turn on HTTPS on `httpPort`). */
  mqttsPort: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  adminToken: string | undefined;
  logLevel: LogLevel;
  /** When set, GET /metrics needs `Authorization: Bearer <it>` (docs/operations.md). */
  metricsToken: string | undefined;
  /** Whether workflows' HTTP nodes may call loopback, private and link-local addresses (docs/workflows.md). */
  workflowHttpPrivate: 'allow' | 'deny';
  /**
   * Addresses or CIDR ranges of load balancers in front of this node: their MQTT connections
   * start with a PROXY protocol header and their HTTP requests' X-Forwarded-For is believed, so
   * limits and logs see the client's address (docs/scale-out.md, "Load balancer").
   */
  trustedProxies: string[];
}

/** A start-up problem the operator can fix; printed as one line naming the option to change. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface Option {
  key: keyof GatehouseConfig;
  flag: string;
  env: string;
}

export const OPTIONS: Option[] = [
  { key: 'dataDir', flag: '--data-dir', env: 'GATEHOUSE_DATA_DIR' },
  { key: 'databaseUrl', flag: '--database-url', env: 'GATEHOUSE_DATABASE_URL' },
  { key: 'redisUrl', flag: '--redis-url', env: 'GATEHOUSE_REDIS_URL' },
  { key: 'redisPrefix', flag: '--redis-prefix', env: 'GATEHOUSE_REDIS_PREFIX' },
  { key: 'host', flag: '--host', env: 'GATEHOUSE_HOST' },
  { key: 'mqttPort', flag: '--mqtt-port', env: 'GATEHOUSE_MQTT_PORT' },
  { key: 'httpPort', flag: '--http-port', env: 'GATEHOUSE_HTTP_PORT' },
  { key: 'mqttsPort', flag: '--mqtts-port', env: 'GATEHOUSE_MQTTS_PORT' },
  { key: 'tlsCert', flag: '--tls-cert', env: 'GATEHOUSE_TLS_CERT' },
  { key: 'tlsKey', flag: '--tls-key', env: 'GATEHOUSE_TLS_KEY' },
  { key: 'logLevel', flag: '--log-level', env: 'GATEHOUSE_LOG_LEVEL' },
  { key: 'metricsToken', flag: '--metrics-token', env: 'GATEHOUSE_METRICS_TOKEN' },
  { key: 'workflowHttpPrivate', flag: '--workflow-http-private', env: 'GATEHOUSE_WORKFLOW_HTTP_PRIVATE' },
  { key: 'trustedProxies', flag: '--trusted-proxies', env: 'GATEHOUSE_TRUSTED_PROXIES' },
];

export function optionName(key: keyof GatehouseConfig): string {
  const o = OPTIONS.find((opt) => opt.key === key);
  return o ? `${o.flag} or ${o.env}` : key;
}

function port(key: keyof GatehouseConfig, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new ConfigError(`invalid port "${raw}": expected an integer from 0 to 65535 (set ${optionName(key)})`);
  }
  return n;
}

/** The data directory alone, from the flag, then GATEHOUSE_DATA_DIR, then the default (commands besides `serve`). */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve((flag ?? env.GATEHOUSE_DATA_DIR) || 'data');
}

/**
 * The PostgreSQL connection string, from the flag, then GATEHOUSE_DATABASE_URL; undefined (SQLite)
 * when neither is set. Only postgres:// and postgresql:// URLs are accepted.
 */
export function resolveDatabaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const raw = (flag ?? env.GATEHOUSE_DATABASE_URL) || undefined;
  if (raw === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new ConfigError(`invalid database URL: expected postgres://... (set ${optionName('databaseUrl')})`);
  }
  return raw;
}

/** The Redis connection string (redis:// or rediss://), or undefined when none is set. */
export function resolveRedisUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
    throw new ConfigError(`invalid Redis URL: expected redis://... (set ${optionName('redisUrl')})`);
  }
  return raw;
}

/** A connection string without its password, for messages and logs. */
export function redactDatabaseUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'the database URL';
  }
}

export function resolveConfig(
  flags: Partial<Record<keyof GatehouseConfig, string>>,
  env: NodeJS.ProcessEnv = process.env,
): GatehouseConfig {
  const pick = (key: keyof GatehouseConfig): string | undefined => {
    const option = OPTIONS.find((o) => o.key === key);
    return flags[key] ?? (option ? env[option.env] : undefined);
  };
  const tlsCert = pick('tlsCert') || undefined;
  const tlsKey = pick('tlsKey') || undefined;
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new ConfigError('TLS needs both a certificate and a key (set --tls-cert and --tls-key)');
  }
  const redisUrl = resolveRedisUrl(pick('redisUrl'));
  const redisPrefix = pick('redisPrefix') || 'gatehouse:';
  if (!/^[A-Za-z0-9_:.-]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError(
      `invalid Redis prefix "${redisPrefix}": expected 1 to 64 letters, digits, _ : . or - (set ${optionName('redisPrefix')})`,
    );
  }
  const host = pick('host') || '127.0.0.1';
  const logLevel = pick('logLevel') || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(
      `invalid log level "${logLevel}": expected one of ${LOG_LEVELS.join(', ')} (set ${optionName('logLevel')})`,
    );
  }
  const metricsToken = pick('metricsToken') || undefined;
  if (metricsToken !== undefined && !/^\S{1,1024}$/.test(metricsToken)) {
    throw new ConfigError(
      `invalid metrics token: expected 1 to 1024 characters without spaces (set ${optionName('metricsToken')})`,
    );
  }
  const workflowHttpPrivate = pick('workflowHttpPrivate') || 'deny';
  if (workflowHttpPrivate !== 'allow' && workflowHttpPrivate !== 'deny') {
    throw new ConfigError(
      `invalid value "${workflowHttpPrivate}" for private addresses in workflows: expected allow or deny (set ${optionName('workflowHttpPrivate')})`,
    );
  }
  const trustedProxies = parseTrustedProxies(pick('trustedProxies'));
  const databaseUrl = resolveDatabaseUrl(flags.databaseUrl, env);
  if (redisUrl && !databaseUrl) {
    throw new ConfigError(
      `nodes sharing Redis must share a PostgreSQL database too (set ${optionName('databaseUrl')} with ${optionName('redisUrl')})`,
    );
  }
  return {
    dataDir: resolveDataDir(flags.dataDir, env),
    databaseUrl,
    redisUrl,
    redisPrefix,
    host,
    mqttPort: port('mqttPort', pick('mqttPort'), 1883),
    httpPort: port('httpPort', pick('httpPort'), 8080),
    mqttsPort: port('mqttsPort', pick('mqttsPort'), 8883),
    tlsCert,
    tlsKey,
    adminToken: env.GATEHOUSE_ADMIN_TOKEN || undefined,
    logLevel: logLevel as LogLevel,
    metricsToken,
    workflowHttpPrivate,
    trustedProxies,
  };
}

/** A comma-separated list of addresses and CIDR ranges (`10.0.0.5, 10.1.0.0/16`); empty: none. */
function parseTrustedProxies(raw: string | undefined): string[] {
  const list = (raw ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const entry of list) {
    try {
      proxyaddr.compile(entry);
    } catch {
      throw new ConfigError(
        `invalid trusted proxy "${entry}": expected an IP address or a CIDR range such as 10.0.0.0/8 (set ${optionName('trustedProxies')})`,
      );
    }
  }
  return list;
}
