/** Row shapes of the workflow tables (the same in both backends) and their mapping to and from the domain. */
import type { Flow, FlowDefinition, FlowVersion, Webhook } from '../workflows/definition.js';

export interface FlowRow {
  id: string;
  application_id: string;
  name: string;
  description: string;
  enabled: number;
  definition: string;
  default_version_id: string | null;
  run_count: number;
  error_count: number;
  creation_date: number;
  last_updated: number;
}

export interface VersionRow {
  id: string;
  flow_id: string;
  application_id: string;
  version: string;
  notes: string;
  definition: string;
  creation_date: number;
}

export interface WebhookRow {
  id: string;
  application_id: string;
  name: string;
  token_hash: string;
  creation_date: number;
  last_updated: number;
}

export const definitionOf = (d: FlowDefinition): string =>
  JSON.stringify({ triggers: d.triggers, nodes: d.nodes, globals: d.globals });

export const flowFromRow = (r: FlowRow): Flow => ({
  id: r.id,
  applicationId: r.application_id,
  name: r.name,
  description: r.description,
  enabled: r.enabled === 1,
  ...(JSON.parse(r.definition) as FlowDefinition),
  defaultVersionId: r.default_version_id,
  stats: { runCount: r.run_count, errorCount: r.error_count },
  creationDate: r.creation_date,
  lastUpdated: r.last_updated,
});

export const flowToRow = (f: Flow): Omit<FlowRow, 'run_count' | 'error_count'> => ({
  id: f.id,
  application_id: f.applicationId,
  name: f.name,
  description: f.description,
  enabled: f.enabled ? 1 : 0,
  definition: definitionOf(f),
  default_version_id: f.defaultVersionId,
  creation_date: f.creationDate,
  last_updated: f.lastUpdated,
});

export const versionFromRow = (r: VersionRow): FlowVersion => ({
  id: r.id,
  flowId: r.flow_id,
  applicationId: r.application_id,
  version: r.version,
  notes: r.notes,
  ...(JSON.parse(r.definition) as FlowDefinition),
  creationDate: r.creation_date,
});

export const webhookFromRow = (r: WebhookRow): Webhook => ({
  id: r.id,
  applicationId: r.application_id,
  name: r.name,
  tokenHash: r.token_hash,
  creationDate: r.creation_date,
  lastUpdated: r.last_updated,
});

export const webhookToRow = (w: Webhook): WebhookRow => ({
  id: w.id,
  application_id: w.applicationId,
  name: w.name,
  token_hash: w.tokenHash,
  creation_date: w.creationDate,
  last_updated: w.lastUpdated,
});

export const versionToRow = (v: FlowVersion): VersionRow => ({
  id: v.id,
  flow_id: v.flowId,
  application_id: v.applicationId,
  version: v.version,
  notes: v.notes,
  definition: definitionOf(v),
  creation_date: v.creationDate,
});
