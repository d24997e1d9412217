/**
 * Workflow storage: Storage: Set Value (`StoreValueNode`) and Storage: Get Value (`GetValueNode`).
 * Values are kept per flow in the store (so they survive a restart), as JSON of at most 16 KiB.
 */
import { GatehouseError } from '../../core/errors.js';
import { oneOf, optionalString, registerNode, requireString } from '../catalog.js';
import { lookup, renderJson, renderString, setPath } from '../templates.js';
import { checkTemplate } from './core.js';

/** The largest value stored, as JSON. */
export const MAX_VALUE_BYTES = 16 * 1024;
/** The longest key, once rendered. */
export const MAX_KEY_LENGTH = 255;

const VALUE_TYPES = ['template', 'json', 'number', 'path', 'incr', 'decr', 'clear'] as const;
const DEFAULT_TYPES = ['template', 'json', 'path'] as const;

/** Read-modify-write of one key at a time (increments from concurrent runs are never lost). */
const locks = new Map<string, Promise<unknown>>();
export async function exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
  const before = locks.get(key) ?? Promise.resolve();
  const mine = before.then(work, work);
  const tail = mine.catch(() => {});
  locks.set(key, tail);
  try {
    return await mine;
  } finally {
    if (locks.get(key) === tail) locks.delete(key);
  }
}

function renderKey(template: string, payload: unknown): string {
  const key = renderString(template, payload);
  if (key === '') throw new GatehouseError('Validation', 'keyName rendered an empty key');
  if (key.length > MAX_KEY_LENGTH) {
    throw new GatehouseError('Validation', `keyName rendered a key longer than ${MAX_KEY_LENGTH} characters`);
  }
  return key;
}

function toNumber(value: unknown, what: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new GatehouseError('Validation', `${what} ${JSON.stringify(value)} is not a number`);
  }
  return n;
}

registerNode({
  type: 'StoreValueNode',
  outputs: 1,
  validate: (config, problem) => {
    requireString(config, 'keyName', problem);
    checkTemplate(config, 'keyName', problem);
    if (config.valueType === undefined) problem('valueType', `is required (one of ${VALUE_TYPES.join(', ')})`);
    const type = oneOf(config, 'valueType', VALUE_TYPES, 'template', problem);
    if (type === 'path') requireString(config, 'valuePath', problem);
    else if (type !== 'clear') {
      if (typeof config.value !== 'string' && typeof config.value !== 'number') {
        problem('value', `is required for valueType ${type} (a string template)`);
      } else checkTemplate(config, 'value', problem);
    }
    optionalString(config, 'resultPath', problem);
  },
  run: async (config, ctx) => {
    const { payload, platform, flow } = ctx;
    const key = renderKey(config.keyName as string, payload);
    const type = config.valueType as (typeof VALUE_TYPES)[number];
    const rendered = () => renderString(String(config.value ?? ''), payload);
    const stored = await exclusive(`${flow.id}\0${key}`, async () => {
      let value: unknown;
      switch (type) {
        case 'clear':
          await platform.store.setFlowValue(flow.id, key, undefined);
          return undefined;
        case 'template':
          value = rendered();
          break;
        case 'json':
          value = renderJson(String(config.value), payload);
          break;
        case 'number':
          value = toNumber(rendered(), 'value');
          break;
        case 'path':
          value = lookup(payload, config.valuePath as string);
          break;
        case 'incr':
        case 'decr': {
          const by = toNumber(rendered(), 'value');
          const current = (await platform.store.getFlowValue(flow.id, key)) ?? 0;
          const base = toNumber(current, `the stored value of ${key}`);
          value = type === 'incr' ? base + by : base - by;
          break;
        }
      }
      if (value === undefined) {
        await platform.store.setFlowValue(flow.id, key, undefined);
        return undefined;
      }
      const size = Buffer.byteLength(JSON.stringify(value));
      if (size > MAX_VALUE_BYTES) {
        throw new GatehouseError(
          'Validation',
          `the value for key ${JSON.stringify(key)} is ${size} bytes as JSON; at most ${MAX_VALUE_BYTES}`,
        );
      }
      await platform.store.setFlowValue(flow.id, key, value);
      return value;
    });
    const resultPath = config.resultPath as string | undefined;
    if (resultPath) setPath(payload, resultPath, stored);
    return 0;
  },
});

registerNode({
  type: 'GetValueNode',
  outputs: 1,
  validate: (config, problem) => {
    if (config.getAll === true) problem('getAll', 'is not supported; read keys one at a time with keyName');
    requireString(config, 'keyName', problem);
    checkTemplate(config, 'keyName', problem);
    requireString(config, 'valuePath', problem);
    const type = oneOf(config, 'defaultValueType', DEFAULT_TYPES, 'template', problem);
    if (config.defaultValue !== undefined) {
      if (typeof config.defaultValue !== 'string') problem('defaultValue', 'must be a string');
      else if (type !== 'path') checkTemplate(config, 'defaultValue', problem);
    }
  },
  run: async (config, ctx) => {
    const { payload, platform, flow } = ctx;
    const key = renderKey(config.keyName as string, payload);
    let value = await platform.store.getFlowValue(flow.id, key);
    const fallback = config.defaultValue as string | undefined;
    if (value === undefined && fallback !== undefined) {
      switch (config.defaultValueType ?? 'template') {
        case 'json':
          value = renderJson(fallback, payload);
          break;
        case 'path':
          value = lookup(payload, fallback);
          break;
        default:
          value = renderString(fallback, payload);
      }
    }
    setPath(payload, config.valuePath as string, value);
    return 0;
  },
});
