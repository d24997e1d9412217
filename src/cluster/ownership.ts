/**
 * Which node holds which device's MQTT connection. Every accepted connection claims its device:
 * one script increments the device's generation, records this node as the owner and announces
 * the claim to every node, all at once, so every node sees claims in generation order. The
 * newest generation wins: a node holding an older connection of the device closes it
 * ("Duplicate client id"), and a disconnect releases the device (and may mark it offline) only
 * while its generation is still the newest, so a stale disconnect from an old node never marks
 * a reconnected device offline.
 *
 * Each node keeps a replica of the owners, fed by the claim and release notices, so routing a
 * command and asking whether a gateway is connected anywhere need no round trip.
 */
import type { Logger } from '../logger.js';
import type { Membership } from './membership.js';
import type { Messenger } from './messenger.js';
import type { RedisLinks } from './redis.js';

/** What the broker asks of the cluster about its connections. */
export interface ConnectionOwnership {
  /** Claims the device for a new connection on this node; answers the connection's generation. */
  claim(deviceId: string): Promise<number>;
  /** Whether a newer connection of the device exists already (on any node) than `generation`. */
  superseded(deviceId: string, generation: number): boolean;
  /**
   * Releases the device when `generation` is still its newest connection; answers whether it
   * was (only then may the device be marked offline).
   */
  release(deviceId: string, generation: number): Promise<boolean>;
  /** The generation of the device's connection another node holds, as far as this node knows. */
  heldElsewhere(deviceId: string): number | undefined;
  /**
   * Resolves once the device's connection of `generation` (on another node) has been released or
   * replaced (every release announces it), or after `ms`, whichever comes first.
   */
  closedElsewhere(deviceId: string, generation: number, ms: number): Promise<void>;
}

export interface Claim {
  deviceId: string;
  node: string;
  generation: number;
}

// Generations never go backwards, even when Redis restarts empty: each is at least Redis' clock
// in ms (13 digits, exact through Lua's number formatting), and above the device's last one.
const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local g = math.max(tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') + 1, now)
redis.call('HSET', KEYS[1], ARGV[1], tostring(g))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. tostring(g))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[3], cjson.encode({t = 'notice', kind = 'claim', from = ARGV[2],
  body = {deviceId = ARGV[1], node = ARGV[2], generation = g}}))
return tostring(g)`;

// Releases only the newest connection, and only from the node that holds it. A device Redis
// knows nothing of (Redis restarted empty) is released: this node's own view decides then.
// Either way every node hears that the connection of that generation is gone ('closed'), so a
// resumed persistent session elsewhere may read its queue (docs/scale-out.md, the reconnect race).
const RELEASE = `
redis.call('PUBLISH', ARGV[4], cjson.encode({t = 'notice', kind = 'closed', from = ARGV[3],
  body = {deviceId = ARGV[1], node = ARGV[3], generation = tonumber(ARGV[2])}}))
local g = redis.call('HGET', KEYS[1], ARGV[1])
if g and tonumber(g) ~= tonumber(ARGV[2]) then return 0 end
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[3] .. ' ' .. ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[4], cjson.encode({t = 'notice', kind = 'release', from = ARGV[3],
  body = {deviceId = ARGV[1], node = ARGV[3], generation = tonumber(ARGV[2])}}))
return 1`;

export class Ownership implements ConnectionOwnership {
  private readonly replica = new Map<string, { node: string; generation: number }>();
  /** The newest generation seen per device, kept after a release so a late claim reply can be judged. */
  private readonly newest = new Map<string, number>();
  /** The newest generation per device whose connection is gone (released or replaced). */
  private readonly closed = new Map<string, number>();
  private readonly closeWaiters = new Map<string, Set<{ generation: number; done: () => void }>>();
  private readonly gensKey: string;
  private readonly ownersKey: string;
  private onSuperseded: (claim: Claim) => void = () => {};

  constructor(
    private readonly links: RedisLinks,
    private readonly messenger: Messenger,
    private readonly membership: Membership,
    private readonly logger: Logger,
  ) {
    this.gensKey = `${links.prefix}generations`;
    this.ownersKey = `${links.prefix}owners`;
    messenger.onNotice('claim', (body) => this.claimed(body as Claim));
    messenger.onNotice('closed', (body) => this.connectionClosed(body as Claim));
    messenger.onNotice('release', (body) => {
      const { deviceId, generation } = body as Claim;
      const known = this.replica.get(deviceId);
      if (known && known.generation <= generation) this.replica.delete(deviceId);
    });
  }

  /** Loads the owners as they are now (after subscribing, so no claim falls between). */
  async start(): Promise<void> {
    const owners = await this.links.command.hgetall(this.ownersKey);
    for (const [deviceId, value] of Object.entries(owners)) {
      const [node, generation] = value.split(' ');
      if (node && generation) this.remember({ deviceId, node, generation: Number(generation) });
    }
  }

  /** Called with every claim of a device by another connection than the one this node holds. */
  whenSuperseded(handler: (claim: Claim) => void): void {
    this.onSuperseded = handler;
  }

  async claim(deviceId: string): Promise<number> {
    const generation = await this.links.command.eval(
      CLAIM,
      3,
      this.gensKey,
      this.ownersKey,
      this.devicesKey(this.links.nodeId),
      deviceId,
      this.links.nodeId,
      this.messenger.allChannel,
    );
    return Number(generation);
  }

  superseded(deviceId: string, generation: number): boolean {
    return (this.newest.get(deviceId) ?? 0) > generation;
  }

  async release(deviceId: string, generation: number): Promise<boolean> {
    return this.releaseFor(this.links.nodeId, deviceId, generation);
  }

  /** Releases a device held by `node` (this one, or a dead one being swept) at `generation`. */
  async releaseFor(node: string, deviceId: string, generation: number): Promise<boolean> {
    const released = await this.links.command.eval(
      RELEASE,
      3,
      this.gensKey,
      this.ownersKey,
      this.devicesKey(node),
      deviceId,
      String(generation),
      node,
      this.messenger.allChannel,
    );
    return Number(released) === 1;
  }

  heldElsewhere(deviceId: string): number | undefined {
    const owner = this.replica.get(deviceId);
    return owner && owner.node !== this.links.nodeId ? owner.generation : undefined;
  }

  closedElsewhere(deviceId: string, generation: number, ms: number): Promise<void> {
    if ((this.closed.get(deviceId) ?? 0) >= generation) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.closeWaiters.get(deviceId);
      if (!waiters) {
        waiters = new Set();
        this.closeWaiters.set(deviceId, waiters);
      }
      const waiter = {
        generation,
        done: () => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (waiters.size === 0 && this.closeWaiters.get(deviceId) === waiters) this.closeWaiters.delete(deviceId);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, ms);
      waiters.add(waiter);
    });
  }

  private connectionClosed(closed: Claim): void {
    if ((this.closed.get(closed.deviceId) ?? 0) < closed.generation)
      this.closed.set(closed.deviceId, closed.generation);
    for (const waiter of [...(this.closeWaiters.get(closed.deviceId) ?? [])]) {
      if (waiter.generation <= closed.generation) waiter.done();
    }
  }

  /** The other, live node holding the device's connection, if any. */
  remoteOwner(deviceId: string): string | undefined {
    const owner = this.replica.get(deviceId);
    if (!owner || owner.node === this.links.nodeId || !this.membership.isAlive(owner.node)) return undefined;
    return owner.node;
  }

  /** The devices a (dead) node held, with the generation of each, for the sweep after it. */
  async heldBy(node: string): Promise<Array<{ deviceId: string; generation: number }>> {
    const ids = await this.links.command.smembers(this.devicesKey(node));
    if (ids.length === 0) return [];
    const owners = await this.links.command.hmget(this.ownersKey, ...ids);
    const held: Array<{ deviceId: string; generation: number }> = [];
    ids.forEach((deviceId, i) => {
      const [owner, generation] = (owners[i] ?? '').split(' ');
      if (owner === node && generation) held.push({ deviceId, generation: Number(generation) });
    });
    return held;
  }

  async forgetNode(node: string): Promise<void> {
    await this.links.command.del(this.devicesKey(node));
  }

  private devicesKey(node: string): string {
    return `${this.links.prefix}node-devices:${node}`;
  }

  private claimed(claim: Claim): void {
    this.remember(claim);
    if (claim.node === this.links.nodeId) return;
    this.logger.debug({ event: 'deviceClaimed', ...claim }, 'device claimed by another node');
    this.onSuperseded(claim);
  }

  private remember(claim: Claim): void {
    if ((this.newest.get(claim.deviceId) ?? 0) < claim.generation) this.newest.set(claim.deviceId, claim.generation);
    const known = this.replica.get(claim.deviceId);
    if (!known || known.generation < claim.generation) {
      this.replica.set(claim.deviceId, { node: claim.node, generation: claim.generation });
    }
  }
}
