/**
 * After a dead node: the devices it held stay marked connected in the database until someone
 * says otherwise. The node holding the singleton lease looks for nodes whose heartbeat stopped,
 * releases each device such a node still owned (only when no newer connection claimed it since)
 * and marks it offline with reason "Node lost", as that node would have on a disconnect. Then it
 * publishes the Last Wills that node's clients left (the broker's `publishWillsOf`), and only
 * then forgets the node: a sweep that fails part-way is run again on the next round.
 */
import type { Platform } from '../core/platform.js';
import type { Membership } from './membership.js';
import type { Ownership } from './ownership.js';

export const NODE_LOST_REASON = 'Node lost';

export async function sweepDeadNodes(
  platform: Platform,
  parts: {
    membership: Membership;
    ownership: Ownership;
    /** Publishes the wills of a dead node's clients; answers how many it took. */
    wills?: (nodeId: string) => Promise<number>;
  },
): Promise<string[]> {
  const { membership, ownership, wills } = parts;
  const swept: string[] = [];
  for (const node of await membership.deadNodes()) {
    if (node === membership.nodeId) continue;
    for (const { deviceId, generation } of await ownership.heldBy(node)) {
      if (!(await ownership.releaseFor(node, deviceId, generation))) continue;
      const device = await platform.registry.device(deviceId);
      if (!device) continue;
      const time = platform.clock();
      await platform.writes.enqueue({
        connections: [{ deviceId, connected: false, time }],
        logs: platform.admitLogs([
          platform.logEntry(device, 'disconnect', { connected: 0, disconnectReason: NODE_LOST_REASON }),
        ]),
      });
      platform.connectionCommitted(device, { connected: false, time, reason: NODE_LOST_REASON });
    }
    const willsPublished = wills ? await wills(node) : 0;
    await ownership.forgetNode(node);
    await membership.forget(node);
    platform.logger.warn(
      { component: 'cluster', event: 'nodeLost', nodeId: node, willsPublished },
      'a node stopped; its devices were marked offline',
    );
    swept.push(node);
  }
  return swept;
}
