/**
 * Validation of a flow definition on save, as a whole: every problem names the trigger or node
 * and the field at fault (`nodes/2 (id "fan", ConditionalNode): config/expression ...`).
 */
import { GatehouseError } from '../core/errors.js';
import { nodeType } from './catalog.js';
import type { FlowDefinition, FlowGlobal, FlowNode, FlowTrigger } from './definition.js';
import './nodes/index.js';
import { validateTrigger } from './triggers.js';

export const MAX_NODES = 500;
export const MAX_TRIGGERS = 100;
/** The largest definition accepted, as JSON. */
export const MAX_DEFINITION_BYTES = 256 * 1024;

/** The problems of a definition, each naming where; empty when it is sound. */
export function definitionProblems(def: FlowDefinition): string[] {
  const problems: string[] = [];
  const at = (where: string) => (field: string, message: string) => problems.push(`${where}: ${field} ${message}`);

  if (def.triggers.length > MAX_TRIGGERS) problems.push(`triggers: at most ${MAX_TRIGGERS} triggers`);
  if (def.nodes.length > MAX_NODES) problems.push(`nodes: at most ${MAX_NODES} nodes`);
  const ids = new Map<string, FlowNode>();
  def.nodes.forEach((node, i) => {
    const where = `nodes/${i} (id ${JSON.stringify(node.id)}, ${node.type})`;
    if (ids.has(node.id)) problems.push(`${where}: id is used by another node`);
    ids.set(node.id, node);
    const type = nodeType(node.type);
    if (!type) {
      problems.push(`${where}: node type ${JSON.stringify(node.type)} is not supported`);
      return;
    }
    type.validate(node.config ?? {}, (field, message) => problems.push(`${where}: config/${field} ${message}`));
    const outputs = typeof type.outputs === 'function' ? type.outputs(node.config ?? {}) : type.outputs;
    if (outputs !== null && node.outputIds.length !== outputs) {
      problems.push(
        `${where}: outputIds must hold ${outputs} output${outputs === 1 ? '' : 's'}${
          node.type === 'ConditionalNode' ? ' (false, then true)' : ''
        }, not ${node.outputIds.length}`,
      );
    }
  });
  const wired = (where: string, outputIds: string[][]) => {
    for (const [o, targets] of outputIds.entries()) {
      for (const [j, id] of targets.entries()) {
        if (!ids.has(id)) {
          problems.push(`${where}: outputIds/${o}/${j} names node ${JSON.stringify(id)}, which does not exist`);
        }
      }
    }
  };
  for (const [i, node] of def.nodes.entries()) {
    wired(`nodes/${i} (id ${JSON.stringify(node.id)}, ${node.type})`, node.outputIds);
  }
  def.triggers.forEach((trigger: FlowTrigger, i) => {
    const where = `triggers/${i} (${trigger.type}${trigger.key ? ` ${JSON.stringify(trigger.key)}` : ''})`;
    validateTrigger(trigger, at(where));
    wired(where, trigger.outputIds);
  });
  const cycle = findCycle(def.nodes, ids);
  if (cycle) problems.push(`nodes: a cycle without a DelayNode could run forever: ${cycle.join(' → ')}`);
  def.globals.forEach((g: FlowGlobal, i) => {
    try {
      JSON.parse(g.json);
    } catch {
      problems.push(`globals/${i} (${JSON.stringify(g.key)}): json is not valid JSON`);
    }
  });
  return problems;
}

/** Throws 400 Validation naming the first problems, when there are any. */
export function assertValidDefinition(def: FlowDefinition): void {
  const size = Buffer.byteLength(JSON.stringify(def));
  if (size > MAX_DEFINITION_BYTES) {
    throw new GatehouseError('Validation', `the flow definition is ${size} bytes; at most ${MAX_DEFINITION_BYTES}`);
  }
  const problems = definitionProblems(def);
  if (problems.length === 0) return;
  const shown = problems.slice(0, 10).join('; ');
  throw new GatehouseError(
    'Validation',
    problems.length > 10 ? `${shown}; and ${problems.length - 10} more problems` : shown,
  );
}

/** A cycle among nodes that holds no DelayNode, as node ids, if there is one. */
function findCycle(nodes: FlowNode[], ids: Map<string, FlowNode>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    const node = ids.get(id);
    if (!node || node.type === 'DelayNode') return undefined;
    const s = state.get(id);
    if (s === 'done') return undefined;
    if (s === 'open') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'open');
    path.push(id);
    for (const next of node.outputIds.flat()) {
      const found = visit(next);
      if (found) return found;
    }
    path.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const node of nodes) {
    const found = visit(node.id);
    if (found) return found;
  }
  return undefined;
}
