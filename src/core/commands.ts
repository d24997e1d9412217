/**
 * Commands (docs/protocol.md, "Commands"): validated, rate-limited per sender, routed to the
 * connected clients that should carry them, recorded with that route in the group commit, and
 * only then delivered, so a device never acts on a command the history does not hold.
 */
import { encodeCommand } from '@gatehouse/wire';
import { authorize, type Principal, principalId } from '../domain/authorization.js';
import { isPeripheralClass } from '../domain/device-class.js';
import { newId } from '../domain/ids.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../domain/json.js';
import type { CommandRecord, Device } from '../domain/model.js';
import { MAX_TIME_MS, readTime, type TimeReading } from '../domain/state.js';
import { errorForStatus, GatehouseError } from './errors.js';
import type { CommandRoute, Platform } from './platform.js';

export interface CommandInput {
  name: string;
  payload?: unknown;
  time?: unknown;
}

interface Prepared {
  device: Device;
  record: CommandRecord;
  message: Buffer;
  route: CommandRoute;
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
  const prepared = await prepare(platform, principal, [device], input);
  await record(platform, prepared);
  return (prepared[0] as Prepared).record;
}

/**
 * Sends a command to every listed device the principal may command; others are skipped. One
 * request counts once against the sender's command limit, and all its commands share one commit.
 */
export async function sendCommandToMany(
  platform: Platform,
  principal: Principal,
  devices: Device[],
  input: CommandInput,
): Promise<CommandRecord[]> {
  const allowed = devices.filter((d) => authorize(principal, { type: 'sendCommand', target: d }).allow);
  if (allowed.length === 0) return [];
  const prepared = await prepare(platform, principal, allowed, input);
  await record(platform, prepared);
  return prepared.map((p) => p.record);
}

const TIME_PROBLEMS: Record<Exclude<TimeReading, { ok: true }>['why'], string> = {
  absent: 'is missing',
  unreadable: 'is not a time: give ms or s since the epoch, an ISO 8601 string, or {"$date": one of those}',
  outOfRange: `is outside the range of dates (at most ${MAX_TIME_MS} ms either side of 1970)`,
};

/** Checks what no command can carry, counts the request against its sender, and routes it. */
async function prepare(
  platform: Platform,
  principal: Principal,
  devices: Device[],
  input: CommandInput,
): Promise<Prepared[]> {
  if (nestsDeeperThan(input.payload, MAX_JSON_DEPTH)) {
    throw new GatehouseError(
      'Validation',
      `body/payload nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
    );
  }
  const now = platform.clock();
  const reading = readTime(input.time, now);
  if (!reading.ok && reading.why !== 'absent') {
    throw new GatehouseError('Validation', `body/time ${TIME_PROBLEMS[reading.why]}`);
  }
  const time = reading.ok ? reading.time : now;
  platform.countCommand(principal, now);
  const payload = input.payload ?? null;
  const message = Buffer.from(encodeCommand({ name: input.name, payload, time }));
  const sentBy = principalId(principal);
  const out: Prepared[] = [];
  for (const device of devices) {
    const preferred = isPeripheralClass(device.deviceClass)
      ? ((await platform.lastReporter(device.id))?.by ?? null)
      : null;
    const routedTo = await platform.live.routeCommand(device, preferred);
    const record: CommandRecord = {
      id: newId(),
      applicationId: device.applicationId,
      deviceId: device.id,
      name: input.name,
      payload,
      time,
      routedTo,
      sentBy,
    };
    out.push({ device, record, message, route: routeTaken(routedTo, preferred) });
  }
  return out;
}

/** Which way a route went (docs/protocol.md, "Commands"; counted for docs/operations.md). */
function routeTaken(routedTo: readonly string[], preferred: string | null): CommandRoute {
  if (routedTo.length === 0) return 'none';
  return preferred !== null && routedTo.length === 1 && routedTo[0] === preferred ? 'lastReporter' : 'candidates';
}

/** Records the commands durably, then sends each along its route. */
async function record(platform: Platform, prepared: Prepared[]): Promise<void> {
  await platform.writes.enqueue({ commands: prepared.map((p) => p.record) });
  for (const { device, record, message, route } of prepared) {
    platform.commandRoutes[route].inc();
    platform.live.deliverCommand(device, message, record.routedTo);
  }
}
