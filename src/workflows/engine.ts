/**
 * The workflow runtime. It follows the event bus after each commit (so a run never delays a
 * PUBACK or an HTTP answer), matches enabled flows' triggers through an index, and runs each
 * flow's runs off the ingest path: a bounded queue and a few runs at a time per flow, so one
 * flood cannot starve the others, and per-run limits on time and node executions. Each run is
 * recorded in the flow's bounded run log, and its errors name the node and the reason.
 */

import type { ConnectionEvent, PlatformEvents } from '../core/events.js';
import type { Platform } from '../core/platform.js';
import { iso } from '../core/wire.js';
import { filterMatches } from '../domain/topics.js';
import { type Count, NO_COUNT } from '../ops/instruments.js';
import {
  DEVELOP_VERSION,
  type Flow,
  type FlowDefinition,
  type FlowNode,
  type FlowRun,
  type FlowTrigger,
} from './definition.js';
import { outboundFetch } from './outbound.js';
import { executeRun, type RunEnvironment, type RunOutcome } from './run.js';
import { inParts, PendingRunLog, type RunLogPart } from './run-log.js';
import { Lane, RunScheduler } from './scheduler.js';
import { realTimers, type TimerSource } from './timers.js';
import { deviceMatches, mqttTopicFilter, type StateMatcher, stateMatcher } from './triggers.js';
import './nodes/index.js';

export interface EngineLimits {
  /** A run is stopped after this long. */
  runTimeoutMs: number;
  /** A run is stopped after this many node executions. */
  maxNodeExecutions: number;
  /** Runs of one flow in progress at once (waiting on I/O included); the rest wait in its queue. */
  perFlowConcurrency: number;
  /** Runs waiting per flow; past it a trigger is refused, counted, and summed in the run log. */
  maxQueuedPerFlow: number;
  /** States waiting to be matched against the flows, at most; past it, states are not matched. */
  maxIntake: number;
  /** Share of the wall time runs may take while ingest and REST keep the event loop saturated (scheduler.ts). */
  loopShare: number;
  /** Workflow-written states that trigger workflows again, at most this deep. */
  maxChainDepth: number;
  /** Runs kept in each flow's run log. */
  runLogSize: number;
}

export const DEFAULT_ENGINE_LIMITS: EngineLimits = {
  runTimeoutMs: 60_000,
  maxNodeExecutions: 1_000,
  perFlowConcurrency: 4,
  maxQueuedPerFlow: 1_000,
  maxIntake: 10_000,
  // Runs also cost ingest the garbage they leave, collected outside their slices: with 0.07,
  // ingest at saturation kept 0.96-0.98 of its rate with 10 flows, with 0.1 0.91-0.93
  // (docs/benchmarks.md, w).
  loopShare: 0.07,
  maxChainDepth: 8,
  runLogSize: 1_000,
};

/** How often finished runs are written to the run log and the flows' stats. */
const RUN_LOG_FLUSH_MS = 5_000;
/** Runs per timed write of the run log: a few milliseconds of work, one job of the scheduler. */
const RUN_LOG_PART = 200;

/** The errors of every run that had none: one shared, frozen array instead of one per run. */
const NO_ERRORS = Object.freeze([]) as unknown as FlowRun['errors'];

/** What the engine counts (docs/operations.md, "Metrics"). */
export interface WorkflowInstruments {
  succeeded: Count;
  failed: Count;
  /** Triggers refused because their flow's queue was full. */
  refused: Count;
  /** States not matched against the flows because the engine's intake was full. */
  unmatched: Count;
}

export interface DebugEntry {
  flowId: string;
  time: string;
  nodeId?: string;
  kind: 'debug' | 'error';
  level: string;
  message: string;
  value?: unknown;
}

interface ActiveFlow {
  flow: Flow;
  definition: FlowDefinition;
  /** The definition's globals, parsed once. */
  globals: Record<string, unknown>;
  hasGlobals: boolean;
  /** The definition's nodes by id. */
  nodes: ReadonlyMap<string, FlowNode>;
  /** Its device state triggers, each with its test compiled. */
  stateTriggers: Array<{ trigger: FlowTrigger; matches: StateMatcher }>;
  version: string;
  /** When this definition was loaded: inactivity counts only reports since. */
  loadedAt: number;
  /** Stops the flow's timer triggers. */
  stopTimers: Array<() => void>;
  lane: Lane;
}

type StateEvent = PlatformEvents['state'];

export class WorkflowEngine {
  private readonly active = new Map<string, ActiveFlow>();
  /** Flows with a `deviceId` trigger, by that device. */
  private readonly byDevice = new Map<string, Set<ActiveFlow>>();
  /** Flows with a `deviceTag` trigger (checked against every state's device). */
  private readonly byTag = new Set<ActiveFlow>();
  /** Flows by the types of their other event triggers (connect, disconnect, inactivity, webhook, mqttTopic). */
  private readonly byType = new Map<string, Set<ActiveFlow>>();
  /** When each device last reported state (by platform clock), for inactivity triggers. */
  private readonly lastReports = new Map<string, number>();
  /** Inactivity triggers (`flowId:index`) that fired for a device since its last report. */
  private readonly inactiveFired = new Map<string, Set<string>>();
  private inactivityTimer: NodeJS.Timeout | undefined;
  private readonly timers: TimerSource;
  private readonly debugListeners = new Map<string, Set<(entry: DebugEntry) => void>>();
  /** The chain depth of states a workflow is writing, by device (see `writeDepth`). */
  private readonly writing = new Map<string, number>();
  private readonly runLog: PendingRunLog;
  private readonly runEnvironment: RunEnvironment;
  private readonly scheduler: RunScheduler;
  /** States waiting to be matched against the flows (see onState). */
  private readonly intake: Lane;
  /** Timed writes of the run log, in the scheduler's slices (see flushRunsInParts). */
  private readonly logLane = new Lane(Number.POSITIVE_INFINITY);
  /** Parts of the run log taken and not yet written, oldest first. */
  private readonly logParts: RunLogPart[] = [];
  /** States never matched because the intake was full, since the last write of the run log. */
  private unmatched = 0;
  private readonly instruments: WorkflowInstruments;
  private flushTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly limits: EngineLimits;

  constructor(
    private readonly platform: Platform,
    limits: Partial<EngineLimits> = {},
    options: {
      timers?: TimerSource;
      inactivityCheckMs?: number;
      instruments?: WorkflowInstruments;
      /** Whether HTTP nodes may call loopback, private and link-local addresses (outbound.ts). */
      allowPrivateHttp?: boolean;
      /**
       * Whether this node fires timers and inactivity triggers now (nodes sharing Redis: the
       * holder of the singleton lease); default: always.
       */
      singleton?: () => boolean;
    } = {},
  ) {
    this.limits = { ...DEFAULT_ENGINE_LIMITS, ...limits };
    this.timers = options.timers ?? realTimers;
    this.singleton = options.singleton ?? (() => true);
    this.inactivityCheckMs = options.inactivityCheckMs ?? 1_000;
    this.instruments = options.instruments ?? {
      succeeded: NO_COUNT,
      failed: NO_COUNT,
      refused: NO_COUNT,
      unmatched: NO_COUNT,
    };
    this.runLog = new PendingRunLog(this.limits.runLogSize);
    this.intake = new Lane(this.limits.maxIntake);
    this.runEnvironment = {
      platform,
      limits: this.limits,
      fetch: outboundFetch({ allowPrivate: options.allowPrivateHttp === true }),
      debug: (flowId, nodeId, entry) => this.emitDebug({ flowId, time: iso(Date.now()), nodeId, ...entry }),
      beforeStateWrite: (deviceId, depth) => this.writeDepth(deviceId, depth),
    };
    this.scheduler = new RunScheduler({
      concurrency: this.limits.perFlowConcurrency,
      maxWaiting: this.limits.maxQueuedPerFlow,
      share: this.limits.loopShare,
    });
  }

  private readonly inactivityCheckMs: number;
  private readonly singleton: () => boolean;

  async start(): Promise<void> {
    for (const flow of await this.platform.store.listFlows()) await this.load(flow);
    this.platform.bus.on('state', (event) => this.onState(event), this);
    this.platform.bus.on('connection', (event) => this.onConnection(event), this);
    this.platform.bus.on('customMessage', (event) => this.onCustomMessage(event), this);
    this.inactivityTimer = setInterval(() => {
      if (this.singleton()) this.checkInactivity();
    }, this.inactivityCheckMs);
    this.inactivityTimer.unref();
    this.flushTimer = setInterval(() => void this.flushRunsInParts(), RUN_LOG_FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Stops taking triggers, lets running runs end, and writes the run log. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.platform.bus.removeOwner(this);
    clearInterval(this.flushTimer);
    clearInterval(this.inactivityTimer);
    for (const a of this.active.values()) {
      this.scheduler.close(a.lane);
      for (const stop of a.stopTimers) stop();
    }
    await this.scheduler.idle();
    await this.flushRuns();
  }

  /** (Re)reads a flow after it was saved: its definition, version and triggers. */
  async load(flow: Flow): Promise<void> {
    this.unindex(flow.id);
    if (!flow.enabled) return;
    let definition: FlowDefinition = flow;
    let version = DEVELOP_VERSION;
    if (flow.defaultVersionId) {
      const pinned = await this.platform.store.getFlowVersion(flow.defaultVersionId);
      if (pinned) {
        definition = pinned;
        version = pinned.version;
      }
    }
    // Runs of the previous definition finish on their own; this one starts with an empty queue.
    const active: ActiveFlow = {
      flow,
      definition,
      globals: globalsOf(definition),
      hasGlobals: definition.globals.length > 0,
      nodes: new Map(definition.nodes.map((n) => [n.id, n])),
      stateTriggers: definition.triggers
        .filter((t) => t.type === 'deviceId' || t.type === 'deviceTag')
        .map((trigger) => ({ trigger, matches: stateMatcher(trigger) })),
      version,
      loadedAt: this.platform.clock(),
      stopTimers: [],
      lane: new Lane(),
    };
    this.active.set(flow.id, active);
    for (const trigger of definition.triggers) {
      if (trigger.type === 'deviceId' && trigger.key) {
        const set = this.byDevice.get(trigger.key) ?? new Set<ActiveFlow>();
        this.byDevice.set(trigger.key, set);
        set.add(active);
      } else if (trigger.type === 'deviceTag') this.byTag.add(active);
      else if (trigger.type === 'timer') this.startTimer(active, trigger, definition.triggers.indexOf(trigger));
      else if (trigger.type !== 'virtualButton') {
        const set = this.byType.get(trigger.type) ?? new Set<ActiveFlow>();
        this.byType.set(trigger.type, set);
        set.add(active);
      }
    }
  }

  private startTimer(active: ActiveFlow, trigger: FlowTrigger, index: number): void {
    const config = trigger.config ?? {};
    const fire = () => {
      if (this.stopped || this.active.get(active.flow.id) !== active || !this.singleton()) return;
      const triggerId = trigger.key ?? `${active.flow.id}-timer-${index}`;
      const time = this.platform.clock();
      this.enqueue(active, trigger, () => this.basePayload(active, trigger, triggerId, time, {}), 0, performance.now());
    };
    try {
      active.stopTimers.push(
        typeof config.cron === 'string' && config.cron !== ''
          ? this.timers.cron(config.cron, typeof config.tz === 'string' && config.tz ? config.tz : 'UTC', fire)
          : this.timers.every(Number(config.seconds) * 1000, fire),
      );
    } catch (err) {
      // Validated on save; a schedule this runtime still refuses is recorded, not thrown.
      this.triggerFailed(active, trigger, trigger.key ?? '', `the timer could not start: ${(err as Error).message}`);
    }
  }

  /** A flow was disabled or deleted: its triggers stop at once; runs in progress finish. */
  unload(flowId: string): void {
    this.unindex(flowId);
  }

  private unindex(flowId: string): void {
    const active = this.active.get(flowId);
    if (!active) return;
    this.active.delete(flowId);
    this.scheduler.close(active.lane);
    for (const stop of active.stopTimers) stop();
    this.byTag.delete(active);
    for (const set of this.byType.values()) set.delete(active);
    for (const [deviceId, set] of this.byDevice) {
      set.delete(active);
      if (set.size === 0) this.byDevice.delete(deviceId);
    }
  }

  subscribeDebug(flowId: string, listener: (entry: DebugEntry) => void): () => void {
    const set = this.debugListeners.get(flowId) ?? new Set<(entry: DebugEntry) => void>();
    this.debugListeners.set(flowId, set);
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.debugListeners.delete(flowId);
    };
  }

  /**
   * Before a workflow writes state for a device: the depth the runs it triggers will have.
   * Read back when the state's event arrives (one write at a time per device is exact; two
   * flows writing the same device at once may swap depths, never lose the bound).
   */
  writeDepth(deviceId: string, depth: number): void {
    this.writing.set(deviceId, depth);
  }

  /** Fires the `virtualButton` triggers of a flow whose key is `key`; how many fired. */
  pressButton(flowId: string, key: string, data: unknown): number {
    const active = this.active.get(flowId);
    if (!active) return 0;
    let fired = 0;
    for (const trigger of active.definition.triggers) {
      if (trigger.type !== 'virtualButton' || trigger.key !== key) continue;
      fired++;
      const time = Date.now();
      this.enqueue(
        active,
        trigger,
        () => this.basePayload(active, trigger, key, time, data ?? {}),
        0,
        performance.now(),
      );
    }
    return fired;
  }

  /**
   * Fires the `webhook` triggers of the application's enabled flows whose key is `webhookId`;
   * how many fired.
   */
  fireWebhook(applicationId: string, webhookId: string, data: unknown): number {
    let fired = 0;
    for (const active of this.byType.get('webhook') ?? []) {
      if (active.flow.applicationId !== applicationId) continue;
      for (const trigger of active.definition.triggers) {
        if (trigger.type !== 'webhook' || trigger.key !== webhookId) continue;
        fired++;
        const time = this.platform.clock();
        this.enqueue(
          active,
          trigger,
          () =>
            this.basePayload(active, trigger, webhookId, time, structuredClone(data), {
              id: webhookId,
              type: 'public',
            }),
          0,
          performance.now(),
        );
      }
    }
    return fired;
  }

  /**
   * Fires inactivity triggers for devices that have reported nothing for their `config.seconds`
   * since the flow was loaded: once per device, again only after it has reported since. Runs
   * every second on its own; tests call it after moving the clock.
   */
  checkInactivity(now = this.platform.clock()): number {
    if (this.stopped) return 0;
    let fired = 0;
    const flows = new Set([
      ...(this.byType.get('deviceIdInactivity') ?? []),
      ...(this.byType.get('deviceTagInactivity') ?? []),
    ]);
    for (const active of flows) {
      active.definition.triggers.forEach((trigger, index) => {
        if (trigger.type !== 'deviceIdInactivity' && trigger.type !== 'deviceTagInactivity') return;
        const seconds = Number(trigger.config?.seconds);
        if (!(seconds > 0)) return;
        const ids = trigger.type === 'deviceIdInactivity' ? [trigger.key ?? ''] : [...this.lastReports.keys()];
        const mark = `${active.flow.id}:${index}`;
        for (const deviceId of ids) {
          const last = this.lastReports.get(deviceId);
          if (last === undefined || last < active.loadedAt || now - last < seconds * 1000) continue;
          if (this.inactiveFired.get(deviceId)?.has(mark)) continue;
          const device = this.platform.registry.deviceCached(deviceId);
          if (!device || device.applicationId !== active.flow.applicationId || !deviceMatches(trigger, device))
            continue;
          const marks = this.inactiveFired.get(deviceId) ?? new Set<string>();
          this.inactiveFired.set(deviceId, marks);
          marks.add(mark);
          fired++;
          const build = () =>
            this.basePayload(
              active,
              trigger,
              deviceId,
              now,
              { inactivitySeconds: seconds, lastActivity: new Date(last) },
              { id: `inactivity-${deviceId}-${seconds}`, type: 'timer' },
              device,
            );
          this.enqueue(active, trigger, build, 0, performance.now());
        }
      });
    }
    return fired;
  }

  private onConnection(event: ConnectionEvent): void {
    if (this.stopped) return;
    const [byId, byTag] = event.connected
      ? ['deviceIdConnect', 'deviceTagConnect']
      : ['deviceIdDisconnect', 'deviceTagDisconnect'];
    const candidates = new Set([...(this.byType.get(byId) ?? []), ...(this.byType.get(byTag) ?? [])]);
    if (candidates.size === 0) return;
    const device = this.platform.registry.deviceCached(event.deviceId);
    if (!device) return;
    const { deviceId: _d, applicationId: _a, time, ...details } = event;
    const data = Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined && v !== null));
    for (const active of candidates) {
      if (active.flow.applicationId !== device.applicationId) continue;
      for (const trigger of active.definition.triggers) {
        if ((trigger.type !== byId && trigger.type !== byTag) || !deviceMatches(trigger, device)) continue;
        const relayId = event.gatewayId ?? device.id;
        const build = () =>
          this.basePayload(active, trigger, device.id, time, { ...data }, { id: relayId, type: 'device' }, device);
        this.enqueue(active, trigger, build, 0, performance.now());
      }
    }
  }

  private onCustomMessage(event: PlatformEvents['customMessage']): void {
    if (this.stopped) return;
    const flows = this.byType.get('mqttTopic');
    if (!flows) return;
    let message: string | undefined;
    for (const active of flows) {
      if (active.flow.applicationId !== event.applicationId) continue;
      for (const trigger of active.definition.triggers) {
        if (trigger.type !== 'mqttTopic') continue;
        const filter = mqttTopicFilter(trigger);
        if (typeof filter !== 'string' || !filterMatches(filter, event.topic)) continue;
        message ??= event.payload.toString('utf8');
        const data = { topic: event.topic, message };
        const build = () =>
          this.basePayload(active, trigger, event.topic, event.time, data, { id: event.publisherId, type: 'device' });
        this.enqueue(active, trigger, build, 0, performance.now());
      }
    }
  }

  /**
   * Reports of devices committed on other nodes (nodes sharing Redis), for inactivity triggers:
   * the node that fires them must know of every device's reports, wherever they arrived.
   */
  noteReports(reports: Array<[deviceId: string, time: number]>): void {
    if (this.stopped) return;
    for (const [deviceId, time] of reports) {
      if ((this.lastReports.get(deviceId) ?? Number.NEGATIVE_INFINITY) >= time) continue;
      this.lastReports.set(deviceId, time);
      this.inactiveFired.delete(deviceId);
    }
  }

  private onState(event: StateEvent): void {
    if (this.stopped) return;
    const fromFlow = event.reportedBy.startsWith('flow:');
    if (!fromFlow) {
      this.lastReports.set(event.deviceId, this.platform.clock());
      this.inactiveFired.delete(event.deviceId);
    }
    let depth = 0;
    if (fromFlow) {
      depth = this.writing.get(event.deviceId) ?? 1;
      this.writing.delete(event.deviceId);
    }
    if (!this.byDevice.has(event.deviceId) && this.byTag.size === 0) return;
    // Matching the state against the flows is workflow work too: it waits in the intake lane and
    // runs in the scheduler's slices, so a commit only pays for putting it there.
    if (!this.scheduler.hasRoom(this.intake)) {
      this.instruments.unmatched.inc();
      this.unmatched++;
      return;
    }
    const age = this.platform.clock() - event.time;
    const triggeredAt = performance.now();
    this.scheduler.submit(this.intake, () => {
      this.matchState(event, depth, age, triggeredAt);
      return undefined;
    });
  }

  /** Queues a run of every enabled flow whose state trigger this state fires. */
  private matchState(event: StateEvent, depth: number, age: number, triggeredAt: number): void {
    const direct = this.byDevice.get(event.deviceId);
    const device = this.platform.registry.deviceCached(event.deviceId);
    if (!device) return;
    const relay = relayOf(event.reportedBy);
    const consider = (active: ActiveFlow) => {
      if (active.flow.applicationId !== device.applicationId) return;
      for (const { trigger, matches } of active.stateTriggers) {
        const data = matches(device, event.data, age);
        if (!data) continue;
        if (depth > this.limits.maxChainDepth) {
          const why = `a chain of workflow-written states deeper than ${this.limits.maxChainDepth} was stopped`;
          this.triggerFailed(active, trigger, device.id, why);
          continue;
        }
        if (!this.scheduler.hasRoom(active.lane)) {
          this.refuse(active, trigger);
          continue;
        }
        const build = () => this.basePayload(active, trigger, device.id, event.time, plainCopy(data), relay, device);
        this.enqueue(active, trigger, build, depth, triggeredAt);
      }
    };
    if (direct) for (const active of direct) consider(active);
    for (const active of this.byTag) if (!direct?.has(active)) consider(active);
  }

  /** A trigger fired but its run could not start: recorded as a failed run naming the trigger. */
  private triggerFailed(active: ActiveFlow, trigger: FlowTrigger, triggerId: string, message: string): void {
    this.record(active, trigger, triggerId, performance.now(), {
      wallTime: 0,
      pathsCompleted: 0,
      pathsFailed: 1,
      errors: [{ nodeId: '', nodeType: 'trigger', message }],
    });
  }

  /**
   * A run's payload: what every trigger gives, then who carried the trigger (`relay`) and the
   * device's naming when a device fired it. Built in one object, fields in the documented order.
   */
  private basePayload(
    active: ActiveFlow,
    trigger: FlowTrigger,
    triggerId: string,
    time: number,
    data: unknown,
    relay?: Relay,
    device?: DeviceNaming,
  ): Record<string, unknown> {
    const { flow } = active;
    const app = this.platform.registry.applicationCached(flow.applicationId);
    const payload: Record<string, unknown> = {
      time: new Date(time),
      data,
      triggerId,
      triggerType: trigger.type,
      applicationId: flow.applicationId,
      applicationName: app?.name ?? '',
      flowId: flow.id,
      flowName: flow.name,
      flowVersion: active.version,
      // Each run gets its own copy: a node may change it.
      globals: active.hasGlobals ? structuredClone(active.globals) : {},
    };
    if (relay) {
      payload.relayId = relay.id;
      payload.relayType = relay.type;
      if (relay.reportedBy !== undefined) payload.reportedBy = relay.reportedBy;
    }
    if (device) {
      payload.deviceName = device.name;
      payload.deviceClass = device.deviceClass;
      payload.deviceTags = tagsOf(device.tags);
    }
    return payload;
  }

  /**
   * Queues a run of `trigger` unless the flow's queue is full. The payload is built when the run
   * starts: a refused trigger costs little, and a queued run holds only what its trigger shares
   * with the other flows' runs, so full queues stay small and die young (less garbage collection
   * on the ingest path).
   */
  private enqueue(
    active: ActiveFlow,
    trigger: FlowTrigger,
    buildPayload: () => Record<string, unknown>,
    depth: number,
    triggeredAt: number,
  ): void {
    if (!this.scheduler.hasRoom(active.lane)) {
      this.refuse(active, trigger);
      return;
    }
    this.scheduler.submit(active.lane, () => {
      const payload = buildPayload();
      const spec = { flow: active.flow, nodes: active.nodes, trigger, payload, depth };
      return executeRun(this.runEnvironment, spec, (outcome) =>
        this.record(active, trigger, String(payload.triggerId ?? ''), triggeredAt, outcome),
      );
    });
  }

  private refuse(active: ActiveFlow, trigger: FlowTrigger): void {
    this.instruments.refused.inc();
    this.runLog.refuse(active.flow.id, trigger.type, active.version);
  }

  /** Resolves once no run is in progress or waiting in a queue (tests, diagnostics). */
  idle(): Promise<void> {
    return this.scheduler.idle();
  }

  private record(
    active: ActiveFlow,
    trigger: FlowTrigger,
    triggerId: string,
    triggeredAt: number,
    outcome: RunOutcome,
  ): void {
    (outcome.errors.length > 0 ? this.instruments.failed : this.instruments.succeeded).inc();
    this.runLog.add({
      flowId: active.flow.id,
      time: this.platform.clock(),
      flowVersion: active.version,
      triggerType: trigger.type,
      triggerId,
      pathsCompleted: outcome.pathsCompleted,
      pathsFailed: outcome.pathsFailed,
      wallTime: Math.round(outcome.wallTime * 1000) / 1000,
      latency: Math.round((performance.now() - triggeredAt) * 1000) / 1000,
      errors: outcome.errors.length === 0 ? NO_ERRORS : outcome.errors.slice(0, 20),
    });
  }

  /**
   * Writes the run log now, in one transaction: what still waits for the scheduler's slices, then
   * every run finished since (reading the log over REST, stopping, tests).
   */
  async flushRuns(): Promise<void> {
    const taken = this.takeRuns();
    if (taken) this.logParts.push(taken);
    for (let part = this.logParts.shift(); part; part = this.logParts.shift()) await this.writeRuns(part);
  }

  /**
   * The timed write of the run log (every 5 s): in parts of RUN_LOG_PART runs, each a job in the
   * scheduler's slices, so writing the log takes from the runs' share of a busy event loop
   * instead of stopping ingest for one long transaction. What the slices have not written by
   * the next time is written then at once, so at most two periods' worth waits in memory.
   */
  async flushRunsInParts(): Promise<void> {
    if (this.logParts.length > 0) await this.flushRuns();
    const taken = this.takeRuns();
    if (!taken) return;
    for (const part of inParts(taken, RUN_LOG_PART)) {
      this.logParts.push(part);
      this.scheduler.submit(this.logLane, () => {
        const oldest = this.logParts.shift();
        return oldest && this.writeRuns(oldest);
      });
    }
  }

  /** Runs finished and stats counted since the last take; logs the states left unmatched meanwhile. */
  private takeRuns(): RunLogPart | undefined {
    if (this.unmatched > 0) {
      this.platform.logger.warn(
        { component: 'workflows', event: 'statesUnmatched', count: this.unmatched },
        `${this.unmatched} states were not matched against workflows: the engine's intake was full (${this.limits.maxIntake} waiting)`,
      );
      this.unmatched = 0;
    }
    if (this.runLog.size === 0) return undefined;
    return this.runLog.take(this.platform.clock(), this.limits.maxQueuedPerFlow);
  }

  private async writeRuns({ runs, stats }: RunLogPart): Promise<void> {
    try {
      await this.platform.store.recordFlowRuns(runs, stats, this.limits.runLogSize);
    } catch (err) {
      this.platform.logger.error({ err, component: 'workflows', event: 'runLogFailed' }, 'writing the run log failed');
    }
  }

  private emitDebug(entry: DebugEntry): void {
    const listeners = this.debugListeners.get(entry.flowId);
    if (!listeners) return;
    for (const listener of listeners) listener(entry);
  }
}

/** Who carried a state, as a run's payload says it (`relayType`): a device, an API token, a user or a flow. */
function relayOf(reportedBy: string): Relay {
  const [kind, id] = reportedBy.includes(':') ? (reportedBy.split(':', 2) as [string, string]) : ['device', reportedBy];
  const type = kind === 'token' ? 'apiToken' : kind;
  return { id, type, reportedBy: id };
}

/**
 * A shallow copy of a state's attributes as an ordinary object, as `{ ...data }` would make it,
 * but several times faster: stored states have no prototype, and V8 keeps such objects in
 * dictionary mode, where a spread takes its slow path. `__proto__` stays an attribute.
 */
function plainCopy(data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(data)) {
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: data[key], enumerable: true, writable: true, configurable: true });
    else out[key] = data[key];
  }
  return out;
}

/** Who carried a trigger: the payload's `relayId` and `relayType` (and `reportedBy` for states). */
interface Relay {
  id: string;
  type: string;
  reportedBy?: string;
}

/** What a device-fired payload says of the device. */
interface DeviceNaming {
  name: string;
  deviceClass: string;
  tags: Array<{ key: string; value: string }>;
}

function tagsOf(tags: Array<{ key: string; value: string }>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const t of tags) {
    const values = out[t.key] ?? [];
    values.push(t.value);
    out[t.key] = values;
  }
  return out;
}

function globalsOf(def: FlowDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const g of def.globals) {
    try {
      out[g.key] = JSON.parse(g.json);
    } catch {
      out[g.key] = g.json;
    }
  }
  return out;
}
