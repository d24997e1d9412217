/**
 * Commands (spec: Commands): validated, routed to the connected client that should carry them,
 * and recorded with where they went.
 */
import { authorize, type Principal } from '../domain/authorization.js';
import { isPeripheralClass } from '../domain/device-class.js';
import { newId } from '../domain/ids.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../domain/json.js';
import type { CommandRecord, Device } from '../domain/model.js';
import { MAX_TIME_MS, readTime, type TimeReading } from '../domain/state.js';
import { errorForStatus, GatehouseError } from './errors.js';
import type { Platform } from './platform.js';

export interface CommandInput {
  name: string;
  payload?: unknown;
  time?: unknown;
}

/** Sends one command to one device the principal may command. */
export async function sendCommand(
  platform: Platform,
  principal: Principal,
  device: Device,
  input: CommandInput,
): Promise<CommandRecord> {
  const decision = authorize(principal, { type: 'sendCommand', target: device });
  if (!decision.allow) throw errorForStatus(decision.status, decision.reason);
  checkInput(input);
  return deliver(platform, principal, device, input);
}

/** Refuses what no command can carry: a payload nested too deep. Times are read per delivery. */
function checkInput(input: CommandInput): void {
  if (nestsDeeperThan(input.payload, MAX_JSON_DEPTH)) {
    throw new GatehouseError(
      'Validation',
      `body/payload nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
    );
  }
}

const TIME_PROBLEMS: Record<Exclude<TimeReading, { ok: true }>['why'], string> = {
  absent: 'is missing',
  unreadable: 'is not a time: give ms or s since the epoch, an ISO 8601 string, or {"$date": one of those}',
  outOfRange: `is outside the range of dates (at most ${MAX_TIME_MS} ms either side of 1970)`,
};

async function deliver(
  platform: Platform,
  principal: Principal,
  device: Device,
  input: CommandInput,
): Promise<CommandRecord> {
  const now = platform.clock();
  const reading = readTime(input.time, now);
  if (!reading.ok && reading.why !== 'absent') {
    throw new GatehouseError('Validation', `body/time ${TIME_PROBLEMS[reading.why]}`);
  }
  const time = reading.ok ? reading.time : now;
  const payload = input.payload ?? null;
  const message = Buffer.from(
    JSON.stringify({ name: input.name, payload, time: { $date: new Date(time).toISOString() } }),
  );
  const preferred = isPeripheralClass(device.deviceClass)
    ? ((await platform.lastReporter(device.id))?.by ?? null)
    : null;
  const routedTo = platform.live.deliverCommand(device, message, preferred);
  const record: CommandRecord = {
    id: newId(),
    applicationId: device.applicationId,
    deviceId: device.id,
    name: input.name,
    payload,
    time,
    routedTo,
    sentBy: principal.kind === 'device' ? principal.device.id : 'api',
  };
  await platform.store.insertCommand(record);
  platform.bus.emit('command', record);
  return record;
}

/** Sends a command to every listed device the principal may command; others are skipped. */
export async function sendCommandToMany(
  platform: Platform,
  principal: Principal,
  devices: Device[],
  input: CommandInput,
): Promise<CommandRecord[]> {
  checkInput(input);
  const out: CommandRecord[] = [];
  for (const device of devices) {
    if (authorize(principal, { type: 'sendCommand', target: device }).allow) {
      out.push(await deliver(platform, principal, device, input));
    }
  }
  return out;
}
