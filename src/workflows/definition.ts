/**
 * The workflow definition format: Losant's flow JSON (triggers with `type`, `key`, `config`
 * and `outputIds`; nodes with `id`, `type`, `config` and `outputIds`; `globals` as
 * `{key, json}`), so exported flows load as they are. docs/workflows.md describes every
 * trigger and node.
 */

export interface FlowTrigger {
  /** Which thing fires it: a device id, a tag, a webhook id, a button key (by type). */
  key?: string;
  type: string;
  config: Record<string, unknown>;
  /** Layout and labels, kept as given. */
  meta?: unknown;
  /** `outputIds[0]`: the nodes a run starts at. */
  outputIds: string[][];
}

export interface FlowNode {
  id: string;
  type: string;
  config: Record<string, unknown>;
  meta?: unknown;
  /** One list of next nodes per output (a Conditional node has two: false, then true). */
  outputIds: string[][];
}

/** A global: `json` holds the value as JSON text. */
export interface FlowGlobal {
  key: string;
  json: string;
}

export interface FlowDefinition {
  triggers: FlowTrigger[];
  nodes: FlowNode[];
  globals: FlowGlobal[];
}

export interface FlowStats {
  runCount: number;
  errorCount: number;
}

export interface Flow extends FlowDefinition {
  id: string;
  applicationId: string;
  name: string;
  description: string;
  enabled: boolean;
  /** When set, runs use this version's definition instead of the flow's own. */
  defaultVersionId: string | null;
  stats: FlowStats;
  creationDate: number;
  lastUpdated: number;
}

export interface FlowVersion extends FlowDefinition {
  id: string;
  flowId: string;
  applicationId: string;
  version: string;
  notes: string;
  creationDate: number;
}

/** One entry of a flow's run log. */
export interface FlowRun {
  flowId: string;
  time: number;
  flowVersion: string;
  triggerType: string;
  triggerId: string;
  pathsCompleted: number;
  pathsFailed: number;
  /** ms from the start of the run to its end. */
  wallTime: number;
  /** ms from the trigger (for state: the commit of the state) to the end of the run, queueing included. */
  latency: number;
  errors: Array<{ nodeId: string; nodeType: string; message: string }>;
}

export interface Webhook {
  id: string;
  applicationId: string;
  name: string;
  /**
   * SHA-256 (hex) of the secret part of the webhook's URL, `/webhooks/TOKEN`: the token itself
   * is shown once, by the POST that makes it.
   */
  tokenHash: string;
  creationDate: number;
  lastUpdated: number;
}

/** The name runs report for a flow's own (unversioned) definition. */
export const DEVELOP_VERSION = 'develop';
