/**
 * One workflow run: walks the graph from the trigger's outputs, node by node, each branch with its
 * own payload, within the run's limits on time and node executions. Nodes that answer at once
 * (conditions, math, payload edits) run without yielding, so a run that waits on nothing finishes
 * inside the scheduler's slice; the run goes asynchronous only at a node that returns a promise
 * (HTTP, Delay, storage), and only then pays for a timer and an abort signal.
 */
import type { Platform } from '../core/platform.js';
import { type NodeContext, nodeType } from './catalog.js';
import type { Flow, FlowNode, FlowRun, FlowTrigger } from './definition.js';
import type { OutboundFetch } from './outbound.js';

export interface RunLimits {
  runTimeoutMs: number;
  maxNodeExecutions: number;
}

/** What a run needs from the engine around it. */
export interface RunEnvironment {
  platform: Platform;
  limits: RunLimits;
  /** Outbound HTTP, with the operator's policy on private addresses. */
  fetch: OutboundFetch;
  /** Publishes to the flow's debug stream. */
  debug(
    flowId: string,
    nodeId: string,
    entry: { kind: 'debug' | 'error'; level: string; message: string; value?: unknown },
  ): void;
  /** A node is about to write state for a device: the runs that state triggers are `depth` deep. */
  beforeStateWrite(deviceId: string, depth: number): void;
}

export interface RunSpec {
  flow: Flow;
  /** The flow's nodes by id. */
  nodes: ReadonlyMap<string, FlowNode>;
  trigger: FlowTrigger;
  payload: Record<string, unknown>;
  depth: number;
}

export interface RunOutcome {
  wallTime: number;
  pathsCompleted: number;
  pathsFailed: number;
  errors: FlowRun['errors'];
}

interface Step {
  id: string;
  payload: Record<string, unknown>;
}

/** Starts a run; answers undefined when it ended without waiting, or a promise of its end. */
export function executeRun(
  env: RunEnvironment,
  spec: RunSpec,
  done: (outcome: RunOutcome) => void,
): Promise<void> | undefined {
  return new Run(env, spec, done).advance();
}

class Run {
  private readonly started = performance.now();
  private readonly deadline: number;
  private readonly stack: Step[] = [];
  private readonly errors: FlowRun['errors'] = [];
  private completed = 0;
  private failed = 0;
  private executions = 0;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly env: RunEnvironment,
    private readonly spec: RunSpec,
    private readonly done: (outcome: RunOutcome) => void,
  ) {
    this.deadline = this.started + env.limits.runTimeoutMs;
    this.follow(spec.trigger.outputIds[0] ?? [], spec.payload);
  }

  /** Runs nodes until the graph is done (undefined) or a node must be waited for (a promise). */
  advance(): Promise<void> | undefined {
    const { limits } = this.env;
    while (this.stack.length > 0) {
      const step = this.stack.pop() as Step;
      const node = this.spec.nodes.get(step.id);
      const type = node ? nodeType(node.type) : undefined;
      if (!node || !type) continue;
      const late = performance.now() > this.deadline || this.controller?.signal.aborted === true;
      if (late || ++this.executions > limits.maxNodeExecutions) {
        const why = late
          ? `the run took longer than ${limits.runTimeoutMs} ms and was stopped`
          : `the run executed more than ${limits.maxNodeExecutions} nodes and was stopped`;
        this.errors.push({ nodeId: node.id, nodeType: node.type, message: why });
        this.failed += this.stack.length + 1;
        this.stack.length = 0;
        break;
      }
      let output: ReturnType<typeof type.run>;
      try {
        output = type.run(node.config ?? {}, this.context(node, step.payload));
      } catch (err) {
        this.fail(node, err);
        continue;
      }
      if (isPromise(output)) return this.resume(node, step.payload, output);
      this.next(node, step.payload, output);
    }
    this.finish();
    return undefined;
  }

  private async resume(
    node: FlowNode,
    payload: Record<string, unknown>,
    waiting: Promise<number | null | undefined>,
  ): Promise<void> {
    try {
      this.next(node, payload, await withAbort(waiting, this.signal()));
    } catch (err) {
      this.fail(node, err);
    }
    await this.advance();
  }

  private context(node: FlowNode, payload: Record<string, unknown>): NodeContext {
    return new NodeRun(this, this.env, this.spec, node, payload);
  }

  /** The run's abort signal, made when a node first needs one: it fires when the run's time is up. */
  signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      this.timer = setTimeout(() => controller.abort(), Math.max(0, this.deadline - performance.now()));
      this.timer.unref();
    }
    return this.controller.signal;
  }

  private next(node: FlowNode, payload: Record<string, unknown>, output: number | null | undefined): void {
    if (output === null) this.completed++;
    else this.follow(node.outputIds[output ?? 0] ?? [], payload);
  }

  private follow(ids: string[], payload: Record<string, unknown>): void {
    if (ids.length === 0) {
      this.completed++;
      return;
    }
    // Each branch gets its own payload, as each path runs on its own.
    ids.forEach((id, i) => {
      this.stack.push({ id, payload: i === ids.length - 1 ? payload : structuredClone(payload) });
    });
  }

  private fail(node: FlowNode, err: unknown): void {
    this.failed++;
    const message = (err as Error)?.message ?? String(err);
    this.errors.push({ nodeId: node.id, nodeType: node.type, message });
    this.env.debug(this.spec.flow.id, node.id, { kind: 'error', level: 'error', message });
  }

  private finish(): void {
    clearTimeout(this.timer);
    this.done({
      wallTime: performance.now() - this.started,
      pathsCompleted: this.completed,
      pathsFailed: this.failed,
      errors: this.errors,
    });
  }
}

/** What one node execution sees: an object per node, its methods shared on the prototype. */
class NodeRun implements NodeContext {
  readonly platform: Platform;
  readonly fetch: OutboundFetch;
  readonly flow: Flow;
  readonly depth: number;

  constructor(
    private readonly run: Run,
    private readonly env: RunEnvironment,
    spec: RunSpec,
    readonly node: FlowNode,
    readonly payload: Record<string, unknown>,
  ) {
    this.platform = env.platform;
    this.fetch = env.fetch;
    this.flow = spec.flow;
    this.depth = spec.depth;
  }

  get signal(): AbortSignal {
    return this.run.signal();
  }

  // The runs a workflow-written state triggers are one level deeper than this one.
  beforeStateWrite(deviceId: string): void {
    this.env.beforeStateWrite(deviceId, this.depth + 1);
  }

  debug(entry: { message: string; level: string; value: unknown }): void {
    this.env.debug(this.flow.id, this.node.id, { kind: 'debug', ...entry });
  }
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

function withAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('the run ran out of time'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('the run ran out of time'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
