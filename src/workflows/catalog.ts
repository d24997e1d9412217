/**
 * What a node type is: how its config is checked on save, how many outputs it has, and what it
 * does in a run. Node types register here; validation and the runtime look them up by `type`.
 */
import type { Platform } from '../core/platform.js';
import type { Flow, FlowNode } from './definition.js';
import type { OutboundFetch } from './outbound.js';

/** Reports a problem with one config field of a node or trigger. */
export type Problem = (field: string, message: string) => void;

/** What a node sees of the run it is part of. */
export interface NodeContext {
  platform: Platform;
  /** Outbound HTTP: the HTTP node calls through it, so the operator's address policy applies. */
  fetch: OutboundFetch;
  flow: Flow;
  node: FlowNode;
  /** The working payload: nodes read and write it. */
  payload: Record<string, unknown>;
  /** How many workflow-written states deep this run is (a chain is bounded). */
  depth: number;
  /** Called before the node writes state for a device (chains of workflow writes are bounded). */
  beforeStateWrite(deviceId: string): void;
  /** Publishes to the flow's debug stream. */
  debug(entry: { message: string; level: string; value: unknown }): void;
  /** Aborted when the run's time is up: long waits (Delay, HTTP) end with it. */
  signal: AbortSignal;
}

export interface NodeType {
  type: string;
  /**
   * Outputs the node must declare in `outputIds`; null: any number; a function: a number that
   * depends on the config (Switch: one per case, plus the default).
   */
  outputs: number | null | ((config: Record<string, unknown>) => number | null);
  validate(config: Record<string, unknown>, problem: Problem): void;
  /** Runs the node; answers the index of the output to follow (default 0), or null for none. */
  run(
    config: Record<string, unknown>,
    ctx: NodeContext,
  ): Promise<number | null | undefined> | number | null | undefined;
}

const NODE_TYPES = new Map<string, NodeType>();

export function registerNode(type: NodeType): void {
  NODE_TYPES.set(type.type, type);
}

export function nodeType(type: string): NodeType | undefined {
  return NODE_TYPES.get(type);
}

export function nodeTypes(): string[] {
  return [...NODE_TYPES.keys()].sort();
}

// Config readers: the validators use them to name the field at fault.

export function requireString(config: Record<string, unknown>, field: string, problem: Problem): string | undefined {
  const value = config[field];
  if (typeof value !== 'string' || value === '') {
    problem(field, 'is required (a string)');
    return undefined;
  }
  return value;
}

export function optionalString(config: Record<string, unknown>, field: string, problem: Problem): string | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    problem(field, 'must be a string');
    return undefined;
  }
  return value;
}

export function oneOf<T extends string>(
  config: Record<string, unknown>,
  field: string,
  allowed: readonly T[],
  fallback: T,
  problem: Problem,
): T {
  const value = config[field] ?? fallback;
  if (!(allowed as readonly unknown[]).includes(value)) {
    problem(field, `must be one of ${allowed.join(', ')} (${JSON.stringify(value)} is not supported)`);
    return fallback;
  }
  return value as T;
}
