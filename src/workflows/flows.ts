/**
 * Flows and their versions: validated writes through to the store, each one handed to the
 * runtime so that a save, a disable or a delete takes effect at once.
 */
import { GatehouseError } from '../core/errors.js';
import { newId } from '../domain/ids.js';
import type { Store } from '../store/types.js';
import type { Flow, FlowDefinition, FlowGlobal, FlowNode, FlowTrigger, FlowVersion } from './definition.js';
import type { WorkflowEngine } from './engine.js';
import { assertValidDefinition } from './validate.js';

export interface FlowInput {
  name: string;
  description?: string;
  enabled?: boolean;
  triggers?: FlowTrigger[];
  nodes?: FlowNode[];
  globals?: FlowGlobal[];
}

export interface FlowPatch extends Partial<FlowInput> {
  defaultVersionId?: string | null;
}

/** A definition with every optional part filled in as the runtime expects it. */
function normalized(def: { triggers?: FlowTrigger[]; nodes?: FlowNode[]; globals?: FlowGlobal[] }): FlowDefinition {
  return {
    triggers: (def.triggers ?? []).map((t) => ({ ...t, config: t.config ?? {}, outputIds: t.outputIds ?? [[]] })),
    nodes: (def.nodes ?? []).map((n) => ({ ...n, config: n.config ?? {}, outputIds: n.outputIds ?? [[]] })),
    globals: def.globals ?? [],
  };
}

export class Flows {
  private changeListener: (flowId: string) => void = () => {};

  constructor(
    private readonly store: Store,
    private readonly engine: WorkflowEngine,
    private readonly clock: () => number,
  ) {}

  /** Told of every flow created, changed or deleted here, so other nodes can load it (src/cluster/). */
  onChange(listener: (flowId: string) => void): void {
    this.changeListener = listener;
  }

  /** Loads (or unloads) a flow another node changed, as stored now. */
  async reload(flowId: string): Promise<void> {
    const flow = await this.store.getFlow(flowId);
    if (flow) await this.engine.load(flow);
    else this.engine.unload(flowId);
  }

  async create(applicationId: string, input: FlowInput): Promise<Flow> {
    const definition = normalized(input);
    assertValidDefinition(definition);
    const now = this.clock();
    const flow: Flow = {
      id: newId(),
      applicationId,
      name: input.name,
      description: input.description ?? '',
      enabled: input.enabled ?? true,
      ...definition,
      defaultVersionId: null,
      stats: { runCount: 0, errorCount: 0 },
      creationDate: now,
      lastUpdated: now,
    };
    await this.store.createFlow(flow);
    await this.engine.load(flow);
    this.changeListener(flow.id);
    return flow;
  }

  async require(applicationId: string, flowId: string): Promise<Flow> {
    const flow = await this.store.getFlow(flowId);
    if (!flow || flow.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `flow ${flowId} not found in application ${applicationId}`);
    }
    return flow;
  }

  list(applicationId: string): Promise<Flow[]> {
    return this.store.listFlows(applicationId);
  }

  /** Replaces the fields the patch names; the result is validated as a whole. */
  async update(applicationId: string, flowId: string, patch: FlowPatch): Promise<Flow> {
    const flow = await this.require(applicationId, flowId);
    const definition = normalized({
      triggers: patch.triggers ?? flow.triggers,
      nodes: patch.nodes ?? flow.nodes,
      globals: patch.globals ?? flow.globals,
    });
    assertValidDefinition(definition);
    if (patch.defaultVersionId) {
      const version = await this.store.getFlowVersion(patch.defaultVersionId);
      if (!version || version.flowId !== flow.id) {
        throw new GatehouseError('Validation', `body/defaultVersionId names no version of flow ${flow.id}`);
      }
    }
    const updated: Flow = {
      ...flow,
      ...definition,
      name: patch.name ?? flow.name,
      description: patch.description ?? flow.description,
      enabled: patch.enabled ?? flow.enabled,
      defaultVersionId: patch.defaultVersionId === undefined ? flow.defaultVersionId : patch.defaultVersionId,
      lastUpdated: this.clock(),
    };
    await this.store.updateFlow(updated);
    await this.engine.load(updated);
    this.changeListener(flowId);
    return (await this.store.getFlow(flowId)) ?? updated;
  }

  async delete(applicationId: string, flowId: string): Promise<void> {
    await this.require(applicationId, flowId);
    this.engine.unload(flowId);
    await this.store.deleteFlow(flowId);
    this.changeListener(flowId);
  }

  /** An immutable snapshot: of the definition given, or of the flow's own when none is. */
  async createVersion(
    applicationId: string,
    flowId: string,
    input: { version: string; notes?: string; triggers?: FlowTrigger[]; nodes?: FlowNode[]; globals?: FlowGlobal[] },
  ): Promise<FlowVersion> {
    const flow = await this.require(applicationId, flowId);
    const given = input.triggers !== undefined || input.nodes !== undefined || input.globals !== undefined;
    const definition = normalized(given ? input : flow);
    assertValidDefinition(definition);
    if ((await this.store.listFlowVersions(flowId)).some((v) => v.version === input.version)) {
      throw new GatehouseError('Conflict', `flow ${flowId} has a version ${JSON.stringify(input.version)} already`);
    }
    const version: FlowVersion = {
      id: newId(),
      flowId,
      applicationId,
      version: input.version,
      notes: input.notes ?? '',
      ...definition,
      creationDate: this.clock(),
    };
    await this.store.createFlowVersion(version);
    return version;
  }

  runs(flowId: string, query: { limit: number; start?: number; end?: number }) {
    return this.store.listFlowRuns(flowId, query);
  }

  async listVersions(applicationId: string, flowId: string): Promise<FlowVersion[]> {
    await this.require(applicationId, flowId);
    return this.store.listFlowVersions(flowId);
  }
}
