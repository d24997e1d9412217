/**
 * A node's membership of the cluster (docs/scale-out.md, "Nodes sharing Redis"): its Redis
 * links, the messages between nodes, who holds which device, which nodes are alive and the
 * singleton lease. `joinCluster` connects and subscribes before the node accepts anything.
 */
import type { Connections, Platform } from '../core/platform.js';
import type { Logger } from '../logger.js';
import { ClusterConnections } from './command-routing.js';
import { Lease } from './lease.js';
import { Membership } from './membership.js';
import { Messenger } from './messenger.js';
import { sweepDeadNodes } from './node-sweep.js';
import { Ownership } from './ownership.js';
import { connectRedis, type RedisLinks } from './redis.js';

/** How long a node may hold the start-up lock. */
const STARTUP_LOCK_MS = 30_000;
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** How often a node tells the others which devices reported (workflow inactivity triggers). */
const REPORTS_MS = 1_000;
/** How often the lease holder looks for dead nodes. */
const SWEEP_MS = 2_000;

export class Cluster {
  readonly messenger: Messenger;
  readonly membership: Membership;
  readonly ownership: Ownership;
  readonly lease: Lease;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    readonly links: RedisLinks,
    private readonly logger: Logger,
  ) {
    this.messenger = new Messenger(links, logger);
    this.membership = new Membership(links);
    this.ownership = new Ownership(links, this.messenger, this.membership, logger);
    this.lease = new Lease(links, logger);
  }

  get nodeId(): string {
    return this.links.nodeId;
  }

  /** Subscribes, loads the owners, and starts the heartbeat and the lease. */
  async start(): Promise<void> {
    await this.messenger.start();
    await this.ownership.start();
    await this.membership.start();
    await this.lease.start();
    this.logger.info({ event: 'clusterJoined', nodeId: this.nodeId }, 'joined the nodes sharing Redis');
  }

  /**
   * Puts the platform's live connections behind the cluster's routing, and starts the sweep
   * after dead nodes (run by the lease holder).
   */
  attach(
    platform: Platform,
    local: Connections & {
      supersede(deviceId: string, generation: number): void;
      reclaimAll(): Promise<void>;
      publishWillsOf(nodeId: string): Promise<number>;
    },
  ): void {
    this.ownership.whenSuperseded((claim) => local.supersede(claim.deviceId, claim.generation));
    this.membership.whenRejoined(() => {
      this.logger.warn({ event: 'clusterRejoined', nodeId: this.nodeId }, 'the other nodes took this one for dead');
      local
        .reclaimAll()
        .catch((err: unknown) => this.logger.error({ event: 'reclaimFailed', err }, 'reclaiming devices failed'));
    });
    platform.attachConnections(
      new ClusterConnections(local, {
        registry: platform.registry,
        messenger: this.messenger,
        ownership: this.ownership,
        membership: this.membership,
      }),
    );
    // Definitions are cached per node: a change made on one is read again by the others.
    platform.registry.onChange((change) => {
      void this.messenger.notify('registryChanged', change).catch(() => {});
    });
    this.messenger.onNotice('registryChanged', (body, from) => {
      if (from === this.nodeId) return;
      platform.registry
        .refresh(body as { deviceId?: string; keyId?: string; applicationId?: string })
        .catch((err: unknown) =>
          this.logger.error({ event: 'registryRefreshFailed', err }, 'refreshing a definition failed'),
        );
    });
    // Accounts too: a token revoked or a session ended on one node is refused on every node.
    platform.accounts.onLocalChange((userId) => {
      void this.messenger.notify('accountsChanged', { userId: userId ?? null }).catch(() => {});
    });
    this.messenger.onNotice('accountsChanged', (body, from) => {
      if (from === this.nodeId) return;
      platform.accounts
        .invalidate((body as { userId: string | null }).userId ?? undefined)
        .catch((err: unknown) =>
          this.logger.error({ event: 'accountsRefreshFailed', err }, 'refreshing accounts failed'),
        );
    });
    this.sweepTimer = setInterval(() => {
      if (!this.lease.held || this.sweeping) return;
      this.sweeping = true;
      sweepDeadNodes(platform, {
        membership: this.membership,
        ownership: this.ownership,
        wills: (node) => local.publishWillsOf(node),
      })
        .catch((err: unknown) => this.logger.error({ event: 'nodeSweepFailed', err }, 'sweep after dead nodes failed'))
        .finally(() => {
          this.sweeping = false;
        });
    }, SWEEP_MS);
    this.sweepTimer.unref();
  }

  /**
   * Start-up one node at a time: what a first start writes (the device-token secret, the first
   * admin token) must be written once, not by several nodes starting together on a fresh
   * database. Answers the function that lets the next node go; a lock left by a node that died
   * while starting expires after STARTUP_LOCK_MS.
   */
  async lockStartup(): Promise<() => Promise<void>> {
    const key = `${this.links.prefix}lock:startup`;
    const deadline = Date.now() + 2 * STARTUP_LOCK_MS;
    while ((await this.links.command.set(key, this.nodeId, 'PX', STARTUP_LOCK_MS, 'NX')) !== 'OK') {
      if (Date.now() > deadline) throw new Error('another node has been starting for too long');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return async () => {
      await this.links.command.eval(UNLOCK, 1, key, this.nodeId).catch(() => {});
    };
  }

  /** Whether no other node was alive when this one joined: then nobody holds a connection yet. */
  get alone(): boolean {
    return this.membership.aliveNodes().every((node) => node === this.nodeId);
  }

  /** Workflows are loaded on every node: a flow changed on one is loaded again on the others. */
  shareFlows(flows: {
    onChange(listener: (flowId: string) => void): void;
    reload(flowId: string): Promise<void>;
  }): void {
    flows.onChange((flowId) => {
      void this.messenger.notify('flowChanged', { flowId }).catch(() => {});
    });
    this.messenger.onNotice('flowChanged', (body, from) => {
      if (from === this.nodeId) return;
      flows
        .reload((body as { flowId: string }).flowId)
        .catch((err: unknown) => this.logger.error({ event: 'flowReloadFailed', err }, 'reloading a workflow failed'));
    });
  }

  /**
   * Device reports for workflow inactivity triggers: each node tells the others, once a second,
   * which devices reported state and when, so the lease holder that fires the triggers knows of
   * reports committed anywhere.
   */
  shareReports(
    bus: Platform['bus'],
    engine: { noteReports(reports: Array<[deviceId: string, time: number]>): void },
    clock: () => number,
  ): void {
    let pending = new Map<string, number>();
    bus.on('state', (state) => {
      if (!state.reportedBy.startsWith('flow:')) pending.set(state.deviceId, clock());
    });
    this.reportTimer = setInterval(() => {
      if (pending.size === 0) return;
      const reports = [...pending];
      pending = new Map();
      void this.messenger.notify('reports', reports).catch(() => {});
    }, REPORTS_MS);
    this.reportTimer.unref();
    this.messenger.onNotice('reports', (body, from) => {
      if (from !== this.nodeId && Array.isArray(body)) engine.noteReports(body as Array<[string, number]>);
    });
  }

  /** Why this node cannot work with the others now, or null (for /ready). */
  problem(): string | null {
    return this.membership.problem();
  }

  /** Leaves: gives the lease up, stops the heartbeat, closes the links. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    clearInterval(this.reportTimer);
    await this.lease.stop();
    await this.membership.stop();
    await this.links.close();
  }
}

export async function joinCluster(options: { url: string; prefix: string; logger: Logger }): Promise<Cluster> {
  const logger = options.logger.child({ component: 'cluster' });
  const links = await connectRedis(options.url, options.prefix, logger);
  const cluster = new Cluster(links, logger);
  try {
    await cluster.start();
  } catch (err) {
    await links.close();
    throw err;
  }
  return cluster;
}
