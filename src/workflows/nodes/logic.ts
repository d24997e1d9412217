/**
 * Logic nodes: Switch, Throttle, Delay and On Change (`BranchOnChangeNode`), with Losant's config
 * field names (docs/workflows.md describes each).
 */
import { GatehouseError } from '../../core/errors.js';
import { type NodeContext, oneOf, optionalString, type Problem, registerNode, requireString } from '../catalog.js';
import { lookup, renderString, setPath } from '../templates.js';
import { checkTemplate } from './core.js';
import { exclusive, MAX_VALUE_BYTES } from './storage.js';

/**
 * Switch: `switchTemplate` rendered and compared, as a string, with each case's rendered
 * `caseTemplate`; the first match follows output `i + 1`, none the default output 0.
 */
registerNode({
  type: 'SwitchNode',
  outputs: (config) => (Array.isArray(config.cases) ? config.cases.length + 1 : null),
  validate: (config, problem) => {
    requireString(config, 'switchTemplate', problem);
    checkTemplate(config, 'switchTemplate', problem);
    if (!Array.isArray(config.cases)) return problem('cases', 'is required (an array of {caseTemplate, caseLabel?})');
    if (config.cases.length > 99) problem('cases', 'may hold at most 99 cases');
    for (const [i, c] of config.cases.entries()) {
      if (c === null || typeof c !== 'object') {
        problem(`cases/${i}`, 'must be an object');
        continue;
      }
      const sub: Problem = (field, message) => problem(`cases/${i}/${field}`, message);
      const r = c as Record<string, unknown>;
      if (typeof r.caseTemplate !== 'string') sub('caseTemplate', 'is required (a string)');
      else checkTemplate(r, 'caseTemplate', sub);
      optionalString(r, 'caseLabel', sub);
    }
  },
  run: (config, ctx) => {
    const value = renderString(config.switchTemplate as string, ctx.payload);
    const cases = config.cases as Array<{ caseTemplate: string }>;
    for (const [i, c] of cases.entries()) {
      if (renderString(c.caseTemplate, ctx.payload) === value) return i + 1;
    }
    return 0;
  },
});

/** Throttle keys remembered at most (oldest forgotten first). */
const MAX_THROTTLE_KEYS = 100_000;
/** The last time each throttle let a run through: `flowId \0 nodeId \0 throttleId` → ms. */
const throttled = new Map<string, number>();

/**
 * Throttle (ours: in memory, per flow, node and rendered `throttleIdTemplate`; forgotten on
 * restart). A run passes (output 1) when at least `60 / ratePerMinute` seconds have passed since
 * the last run that passed for the same key; otherwise it takes output 0.
 */
registerNode({
  type: 'ThrottleNode',
  outputs: 2,
  validate: (config, problem) => {
    const rate = config.ratePerMinute;
    const n = typeof rate === 'string' && rate.trim() !== '' ? Number(rate) : rate;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 600) {
      problem('ratePerMinute', 'is required (a number above 0, at most 600)');
    }
    optionalString(config, 'throttleIdTemplate', problem);
    checkTemplate(config, 'throttleIdTemplate', problem);
    optionalString(config, 'timeSincePath', problem);
  },
  run: (config, ctx) => {
    const rate = Number(config.ratePerMinute);
    const id = renderString((config.throttleIdTemplate as string | undefined) ?? '', ctx.payload);
    const key = `${ctx.flow.id}\0${ctx.node.id}\0${id}`;
    const now = ctx.platform.clock();
    const last = throttled.get(key);
    const timeSincePath = config.timeSincePath as string | undefined;
    if (timeSincePath && last !== undefined) setPath(ctx.payload, timeSincePath, now - last);
    if (last !== undefined && now - last < 60_000 / rate) return 0;
    throttled.delete(key);
    throttled.set(key, now);
    if (throttled.size > MAX_THROTTLE_KEYS) throttled.delete(throttled.keys().next().value as string);
    return 1;
  },
});

/** The longest delay (s): a run's own limit is 60 s. */
export const MAX_DELAY_SECONDS = 60;

function delaySeconds(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

/** Waits `ms`, or rejects when the run's time is up. A 0 s delay still yields to other work. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('the run ran out of time during a delay'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('the run ran out of time during a delay'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Delay: `delay` seconds (a template), at most 60. */
registerNode({
  type: 'DelayNode',
  outputs: 1,
  validate: (config, problem) => {
    const delay = config.delay;
    if (typeof delay === 'number') {
      if (delay < 0 || delay > MAX_DELAY_SECONDS) problem('delay', `must be 0 to ${MAX_DELAY_SECONDS} seconds`);
      return;
    }
    const text = requireString(config, 'delay', problem);
    if (text === undefined) return;
    checkTemplate(config, 'delay', problem);
    if (!text.includes('{{')) {
      const n = delaySeconds(text);
      if (n === undefined || n < 0 || n > MAX_DELAY_SECONDS) {
        problem('delay', `must be 0 to ${MAX_DELAY_SECONDS} seconds (${JSON.stringify(text)} is not)`);
      }
    }
  },
  run: async (config, ctx) => {
    const raw = typeof config.delay === 'number' ? config.delay : renderString(config.delay as string, ctx.payload);
    const seconds = delaySeconds(raw);
    if (seconds === undefined || seconds < 0 || seconds > MAX_DELAY_SECONDS) {
      throw new GatehouseError(
        'Validation',
        `the delay ${JSON.stringify(raw)} is not 0 to ${MAX_DELAY_SECONDS} seconds`,
      );
    }
    await sleep(seconds * 1000, ctx.signal);
    return 0;
  },
});

const CHANGE_TYPES = ['any', 'percent', 'percentInc', 'percentDec', 'value', 'valueInc', 'valueDec'] as const;
type ChangeType = (typeof CHANGE_TYPES)[number];

/** The storage key of an On Change node's previous value (kept apart from the flow's own keys). */
export function onChangeStorageKey(ctx: NodeContext, id: string): string {
  return `\u0000onChange/${ctx.node.id}/${id}`;
}

function changed(type: ChangeType, threshold: number, previous: unknown, current: unknown): boolean {
  if (type === 'any') return JSON.stringify(previous) !== JSON.stringify(current);
  const prev = typeof previous === 'number' ? previous : Number.NaN;
  const now = typeof current === 'number' ? current : Number.NaN;
  if (!Number.isFinite(prev) || !Number.isFinite(now)) return false;
  const delta = now - prev;
  switch (type) {
    case 'value':
      return Math.abs(delta) >= threshold;
    case 'valueInc':
      return delta >= threshold;
    case 'valueDec':
      return -delta >= threshold;
    default: {
      if (prev === 0) return delta !== 0 && (type === 'percent' || (type === 'percentInc' ? delta > 0 : delta < 0));
      const percent = (delta / Math.abs(prev)) * 100;
      if (type === 'percent') return Math.abs(percent) >= threshold;
      return type === 'percentInc' ? percent >= threshold : -percent >= threshold;
    }
  }
}

/**
 * On Change (`BranchOnChangeNode`): compares the value at `valuePath` with the one the node saw
 * last time for the same rendered `onChangeIdTemplate`; output 1 when it changed, 0 otherwise
 * (and on the first run). The previous value is kept in the flow's storage, so it survives a
 * restart.
 */
registerNode({
  type: 'BranchOnChangeNode',
  outputs: 2,
  validate: (config, problem) => {
    requireString(config, 'valuePath', problem);
    const type = oneOf(config, 'changeType', CHANGE_TYPES, 'any', problem);
    if (type !== 'any') {
      const t = delaySeconds(config.changeThreshold);
      if (t === undefined || t < 0) problem('changeThreshold', `is required for changeType ${type} (a number ≥ 0)`);
    }
    optionalString(config, 'prevValuePath', problem);
    optionalString(config, 'onChangeIdTemplate', problem);
    checkTemplate(config, 'onChangeIdTemplate', problem);
  },
  run: async (config, ctx) => {
    const { payload, platform, flow } = ctx;
    const current = lookup(payload, config.valuePath as string) ?? null;
    const id = renderString((config.onChangeIdTemplate as string | undefined) ?? '', payload);
    const key = onChangeStorageKey(ctx, id);
    const size = Buffer.byteLength(JSON.stringify(current));
    if (size > MAX_VALUE_BYTES) {
      throw new GatehouseError(
        'Validation',
        `the value at valuePath is ${size} bytes as JSON; at most ${MAX_VALUE_BYTES}`,
      );
    }
    const stored = await exclusive(`${flow.id}\0${key}`, async () => {
      const previous = (await platform.store.getFlowValue(flow.id, key)) as { value: unknown } | undefined;
      await platform.store.setFlowValue(flow.id, key, { value: current });
      return previous;
    });
    const prevValuePath = config.prevValuePath as string | undefined;
    if (prevValuePath) setPath(payload, prevValuePath, stored ? stored.value : undefined);
    if (!stored) return 0;
    const type = (config.changeType as ChangeType | undefined) ?? 'any';
    return changed(type, Number(config.changeThreshold ?? 0), stored.value, current) ? 1 : 0;
  },
});
