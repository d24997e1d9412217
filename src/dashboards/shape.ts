/**
 * A small description of JSON shapes, and the check of a value against one that names the
 * path of every problem (`config/segments/0/attribute must be a string`). Block configs are
 * checked with it rather than with the route's JSON schema: a union of twenty block shapes
 * gives Ajv errors that name every branch, where this names the one field at fault.
 */

export type Shape =
  | { kind: 'string'; max: number; min?: number; pattern?: RegExp; hint?: string }
  | { kind: 'boolean' }
  | { kind: 'number'; min?: number; max?: number; integer?: boolean }
  /** A number, or a string (Losant lets these be templates such as `{{ctx.max}}`). */
  | { kind: 'numberOrString'; min?: number; max?: number; integer?: boolean }
  | { kind: 'enum'; values: readonly (string | number)[] }
  | { kind: 'array'; of: Shape; max: number; min?: number }
  | { kind: 'object'; fields: Record<string, Field> }
  | { kind: 'oneOf'; shapes: Shape[]; hint: string }
  | { kind: 'null' };

export interface Field {
  shape: Shape;
  required?: boolean;
}

/** Shorthands, so that the block catalog reads as a table. */
export const str = (max = 255, extra: Partial<Extract<Shape, { kind: 'string' }>> = {}): Shape => ({
  kind: 'string',
  max,
  ...extra,
});
export const bool: Shape = { kind: 'boolean' };
export const num = (extra: Omit<Extract<Shape, { kind: 'number' }>, 'kind'> = {}): Shape => ({
  kind: 'number',
  ...extra,
});
export const numOrStr = (extra: Omit<Extract<Shape, { kind: 'numberOrString' }>, 'kind'> = {}): Shape => ({
  kind: 'numberOrString',
  ...extra,
});
export const oneOfValues = (values: readonly (string | number)[]): Shape => ({ kind: 'enum', values });
export const arrayOf = (of: Shape, max: number, min = 0): Shape => ({ kind: 'array', of, max, min });
export const object = (fields: Record<string, Shape | Field>): Shape => ({
  kind: 'object',
  fields: Object.fromEntries(
    Object.entries(fields).map(([name, f]) => [name, 'shape' in f ? f : { shape: f as Shape }]),
  ),
});
export const required = (shape: Shape): Field => ({ shape, required: true });

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(shape: Shape): string {
  switch (shape.kind) {
    case 'string':
      return shape.hint ?? 'a string';
    case 'boolean':
      return 'true or false';
    case 'number':
      return shape.integer ? 'an integer' : 'a number';
    case 'numberOrString':
      return 'a number or a string';
    case 'enum':
      return `one of ${shape.values.join(', ')}`;
    case 'array':
      return 'an array';
    case 'object':
      return 'an object';
    case 'oneOf':
      return shape.hint;
    case 'null':
      return 'null';
  }
}

/** What is wrong with a number, or undefined. */
function numberProblem(value: number, shape: { min?: number; max?: number; integer?: boolean }): string | undefined {
  if (!Number.isFinite(value)) return 'must be a finite number';
  if (shape.integer && !Number.isInteger(value)) return 'must be an integer';
  if (shape.min !== undefined && value < shape.min) return `must be at least ${shape.min}`;
  if (shape.max !== undefined && value > shape.max) return `must be at most ${shape.max}`;
  return undefined;
}

/** Whether `value` fits `shape`, without reporting (for `oneOf`). */
function fits(value: unknown, shape: Shape): boolean {
  let ok = true;
  check(value, shape, '', () => {
    ok = false;
  });
  return ok;
}

/** What is wrong with a value of a shape that holds no other values, or undefined. */
function leafProblem(value: unknown, shape: Exclude<Shape, { kind: 'array' | 'object' }>): string | undefined {
  switch (shape.kind) {
    case 'string':
      if (typeof value !== 'string') return `must be ${describe(shape)}`;
      if (value.length > shape.max) return `must be at most ${shape.max} characters`;
      if (shape.min !== undefined && value.length < shape.min) {
        return `must be at least ${shape.min} character${shape.min === 1 ? '' : 's'}`;
      }
      if (shape.pattern && !shape.pattern.test(value)) return `must be ${describe(shape)}`;
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'must be true or false';
    case 'number':
      return typeof value === 'number' ? numberProblem(value, shape) : `must be ${describe(shape)}`;
    case 'numberOrString':
      if (typeof value === 'string') return value.length > 255 ? 'must be at most 255 characters' : undefined;
      return typeof value === 'number' ? numberProblem(value, shape) : 'must be a number or a string';
    case 'enum':
      return shape.values.includes(value as string | number) ? undefined : `must be ${describe(shape)}`;
    case 'null':
      return value === null ? undefined : 'must be null';
    case 'oneOf':
      return shape.shapes.some((s) => fits(value, s)) ? undefined : `must be ${shape.hint}`;
  }
}

/** Reports each problem of `value` against `shape` as a sentence starting with its path. */
export function check(value: unknown, shape: Shape, path: string, problem: (message: string) => void): void {
  if (shape.kind === 'array') {
    if (!Array.isArray(value)) problem(`${path} must be an array`);
    else if (value.length > shape.max) problem(`${path} must hold at most ${shape.max} items`);
    else if (shape.min !== undefined && value.length < shape.min) {
      problem(`${path} must hold at least ${shape.min} item${shape.min === 1 ? '' : 's'}`);
    } else {
      value.forEach((item, i) => {
        check(item, shape.of, `${path}/${i}`, problem);
      });
    }
  } else if (shape.kind === 'object') {
    if (!isRecord(value)) {
      problem(`${path} must be an object`);
      return;
    }
    for (const key of Object.keys(value)) {
      if (!Object.hasOwn(shape.fields, key)) problem(`${path} has an unknown property "${key}"`);
    }
    for (const [name, field] of Object.entries(shape.fields)) {
      const v = value[name];
      if (v !== undefined) check(v, field.shape, `${path}/${name}`, problem);
      else if (field.required) problem(`${path}/${name} is required`);
    }
  } else {
    const message = leafProblem(value, shape);
    if (message !== undefined) problem(`${path} ${message}`);
  }
}
