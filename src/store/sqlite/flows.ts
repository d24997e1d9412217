/** Flows, their versions, run logs and storage values, and webhooks in SQLite (the FlowStore part). */
import type Database from 'better-sqlite3';
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

function statements(db: Database.Database) {
  return {
    insertFlow: db.prepare<[Omit<FlowRow, 'run_count' | 'error_count'>]>(
      `INSERT INTO flows (id, application_id, name, description, enabled, definition, default_version_id,
         creation_date, last_updated)
       VALUES (@id, @application_id, @name, @description, @enabled, @definition, @default_version_id,
         @creation_date, @last_updated)`,
    ),
    getFlow: db.prepare<[string], FlowRow>('SELECT * FROM flows WHERE id = ?'),
    listFlows: db.prepare<[], FlowRow>('SELECT * FROM flows ORDER BY creation_date, id'),
    listAppFlows: db.prepare<[string], FlowRow>(
      'SELECT * FROM flows WHERE application_id = ? ORDER BY creation_date, id',
    ),
    updateFlow: db.prepare<[Omit<FlowRow, 'run_count' | 'error_count'>]>(
      `UPDATE flows SET name = @name, description = @description, enabled = @enabled, definition = @definition,
         default_version_id = @default_version_id, last_updated = @last_updated WHERE id = @id`,
    ),
    deleteFlow: db.prepare<[string]>('DELETE FROM flows WHERE id = ?'),
    addStats: db.prepare<[{ id: string; runs: number; errors: number }]>(
      'UPDATE flows SET run_count = run_count + @runs, error_count = error_count + @errors WHERE id = @id',
    ),
    insertVersion: db.prepare<[VersionRow]>(
      `INSERT INTO flow_versions (id, flow_id, application_id, version, notes, definition, creation_date)
       VALUES (@id, @flow_id, @application_id, @version, @notes, @definition, @creation_date)`,
    ),
    getVersion: db.prepare<[string], VersionRow>('SELECT * FROM flow_versions WHERE id = ?'),
    listVersions: db.prepare<[string], VersionRow>(
      'SELECT * FROM flow_versions WHERE flow_id = ? ORDER BY creation_date, id',
    ),
    flowExists: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM flows WHERE id = ?'),
    insertRun: db.prepare<[{ flowId: string; time: number; run: string }]>(
      'INSERT INTO flow_runs (flow_id, time, run) VALUES (@flowId, @time, @run)',
    ),
    // The newest run past the ones kept, found through the index; it and older ones go.
    oldestDropped: db.prepare<[{ flowId: string; keep: number }], { time: number; id: number }>(
      `SELECT time, id FROM flow_runs WHERE flow_id = @flowId ORDER BY time DESC, id DESC LIMIT 1 OFFSET @keep`,
    ),
    trimRuns: db.prepare<[{ flowId: string; time: number; id: number }]>(
      `DELETE FROM flow_runs WHERE flow_id = @flowId AND (time < @time OR (time = @time AND id <= @id))`,
    ),
    listRuns: db.prepare<[{ flowId: string; start: number; end: number; limit: number }], { run: string }>(
      `SELECT run FROM flow_runs WHERE flow_id = @flowId AND time BETWEEN @start AND @end
       ORDER BY time DESC, id DESC LIMIT @limit`,
    ),
    getValue: db.prepare<[string, string], { value: string }>(
      'SELECT value FROM flow_values WHERE flow_id = ? AND key = ?',
    ),
    setValue: db.prepare<[string, string, string]>(
      `INSERT INTO flow_values (flow_id, key, value) VALUES (?, ?, ?)
       ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value`,
    ),
    deleteValue: db.prepare<[string, string]>('DELETE FROM flow_values WHERE flow_id = ? AND key = ?'),
    insertWebhook: db.prepare<[WebhookRow]>(
      `INSERT INTO webhooks (id, application_id, name, token_hash, creation_date, last_updated)
       VALUES (@id, @application_id, @name, @token_hash, @creation_date, @last_updated)`,
    ),
    getWebhook: db.prepare<[string], WebhookRow>('SELECT * FROM webhooks WHERE id = ?'),
    getWebhookByTokenHash: db.prepare<[string], WebhookRow>('SELECT * FROM webhooks WHERE token_hash = ?'),
    listWebhooks: db.prepare<[string], WebhookRow>(
      'SELECT * FROM webhooks WHERE application_id = ? ORDER BY creation_date, id',
    ),
    updateWebhook: db.prepare<[WebhookRow]>(
      'UPDATE webhooks SET name = @name, token_hash = @token_hash, last_updated = @last_updated WHERE id = @id',
    ),
    deleteWebhook: db.prepare<[string]>('DELETE FROM webhooks WHERE id = ?'),
  };
}

export class SqliteFlows implements FlowStore {
  private readonly s: ReturnType<typeof statements>;
  private readonly recordRunsTx: (runs: FlowRun[], stats: FlowStatsDelta[], keep: number) => void;
  /** Runs added per flow since its log was last trimmed: trimming scans the log, so it waits for a tenth of it. */
  private readonly untrimmed = new Map<string, number>();

  constructor(db: Database.Database) {
    this.s = statements(db);
    this.recordRunsTx = db.transaction((runs: FlowRun[], stats: FlowStatsDelta[], keep: number) => {
      for (const s of stats) this.s.addStats.run({ id: s.flowId, runs: s.runs, errors: s.errors });
      // A run may end after its flow was deleted: it is kept only while the flow exists.
      const exists = new Map<string, boolean>();
      for (const run of runs) {
        let known = exists.get(run.flowId);
        if (known === undefined) {
          known = this.s.flowExists.get(run.flowId) !== undefined;
          exists.set(run.flowId, known);
        }
        if (!known) continue;
        this.s.insertRun.run({ flowId: run.flowId, time: run.time, run: JSON.stringify(run) });
        this.untrimmed.set(run.flowId, (this.untrimmed.get(run.flowId) ?? 0) + 1);
      }
      for (const [flowId, added] of this.untrimmed) {
        if (added < Math.max(1, Math.ceil(keep / 10))) continue;
        const cut = this.s.oldestDropped.get({ flowId, keep });
        if (cut) this.s.trimRuns.run({ flowId, ...cut });
        this.untrimmed.delete(flowId);
      }
    });
  }

  async createFlow(flow: Flow): Promise<void> {
    this.s.insertFlow.run(flowToRow(flow));
  }

  async getFlow(id: string): Promise<Flow | undefined> {
    const row = this.s.getFlow.get(id);
    return row && flowFromRow(row);
  }

  async listFlows(applicationId?: string): Promise<Flow[]> {
    const rows = applicationId === undefined ? this.s.listFlows.all() : this.s.listAppFlows.all(applicationId);
    return rows.map(flowFromRow);
  }

  async updateFlow(flow: Flow): Promise<void> {
    this.s.updateFlow.run(flowToRow(flow));
  }

  async deleteFlow(id: string): Promise<void> {
    this.s.deleteFlow.run(id);
  }

  async createFlowVersion(v: FlowVersion): Promise<void> {
    this.s.insertVersion.run(versionToRow(v));
  }

  async getFlowVersion(id: string): Promise<FlowVersion | undefined> {
    const row = this.s.getVersion.get(id);
    return row && versionFromRow(row);
  }

  async listFlowVersions(flowId: string): Promise<FlowVersion[]> {
    return this.s.listVersions.all(flowId).map(versionFromRow);
  }

  async recordFlowRuns(runs: FlowRun[], stats: FlowStatsDelta[], keepPerFlow: number): Promise<void> {
    if (runs.length > 0 || stats.length > 0) this.recordRunsTx(runs, stats, keepPerFlow);
  }

  async listFlowRuns(flowId: string, query: { limit: number; start?: number; end?: number }): Promise<FlowRun[]> {
    return this.s.listRuns
      .all({
        flowId,
        start: query.start ?? Number.MIN_SAFE_INTEGER,
        end: query.end ?? Number.MAX_SAFE_INTEGER,
        limit: query.limit,
      })
      .map((r) => JSON.parse(r.run) as FlowRun);
  }

  async getFlowValue(flowId: string, key: string): Promise<unknown> {
    const row = this.s.getValue.get(flowId, key);
    return row ? JSON.parse(row.value) : undefined;
  }

  async setFlowValue(flowId: string, key: string, value: unknown): Promise<void> {
    if (value === undefined) this.s.deleteValue.run(flowId, key);
    else if (this.s.getFlow.get(flowId)) this.s.setValue.run(flowId, key, JSON.stringify(value));
  }

  async createWebhook(webhook: Webhook): Promise<void> {
    this.s.insertWebhook.run(webhookToRow(webhook));
  }

  async getWebhook(id: string): Promise<Webhook | undefined> {
    const row = this.s.getWebhook.get(id);
    return row && webhookFromRow(row);
  }

  async getWebhookByTokenHash(tokenHash: string): Promise<Webhook | undefined> {
    const row = this.s.getWebhookByTokenHash.get(tokenHash);
    return row && webhookFromRow(row);
  }

  async listWebhooks(applicationId: string): Promise<Webhook[]> {
    return this.s.listWebhooks.all(applicationId).map(webhookFromRow);
  }

  async updateWebhook(webhook: Webhook): Promise<void> {
    this.s.updateWebhook.run(webhookToRow(webhook));
  }

  async deleteWebhook(id: string): Promise<void> {
    this.s.deleteWebhook.run(id);
  }
}
