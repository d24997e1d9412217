#!/usr/bin/env node
/**
 * gatehouse-gateway: a relay for a gateway that needs no code. It reads newline-delimited JSON
 * states from stdin (or a file, FIFO or serial-like device), reports each for the right device
 * through the SDK's store-and-forward queue, prints the commands it receives as JSON lines on
 * stdout, and reports rejections and connection events as JSON lines on stderr.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConnectionRefusedError, type SendResult } from '../device.js';
import { Gateway } from '../gateway.js';
import { parseInputLine } from '../relay.js';

const USAGE = `Usage: gatehouse-gateway [options]

Reads one JSON state per line, {"deviceId": "...", "data": {...}, "time": ...}, from stdin (or
--input) and reports it for that device: the gateway itself (also when deviceId is left out) or
a peripheral (added on first use). Received commands are printed on stdout as JSON lines
{"deviceId","name","payload","time"}; rejections and connection events go to stderr as JSON lines.

Options (each also as an environment variable):
  --url URL            GATEHOUSE_URL          mqtt://, mqtts://, ws:// or wss:// (default mqtt://localhost:1883)
  --gateway-id ID      GATEHOUSE_GATEWAY_ID   the gateway's device id (required)
  --key KEY            GATEHOUSE_KEY          access key (required)
  --secret SECRET      GATEHOUSE_SECRET       access secret (required; prefer the variable: flags show in ps)
  --queue-dir DIR      GATEHOUSE_QUEUE_DIR    disk queue directory (default ./gatehouse-queue/GATEWAY_ID)
  --memory-queue       GATEHOUSE_MEMORY_QUEUE=1  keep the queue in memory instead (lost on exit)
  --max-queue N        GATEHOUSE_MAX_QUEUE    queue bound; the oldest states are dropped beyond it (default 10000)
  --rate N             GATEHOUSE_RATE         at most N states per second (default 10; 0: no limit)
  --peripheral ID      GATEHOUSE_PERIPHERALS  subscribe to this peripheral's commands from the start
                                              (repeatable; the variable takes a comma-separated list)
  --input PATH         GATEHOUSE_INPUT        read lines from this file, FIFO or serial device instead of stdin
  --ca FILE            GATEHOUSE_CA           CA certificate (PEM) to trust for mqtts:// and wss://
  --exit-on-eof                               at the end of input, wait until the queue is empty and exit
  --verbose                                   also print {"event":"state","deviceId","result"} per state
  --help
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      'gateway-id': { type: 'string' },
      key: { type: 'string' },
      secret: { type: 'string' },
      'queue-dir': { type: 'string' },
      'memory-queue': { type: 'boolean' },
      'max-queue': { type: 'string' },
      rate: { type: 'string' },
      peripheral: { type: 'string', multiple: true },
      input: { type: 'string' },
      ca: { type: 'string' },
      'exit-on-eof': { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = process.env;
  const gatewayId = values['gateway-id'] ?? env.GATEHOUSE_GATEWAY_ID;
  const key = values.key ?? env.GATEHOUSE_KEY;
  const secret = values.secret ?? env.GATEHOUSE_SECRET;
  const missing = [
    gatewayId ? null : '--gateway-id (GATEHOUSE_GATEWAY_ID)',
    key ? null : '--key (GATEHOUSE_KEY)',
    secret ? null : '--secret (GATEHOUSE_SECRET)',
  ].filter(Boolean);
  if (!gatewayId || !key || !secret) {
    process.stderr.write(`gatehouse-gateway: missing ${missing.join(', ')}\n\n${USAGE}`);
    return 64;
  }
  const number = (flag: string, raw: string | undefined): number | undefined => {
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`invalid ${flag} "${raw}": expected a number >= 0`);
    return n;
  };
  const maxQueue = number('--max-queue', values['max-queue'] ?? env.GATEHOUSE_MAX_QUEUE);
  const rate = number('--rate', values.rate ?? env.GATEHOUSE_RATE);
  const caFile = values.ca ?? env.GATEHOUSE_CA;
  const memory = values['memory-queue'] || env.GATEHOUSE_MEMORY_QUEUE === '1';
  const queueDir = values['queue-dir'] ?? env.GATEHOUSE_QUEUE_DIR;
  const input = values.input ?? env.GATEHOUSE_INPUT;
  const verbose = values.verbose ?? false;

  const gateway = new Gateway({
    id: gatewayId,
    key,
    secret,
    url: values.url ?? env.GATEHOUSE_URL ?? 'mqtt://localhost:1883',
    ...(caFile ? { ca: readFileSync(caFile) } : {}),
    ...(rate === undefined ? {} : { maxRate: rate }),
    queue: {
      type: memory ? 'memory' : 'disk',
      ...(queueDir ? { dir: queueDir } : {}),
      ...(maxQueue === undefined ? {} : { maxMessages: maxQueue }),
    },
  });

  const out = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
  const err = (line: unknown) => process.stderr.write(`${JSON.stringify(line)}\n`);
  const printCommand = (c: { deviceId: string; name: string; payload: unknown; time: Date }) =>
    out({ deviceId: c.deviceId, name: c.name, payload: c.payload, time: c.time.toISOString() });

  gateway.on('command', printCommand);
  gateway.on('connect', () => err({ event: 'connected', url: gateway.url, queued: gateway.queued }));
  gateway.on('reconnected', () => err({ event: 'reconnected', queued: gateway.queued }));
  gateway.on('offline', (e) => err({ event: 'offline', ...(e ? { reason: e.message } : {}) }));
  gateway.on('reconnecting', ({ attempt, delay }) => err({ event: 'reconnecting', attempt, delay }));
  gateway.on('rejected', (r) => err({ event: 'rejected', ...r, time: r.time.toISOString() }));
  gateway.on('dropped', (d) =>
    err({ event: 'dropped', deviceId: d.deviceId, time: d.time.toISOString(), total: d.total }),
  );
  gateway.on('error', (e) => err({ event: 'error', message: e.message }));

  const peripheralIds = [...(values.peripheral ?? []), ...(env.GATEHOUSE_PERIPHERALS ?? '').split(',')]
    .map((id) => id.trim())
    .filter(Boolean);
  const peripheral = (id: string) => {
    const known = gateway.peripheral(id);
    if (known) return known;
    const added = gateway.addPeripheral(id);
    added.on('command', printCommand);
    return added;
  };
  for (const id of peripheralIds) peripheral(id);

  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = (code: number) => {
    void gateway.disconnect().finally(() => finish(code));
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  gateway.connect().catch((e: Error) => {
    err({ event: 'fatal', message: e.message, ...(e instanceof ConnectionRefusedError ? { code: e.code } : {}) });
    finish(e instanceof ConnectionRefusedError ? 2 : 1);
  });

  const stream = input && input !== '-' ? createReadStream(input) : process.stdin;
  stream.on('error', (e: Error) => {
    err({ event: 'error', message: `cannot read ${input}: ${e.message}` });
    stop(1);
  });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNumber = 0;
  lines.on('line', (text) => {
    const line = ++lineNumber;
    if (text.trim() === '') return;
    const parsed = parseInputLine(text);
    if ('error' in parsed) {
      err({ event: 'invalid', line, message: parsed.error });
      return;
    }
    const deviceId = parsed.deviceId ?? gatewayId;
    let sent: Promise<SendResult>;
    try {
      sent =
        deviceId === gatewayId
          ? gateway.sendState(parsed.data, parsed.time)
          : peripheral(deviceId).sendState(parsed.data, parsed.time);
    } catch (e) {
      err({ event: 'invalid', line, message: (e as Error).message });
      return;
    }
    sent.then(
      (result) => {
        if (verbose) err({ event: 'state', line, deviceId, result });
      },
      (e: Error) => err({ event: 'invalid', line, message: e.message }),
    );
  });
  lines.on('close', () => {
    if (!values['exit-on-eof']) return;
    gateway.flush().then(
      () => stop(0),
      () => {},
    );
  });

  const code = await done;
  lines.close();
  return code;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`gatehouse-gateway: ${e.message}\n`);
    process.exit(1);
  },
);
