/**
 * The platform's view of live connections when nodes share Redis: this node's broker, plus the
 * nodes holding the others. The command path stays the one in core/commands.ts (route, record,
 * deliver); only the route and the delivery reach further:
 *
 * - route: this node's clients first; a client held by another node is asked of that node
 *   (request/reply over pub/sub, answered from its broker's own routing); when the owner is
 *   unknown (a peripheral's candidate gateways, a device no node is known to hold) every live
 *   node is asked at once. A node that does not answer in time counts as having no route.
 * - delivery: once recorded, each node on the route is told to send the command to its clients.
 */

import type { Connections } from '../core/platform.js';
import type { Registry } from '../core/registry.js';
import { isPeripheralClass } from '../domain/device-class.js';
import type { Device } from '../domain/model.js';
import type { Membership } from './membership.js';
import type { Messenger } from './messenger.js';
import type { Ownership } from './ownership.js';

/** How long a node asked for its route may take to answer. */
export const ROUTE_TIMEOUT_MS = 1_000;

interface RouteQuestion {
  targetId: string;
  preferred: string | null;
}

interface Delivery {
  targetId: string;
  /** The encoded command, base64. */
  message: string;
  route: string[];
}

export class ClusterConnections implements Connections {
  constructor(
    private readonly local: Connections,
    private readonly parts: {
      registry: Registry;
      messenger: Messenger;
      ownership: Ownership;
      membership: Membership;
      timeoutMs?: number;
    },
  ) {
    const { messenger, registry } = parts;
    messenger.onRequest('route', async (body) => {
      const { targetId, preferred } = body as RouteQuestion;
      const target = await registry.device(targetId);
      return target ? await this.local.routeCommand(target, preferred) : [];
    });
    messenger.onNotice('deliver', (body) => {
      const { targetId, message, route } = body as Delivery;
      void registry.device(targetId).then((target) => {
        if (target) this.local.deliverCommand(target, Buffer.from(message, 'base64'), route);
      });
    });
  }

  isConnected(deviceId: string): boolean {
    return this.local.isConnected(deviceId) || this.parts.ownership.remoteOwner(deviceId) !== undefined;
  }

  async routeCommand(target: Device, preferred: string | null): Promise<string[]> {
    const { ownership, membership } = this.parts;
    const local = await this.local.routeCommand(target, preferred);
    if (preferred !== null && local.includes(preferred)) return [preferred];
    const question: RouteQuestion = { targetId: target.id, preferred };
    // The peripheral's last reporter is held elsewhere: its node decides first.
    const preferredNode = preferred !== null ? ownership.remoteOwner(preferred) : undefined;
    if (preferredNode) {
      const route = await this.ask(preferredNode, question);
      if (route.includes(preferred as string)) return [preferred as string];
    }
    if (!isPeripheralClass(target.deviceClass)) {
      // Only the device itself receives its commands: its node, if known, answers alone.
      if (local.length > 0) return local;
      const owner = ownership.remoteOwner(target.id);
      if (owner) return this.ask(owner, question);
    }
    const replies = await this.parts.messenger.requestAll(membership.aliveNodes(), 'route', question, this.timeoutMs);
    const all = [...local];
    for (const reply of replies.values()) {
      for (const id of Array.isArray(reply) ? reply : []) if (typeof id === 'string' && !all.includes(id)) all.push(id);
    }
    return preferred !== null && all.includes(preferred) ? [preferred] : all;
  }

  deliverCommand(target: Device, message: Buffer, route: readonly string[]): void {
    this.local.deliverCommand(target, message, route);
    const byNode = new Map<string, string[]>();
    for (const clientId of route) {
      if (this.local.isConnected(clientId)) continue;
      const node = this.parts.ownership.remoteOwner(clientId);
      if (!node) continue; // gone since routing, like a client that disconnected here
      byNode.set(node, [...(byNode.get(node) ?? []), clientId]);
    }
    for (const [node, clients] of byNode) {
      const delivery: Delivery = { targetId: target.id, message: message.toString('base64'), route: clients };
      void this.parts.messenger.notifyNode(node, 'deliver', delivery).catch(() => {});
    }
  }

  revalidate(change: { deviceId?: string; keyId?: string; applicationId?: string }): void {
    this.local.revalidate(change);
  }

  private get timeoutMs(): number {
    return this.parts.timeoutMs ?? ROUTE_TIMEOUT_MS;
  }

  private async ask(node: string, question: RouteQuestion): Promise<string[]> {
    const reply = await this.parts.messenger.request(node, 'route', question, this.timeoutMs);
    return Array.isArray(reply) ? reply.filter((id): id is string => typeof id === 'string') : [];
  }
}
