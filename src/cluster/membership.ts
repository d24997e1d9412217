/**
 * Which nodes are alive: each node writes its heartbeat (its clock, in a sorted set) every
 * second; a node silent for NODE_TIMEOUT_MS is taken for dead. The same heartbeat tells this
 * node whether it can reach Redis, for /ready.
 */
import type { RedisLinks } from './redis.js';

export const HEARTBEAT_MS = 1_000;
/** Silence after which a node counts as dead: its connections and lease are taken over. */
export const NODE_TIMEOUT_MS = 5_000;

export class Membership {
  private readonly key: string;
  private timer: NodeJS.Timeout | undefined;
  private alive = new Set<string>();
  private lastSuccess = 0;
  private stopped = false;
  private joined = false;
  private onRejoin: () => void = () => {};

  constructor(
    private readonly links: RedisLinks,
    private readonly clock: () => number = Date.now,
  ) {
    this.key = `${links.prefix}nodes`;
  }

  get nodeId(): string {
    return this.links.nodeId;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(() => {}), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Leaves the set, so other nodes stop asking this one at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.links.command.zrem(this.key, this.nodeId).catch(() => {});
  }

  /**
   * Called when this node finds itself missing from the set after having joined: the others took
   * it for dead (Redis was out of reach longer than NODE_TIMEOUT_MS, or restarted empty) and may
   * have marked its devices offline.
   */
  whenRejoined(handler: () => void): void {
    this.onRejoin = handler;
  }

  /** Nodes whose heartbeat is recent, this one included, as of the last heartbeat. */
  aliveNodes(): string[] {
    return [...this.alive];
  }

  isAlive(nodeId: string): boolean {
    return nodeId === this.nodeId || this.alive.has(nodeId);
  }

  /** Why Redis is not usable now, or null: the last heartbeat must have succeeded recently. */
  problem(): string | null {
    if (this.clock() - this.lastSuccess <= 3 * HEARTBEAT_MS) return null;
    return 'Redis cannot be reached: commands to devices on other nodes, shared streams and singleton work are unavailable';
  }

  /** Nodes silent for longer than NODE_TIMEOUT_MS, still listed (for the sweep that takes over after them). */
  async deadNodes(): Promise<string[]> {
    return this.links.command.zrangebyscore(this.key, '-inf', this.clock() - NODE_TIMEOUT_MS);
  }

  async forget(nodeId: string): Promise<void> {
    await this.links.command.zrem(this.key, nodeId);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const now = this.clock();
    const [added, alive] = await Promise.all([
      this.links.command.zadd(this.key, now, this.nodeId),
      this.links.command.zrangebyscore(this.key, now - NODE_TIMEOUT_MS, '+inf'),
    ]);
    this.alive = new Set(alive);
    this.alive.add(this.nodeId);
    this.lastSuccess = now;
    if (Number(added) === 1 && this.joined) this.onRejoin();
    this.joined = true;
  }
}
