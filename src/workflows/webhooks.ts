/**
 * Webhooks: public URLs (`/webhooks/TOKEN`) that fire the `webhook` triggers naming them. The
 * token is shown once, when the webhook is made; only its SHA-256 is stored, so a copy of the
 * database does not hold working URLs.
 */
import { GatehouseError } from '../core/errors.js';
import { generateSecret, sha256 } from '../core/secrets.js';
import { newId } from '../domain/ids.js';
import type { Store } from '../store/types.js';
import type { Webhook } from './definition.js';

/** SHA-256 (hex) of a webhook token: what is stored and looked up. */
export function webhookTokenHash(token: string): string {
  return sha256(token).toString('hex');
}

export class Webhooks {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
  ) {}

  /** A new webhook and its token (returned this once). */
  async create(applicationId: string, name: string): Promise<{ webhook: Webhook; token: string }> {
    const token = generateSecret(24);
    const now = this.clock();
    const webhook: Webhook = {
      id: newId(),
      applicationId,
      name,
      tokenHash: webhookTokenHash(token),
      creationDate: now,
      lastUpdated: now,
    };
    await this.store.createWebhook(webhook);
    return { webhook, token };
  }

  list(applicationId: string): Promise<Webhook[]> {
    return this.store.listWebhooks(applicationId);
  }

  async require(applicationId: string, webhookId: string): Promise<Webhook> {
    const webhook = await this.store.getWebhook(webhookId);
    if (!webhook || webhook.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `webhook ${webhookId} not found in application ${applicationId}`);
    }
    return webhook;
  }

  async rename(applicationId: string, webhookId: string, name: string | undefined): Promise<Webhook> {
    const webhook = await this.require(applicationId, webhookId);
    const updated = { ...webhook, name: name ?? webhook.name, lastUpdated: this.clock() };
    await this.store.updateWebhook(updated);
    return updated;
  }

  async delete(applicationId: string, webhookId: string): Promise<void> {
    await this.require(applicationId, webhookId);
    await this.store.deleteWebhook(webhookId);
  }

  /** The webhook a token opens, if any. */
  byToken(token: string): Promise<Webhook | undefined> {
    return this.store.getWebhookByTokenHash(webhookTokenHash(token));
  }
}
