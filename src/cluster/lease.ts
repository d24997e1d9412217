/**
 * The singleton lease: work that must run on exactly one node at a time (inactivity checks,
 * retention, workflow timers and inactivity triggers) runs where this lease is held. A node
 * takes it with SET NX PX and renews it every third of its lifetime; when the holder dies, the
 * key expires and another node takes it on its next try.
 *
 * The holder counts itself as holding only until shortly before the key would expire by its own
 * clock (renewals that fail stop the work before another node can start it), so two nodes do
 * not both run the work unless a clock jumps or a pause outlasts the lease.
 */
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis.js';

export const LEASE_MS = 6_000;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const GIVE_UP = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class Lease {
  private readonly key: string;
  /** Until when (this node's clock) the lease is ours; 0 when not held. */
  private heldUntil = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly links: RedisLinks,
    private readonly logger: Logger,
    private readonly ms = LEASE_MS,
    private readonly clock: () => number = Date.now,
  ) {
    this.key = `${links.prefix}lease:singleton`;
  }

  get held(): boolean {
    return this.clock() < this.heldUntil;
  }

  async start(): Promise<void> {
    await this.tick().catch(() => {});
    this.timer = setInterval(() => void this.tick().catch(() => {}), Math.floor(this.ms / 3));
    this.timer.unref();
  }

  /** Gives the lease up, so another node takes it at once instead of after it expires. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    const wasHeld = this.held;
    this.heldUntil = 0;
    if (wasHeld) await this.links.command.eval(GIVE_UP, 1, this.key, this.links.nodeId).catch(() => {});
  }

  private async tick(): Promise<void> {
    const startedAt = this.clock();
    // A margin of a third: work stops before the key can expire and another node start it.
    const until = startedAt + Math.floor((this.ms * 2) / 3);
    try {
      const ours =
        this.heldUntil > 0
          ? Number(await this.links.command.eval(RENEW, 1, this.key, this.links.nodeId, String(this.ms))) === 1
          : (await this.links.command.set(this.key, this.links.nodeId, 'PX', this.ms, 'NX')) === 'OK';
      this.heldUntil = ours ? until : 0;
    } finally {
      // On a failure, what remains of a lease already held is kept: Redis may be back in time.
      this.announce();
    }
  }

  private announced = false;

  private announce(): void {
    const held = this.held;
    if (held === this.announced) return;
    this.announced = held;
    this.logger.info(
      { event: held ? 'leaseAcquired' : 'leaseLost', nodeId: this.links.nodeId },
      held ? 'this node runs the singleton work' : 'this node no longer runs the singleton work',
    );
  }
}
