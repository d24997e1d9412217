/**
 * A real HAProxy (Debian's haproxy package) in front of two nodes, run on the repository's own
 * configuration, deploy/haproxy.cfg, with the node addresses and its own free loopback ports
 * given as the environment variables the file documents. Its stats page (CSV) tells how it sees
 * each node. A missing haproxy fails the test that asks for one.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { eventually } from '../helpers/server.js';
import { type Endpoint, endpoint, freePort, type Node } from './nodes.js';

export const HAPROXY_CONFIG = path.resolve('deploy/haproxy.cfg');

/** The haproxy binary (Debian installs it in /usr/sbin, not on every PATH); throws when missing. */
export function haproxyBinary(): string {
  for (const candidate of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'haproxy is not installed: the load balancer test runs deploy/haproxy.cfg in a real HAProxy ' +
        '(apt-get install haproxy; .ci/run installs it)',
    );
  }
}

/** How HAProxy sees one server of one backend, from its stats CSV. */
export interface ServerState {
  /** UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT... */
  status: string;
  /** The last check's result: L7OK, L7STS (an answer other than 200), L4CON (refused), L4TOUT... */
  checkStatus: string;
  /** The HTTP status of the last check's answer, when there was one. */
  checkCode: string;
  /** Connections or requests it holds now. */
  current: number;
}

export interface Balancer extends Endpoint {
  child: ChildProcessWithoutNullStreams;
  urls: { mqtt: string; http: string; ws: string; stats: string; mqtts?: string; https?: string };
  /** What haproxy wrote so far (its log goes to stdout). */
  output(): string;
  /** Every server of the two backends, keyed `mqtt_nodes/node1`, `http_nodes/node2` and so on. */
  servers(): Promise<Record<string, ServerState>>;
  stop(): Promise<void>;
}

/**
 * Starts haproxy on deploy/haproxy.cfg in front of `nodes[0]` and `nodes[1]`, on free loopback
 * ports; with `tlsPem` (certificate and key in one file) also MQTT over TLS and HTTPS. Resolves
 * once its stats page answers.
 */
export async function startBalancer(nodes: [Node, Node], options: { tlsPem?: string } = {}): Promise<Balancer> {
  const binary = haproxyBinary();
  const [mqttPort, httpPort, statsPort, mqttsPort, httpsPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const env: Record<string, string> = { GATEHOUSE_LB_BIND: '127.0.0.1' };
  nodes.forEach((node, i) => {
    const mqtt = new URL(node.urls.mqtt);
    const http = new URL(node.urls.http);
    env[`GATEHOUSE_NODE${i + 1}_HOST`] = mqtt.hostname;
    env[`GATEHOUSE_NODE${i + 1}_MQTT_PORT`] = mqtt.port;
    env[`GATEHOUSE_NODE${i + 1}_HTTP_PORT`] = http.port;
  });
  env.GATEHOUSE_LB_MQTT_PORT = String(mqttPort);
  env.GATEHOUSE_LB_HTTP_PORT = String(httpPort);
  env.GATEHOUSE_LB_STATS_BIND = `127.0.0.1:${statsPort}`;
  env.GATEHOUSE_LB_MAXCONN = '1000';
  if (options.tlsPem) {
    env.GATEHOUSE_LB_TLS_PEM = options.tlsPem;
    env.GATEHOUSE_LB_MQTTS_PORT = String(mqttsPort);
    env.GATEHOUSE_LB_HTTPS_PORT = String(httpsPort);
  }
  // -db: in the foreground, as a service manager runs it; nothing but these variables differs.
  const child = spawn(binary, ['-db', '-f', HAPROXY_CONFIG], {
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const urls: Balancer['urls'] = {
    mqtt: `mqtt://127.0.0.1:${mqttPort}`,
    http: `http://127.0.0.1:${httpPort}`,
    ws: `ws://127.0.0.1:${httpPort}/mqtt`,
    stats: `http://127.0.0.1:${statsPort}`,
    ...(options.tlsPem ? { mqtts: `mqtts://127.0.0.1:${mqttsPort}`, https: `https://127.0.0.1:${httpsPort}` } : {}),
  };

  const servers = async (): Promise<Record<string, ServerState>> => {
    const res = await fetch(`${urls.stats}/;csv`);
    const [header = '', ...rows] = (await res.text()).split('\n');
    const columns = header.replace(/^# /, '').split(',');
    const at = (name: string) => columns.indexOf(name);
    const found: Record<string, ServerState> = {};
    for (const row of rows) {
      const cells = row.split(',');
      const [backend, server] = [cells[at('pxname')], cells[at('svname')]];
      if (!backend || !server || server === 'FRONTEND' || server === 'BACKEND') continue;
      found[`${backend}/${server}`] = {
        status: cells[at('status')] ?? '',
        checkStatus: cells[at('check_status')] ?? '',
        checkCode: cells[at('check_code')] ?? '',
        current: Number(cells[at('scur')] ?? 0),
      };
    }
    return found;
  };

  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited at start: ${output}`);
    return servers().then(
      () => true,
      () => false,
    );
  }, 10_000).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`haproxy did not start (${err.message}): ${output}`);
  });

  return {
    ...endpoint(urls),
    child,
    urls,
    output: () => output,
    servers,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
