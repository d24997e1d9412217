/** Flows, their versions, run logs and storage values, and webhooks in PostgreSQL (the FlowStore part). */
import type pg from 'pg';
import type { Flow, FlowRun, FlowVersion, Webhook } from '../../workflows/definition.js';
import type { FlowStatsDelta } from '../../workflows/run-log.js';
import {
  type FlowRow,
  flowFromRow,
  flowToRow,
  type VersionRow,
  versionFromRow,
  versionToRow,
  type WebhookRow,
  webhookFromRow,
  webhookToRow,
} from '../flow-rows.js';
import type { FlowStore } from '../types.js';
import { escapeText } from './nul.js';

export class PostgresFlows implements FlowStore {
  /** Runs added per flow since its log was last trimmed: trimming scans the log, so it waits for a tenth of it. */
  private readonly untrimmed = new Map<string, number>();

  constructor(private readonly pool: pg.Pool) {}

  private async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  async createFlow(flow: Flow): Promise<void> {
    const r = flowToRow(flow);
    await this.pool.query(
      `INSERT INTO flows (id, application_id, name, description, enabled, definition, default_version_id,
         creation_date, last_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        r.id,
        r.application_id,
        r.name,
        r.description,
        r.enabled,
        r.definition,
        r.default_version_id,
        r.creation_date,
        r.last_updated,
      ],
    );
  }

  async getFlow(id: string): Promise<Flow | undefined> {
    const [row] = await this.rows<FlowRow>('SELECT * FROM flows WHERE id = $1', [id]);
    return row && flowFromRow(row);
  }

  async listFlows(applicationId?: string): Promise<Flow[]> {
    const rows =
      applicationId === undefined
        ? await this.rows<FlowRow>('SELECT * FROM flows ORDER BY creation_date, id')
        : await this.rows<FlowRow>('SELECT * FROM flows WHERE application_id = $1 ORDER BY creation_date, id', [
            applicationId,
          ]);
    return rows.map(flowFromRow);
  }

  async updateFlow(flow: Flow): Promise<void> {
    const r = flowToRow(flow);
    await this.pool.query(
      `UPDATE flows SET name = $2, description = $3, enabled = $4, definition = $5, default_version_id = $6,
         last_updated = $7 WHERE id = $1`,
      [r.id, r.name, r.description, r.enabled, r.definition, r.default_version_id, r.last_updated],
    );
  }

  async deleteFlow(id: string): Promise<void> {
    await this.pool.query('DELETE FROM flows WHERE id = $1', [id]);
  }

  async createFlowVersion(version: FlowVersion): Promise<void> {
    const r = versionToRow(version);
    await this.pool.query(
      `INSERT INTO flow_versions (id, flow_id, application_id, version, notes, definition, creation_date)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [r.id, r.flow_id, r.application_id, r.version, r.notes, r.definition, r.creation_date],
    );
  }

  async getFlowVersion(id: string): Promise<FlowVersion | undefined> {
    const [row] = await this.rows<VersionRow>('SELECT * FROM flow_versions WHERE id = $1', [id]);
    return row && versionFromRow(row);
  }

  async listFlowVersions(flowId: string): Promise<FlowVersion[]> {
    const rows = await this.rows<VersionRow>(
      'SELECT * FROM flow_versions WHERE flow_id = $1 ORDER BY creation_date, id',
      [flowId],
    );
    return rows.map(versionFromRow);
  }

  async recordFlowRuns(runs: FlowRun[], stats: FlowStatsDelta[], keepPerFlow: number): Promise<void> {
    if (runs.length === 0 && stats.length === 0) return;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      if (stats.length > 0) {
        await client.query(
          `UPDATE flows SET run_count = flows.run_count + u.runs, error_count = flows.error_count + u.errors
           FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, runs, errors) WHERE flows.id = u.id`,
          [stats.map((s) => s.flowId), stats.map((s) => s.runs), stats.map((s) => s.errors)],
        );
      }
      // A run may end after its flow was deleted: it is kept only while the flow exists.
      if (runs.length > 0) {
        await client.query(
          `INSERT INTO flow_runs (flow_id, time, run)
           SELECT u.flow_id, u.time, u.run FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY
             AS u(flow_id, time, run, ord)
           WHERE EXISTS (SELECT 1 FROM flows WHERE id = u.flow_id) ORDER BY ord`,
          [runs.map((r) => r.flowId), runs.map((r) => r.time), runs.map((r) => JSON.stringify(r))],
        );
      }
      const untrimmed = new Map(this.untrimmed);
      for (const run of runs) untrimmed.set(run.flowId, (untrimmed.get(run.flowId) ?? 0) + 1);
      const trimmed: string[] = [];
      for (const [flowId, added] of untrimmed) {
        if (added < Math.max(1, Math.ceil(keepPerFlow / 10))) continue;
        // The newest run past the ones kept, found through the index; it and older ones go.
        await client.query(
          `DELETE FROM flow_runs WHERE flow_id = $1 AND (time, id) <= (
             SELECT time, id FROM flow_runs WHERE flow_id = $1 ORDER BY time DESC, id DESC LIMIT 1 OFFSET $2)`,
          [flowId, keepPerFlow],
        );
        trimmed.push(flowId);
      }
      await client.query('COMMIT');
      for (const flowId of trimmed) untrimmed.delete(flowId);
      this.untrimmed.clear();
      for (const [flowId, added] of untrimmed) this.untrimmed.set(flowId, added);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async listFlowRuns(flowId: string, query: { limit: number; start?: number; end?: number }): Promise<FlowRun[]> {
    const rows = await this.rows<{ run: string }>(
      `SELECT run FROM flow_runs WHERE flow_id = $1 AND time BETWEEN $2 AND $3
       ORDER BY time DESC, id DESC LIMIT $4`,
      [flowId, query.start ?? Number.MIN_SAFE_INTEGER, query.end ?? Number.MAX_SAFE_INTEGER, query.limit],
    );
    return rows.map((r) => JSON.parse(r.run) as FlowRun);
  }

  async getFlowValue(flowId: string, key: string): Promise<unknown> {
    const [row] = await this.rows<{ value: string }>('SELECT value FROM flow_values WHERE flow_id = $1 AND key = $2', [
      flowId,
      escapeText(key),
    ]);
    return row ? JSON.parse(row.value) : undefined;
  }

  async setFlowValue(flowId: string, key: string, value: unknown): Promise<void> {
    if (value === undefined) {
      await this.pool.query('DELETE FROM flow_values WHERE flow_id = $1 AND key = $2', [flowId, escapeText(key)]);
      return;
    }
    // Only while the flow exists (the foreign key would refuse it otherwise).
    await this.pool.query(
      `INSERT INTO flow_values (flow_id, key, value) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM flows WHERE id = $1)
       ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value`,
      [flowId, escapeText(key), JSON.stringify(value)],
    );
  }

  async createWebhook(webhook: Webhook): Promise<void> {
    const r = webhookToRow(webhook);
    await this.pool.query(
      `INSERT INTO webhooks (id, application_id, name, token_hash, creation_date, last_updated)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [r.id, r.application_id, r.name, r.token_hash, r.creation_date, r.last_updated],
    );
  }

  async getWebhook(id: string): Promise<Webhook | undefined> {
    const [row] = await this.rows<WebhookRow>('SELECT * FROM webhooks WHERE id = $1', [id]);
    return row && webhookFromRow(row);
  }

  async getWebhookByTokenHash(tokenHash: string): Promise<Webhook | undefined> {
    const [row] = await this.rows<WebhookRow>('SELECT * FROM webhooks WHERE token_hash = $1', [tokenHash]);
    return row && webhookFromRow(row);
  }

  async listWebhooks(applicationId: string): Promise<Webhook[]> {
    const rows = await this.rows<WebhookRow>(
      'SELECT * FROM webhooks WHERE application_id = $1 ORDER BY creation_date, id',
      [applicationId],
    );
    return rows.map(webhookFromRow);
  }

  async updateWebhook(webhook: Webhook): Promise<void> {
    const r = webhookToRow(webhook);
    await this.pool.query('UPDATE webhooks SET name = $2, token_hash = $3, last_updated = $4 WHERE id = $1', [
      r.id,
      r.name,
      r.token_hash,
      r.last_updated,
    ]);
  }

  async deleteWebhook(id: string): Promise<void> {
    await this.pool.query('DELETE FROM webhooks WHERE id = $1', [id]);
  }
}
