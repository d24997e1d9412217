/**
 * Losant's own REST client (npm `losant-rest`) making workflows as a Losant user's script would:
 * a webhook (`webhooks.post`), the worked example's flow with a webhook trigger beside its
 * device trigger (`flows.post`), read back (`flow.get`); then a call to the webhook's URL runs it.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, eventually, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

interface FlowBody {
  name: string;
  description?: string;
  triggers: Array<Record<string, unknown>>;
  nodes: Array<Record<string, unknown>>;
}
interface FlowAnswer extends FlowBody {
  id: string;
  applicationId: string;
  enabled: boolean;
  flowClass: string;
}
/** The part of the `losant-rest` client this test calls (the package ships no types). */
interface LosantClient {
  webhooks: {
    post(params: { applicationId: string; webhook: { name: string } }): Promise<{
      id: string;
      name: string;
      token: string;
      url: string;
    }>;
    get(params: { applicationId: string }): Promise<{ items: Array<{ id: string; token?: string }> }>;
  };
  flows: { post(params: { applicationId: string; flow: FlowBody }): Promise<FlowAnswer> };
  flow: { get(params: { applicationId: string; flowId: string }): Promise<FlowAnswer> };
}

const require = createRequire(import.meta.url);
const losant = require('losant-rest') as { createClient(options: { url: string; accessToken?: string }): LosantClient };

describe('losant-rest makes workflows', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let client: LosantClient;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
    const editor = ok(
      await server.http<{ token: string }>('POST', `/applications/${fleet.applicationId}/tokens`, {
        name: 'script',
        role: 'editor',
      }),
    ).token;
    client = losant.createClient({ url: server.running.urls.http, accessToken: editor });
  });
  afterAll(() => server.stop());

  it('creates the webhook and the flow, reads the flow back, and the webhook runs it', async () => {
    const applicationId = fleet.applicationId;
    const webhook = await client.webhooks.post({ applicationId, webhook: { name: 'hot alerts' } });
    expect(webhook).toMatchObject({ name: 'hot alerts', url: `/webhooks/${webhook.token}` });
    const listed = await client.webhooks.get({ applicationId });
    expect(listed.items.map((w) => [w.id, w.token])).toEqual([[webhook.id, undefined]]);

    const definition: FlowBody = {
      name: 'Fan on when hot',
      triggers: [
        {
          type: 'deviceId',
          key: fleet.bound,
          config: { attributeWhitelist: ['temperature'] },
          meta: { category: 'trigger', name: 'deviceIdsTags', label: 'Device: State', x: 60, y: 60 },
          outputIds: [['hot']],
        },
        {
          type: 'webhook',
          key: webhook.id,
          config: {},
          meta: { category: 'trigger', name: 'webhook', label: 'Webhook', x: 260, y: 60 },
          outputIds: [['seen']],
        },
      ],
      nodes: [
        {
          id: 'hot',
          type: 'ConditionalNode',
          config: { expression: '{{data.temperature}} > 30' },
          outputIds: [[], ['fan']],
        },
        {
          id: 'fan',
          type: 'DeviceSendCommandNode',
          config: {
            deviceIdsPath: 'triggerId',
            nameTemplate: 'fan',
            payloadTemplate: '{"on": true, "because": {{data.temperature}}}',
          },
          outputIds: [[]],
        },
        { id: 'seen', type: 'DebugNode', config: { message: 'alert {{data.body.device}}' }, outputIds: [[]] },
      ],
    };
    const created = await client.flows.post({ applicationId, flow: definition });
    expect(created).toMatchObject({ name: 'Fan on when hot', enabled: true, flowClass: 'cloud', applicationId });

    const read = await client.flow.get({ applicationId, flowId: created.id });
    expect(read.id).toBe(created.id);
    expect(read.triggers).toEqual(definition.triggers);
    expect(read.nodes).toEqual(definition.nodes);

    const called = await fetch(`${server.running.urls.http}${webhook.url}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device: fleet.bound }),
    });
    expect(called.status).toBe(200);
    const runs = await eventually(async () => {
      const log = ok(
        await server.http<Array<{ triggerType: string; triggerId: string; pathsCompleted: number }>>(
          'GET',
          `/applications/${applicationId}/flows/${created.id}/logs`,
        ),
        200,
      );
      return log.length > 0 && log;
    });
    expect(runs[0]).toMatchObject({ triggerType: 'webhook', triggerId: webhook.id, pathsCompleted: 1 });
  });
});
