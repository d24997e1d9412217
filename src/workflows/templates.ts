/**
 * String and JSON templates (Handlebars) and payload paths. Templates render against a run's
 * payload with the helpers listed in docs/workflows.md. Handlebars itself refuses prototype
 * lookups; on top of that every render has a budget of block iterations and of output size, so
 * a template cannot hang a run or fill memory however large the payload it meets.
 */
import Handlebars from 'handlebars';

/** Iterations of `each` blocks in one render. */
const MAX_ITERATIONS = 10_000;
/** Characters a rendered template may have. */
export const MAX_RENDERED_LENGTH = 1_000_000;
/** Compiled templates kept (flows reuse theirs). */
const CACHE_SIZE = 2_000;

export class TemplateError extends Error {
  override name = 'TemplateError';
}

const hb = Handlebars.create();
let iterations = 0;

const num = (v: unknown) => Number(v);
const HELPERS: Record<string, (...args: unknown[]) => unknown> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  gt: (a, b) => num(a) > num(b),
  gte: (a, b) => num(a) >= num(b),
  lt: (a, b) => num(a) < num(b),
  lte: (a, b) => num(a) <= num(b),
  and: (a, b) => Boolean(a) && Boolean(b),
  or: (a, b) => Boolean(a) || Boolean(b),
  not: (a) => !a,
  add: (a, b) => num(a) + num(b),
  subtract: (a, b) => num(a) - num(b),
  multiply: (a, b) => num(a) * num(b),
  divide: (a, b) => num(a) / num(b),
  mod: (a, b) => num(a) % num(b),
  lower: (s) => String(s ?? '').toLowerCase(),
  upper: (s) => String(s ?? '').toUpperCase(),
  defaultTo: (v, fallback) => (v === undefined || v === null || v === '' ? fallback : v),
  jsonEncode: (v) => JSON.stringify(v === undefined ? null : v),
  length: (v) => (typeof v === 'string' || Array.isArray(v) ? v.length : 0),
  /** `format value "fixed" digits`, `format value "percent"`, `format time "iso"`. */
  format: (value, style, digits) => {
    const d = typeof digits === 'number' ? Math.min(Math.max(Math.trunc(digits), 0), 20) : 2;
    switch (style) {
      case 'percent':
        return `${(num(value) * 100).toFixed(typeof digits === 'number' ? d : 0)}%`;
      case 'iso':
        return new Date(num(value)).toISOString();
      case 'fixed':
        return num(value).toFixed(d);
      default:
        return typeof style === 'number' ? num(value).toFixed(Math.min(Math.max(style, 0), 20)) : String(value);
    }
  },
};
for (const [name, fn] of Object.entries(HELPERS)) {
  // Handlebars passes its options object last; the helpers take only their own arguments.
  hb.registerHelper(name, (...args: unknown[]) => fn(...args.slice(0, -1)));
}

// `each`, counted: past the budget the render stops with an error.
const builtInEach = hb.helpers.each as Handlebars.HelperDelegate;
hb.registerHelper('each', function (this: unknown, context: unknown, options: Handlebars.HelperOptions) {
  const counting: Handlebars.HelperOptions = {
    ...options,
    fn: (item: unknown, opts?: Handlebars.RuntimeOptions) => {
      if (++iterations > MAX_ITERATIONS) {
        throw new TemplateError(`the template repeats more than ${MAX_ITERATIONS} times`);
      }
      return options.fn(item, opts);
    },
  };
  return builtInEach.call(this, context, counting);
});
export const TEMPLATE_HELPERS = [...Object.keys(HELPERS), 'if', 'unless', 'each', 'with', 'lookup'];

const cache = new Map<string, HandlebarsTemplateDelegate>();

/**
 * JSON templates close an object right after a value (`{"t":{{data.t}}}`), which Handlebars
 * would read as the end of a triple-stash: a brace right after a double-stash stays text.
 */
function normalize(template: string): string {
  return template.replace(/(^|[^{])\{\{([^{}]*)\}\}\}/g, '$1{{$2}}{{!}}}');
}

function compiled(template: string): HandlebarsTemplateDelegate {
  let fn = cache.get(template);
  if (!fn) {
    fn = hb.compile(normalize(template), { noEscape: true, strict: false });
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(template, fn);
  }
  return fn;
}

/** Whether a template parses; the reason when it does not. */
export function templateProblem(template: string): string | undefined {
  try {
    hb.parse(normalize(template));
    return undefined;
  } catch (err) {
    return `the template does not parse: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** A string template rendered against the payload. A value without `{{` is returned as it is. */
export function renderString(template: string, payload: unknown): string {
  if (!template.includes('{{')) return template;
  iterations = 0;
  let out: string;
  try {
    out = compiled(template)(payload);
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    throw new TemplateError(`the template failed: ${(err as Error).message.split('\n')[0]}`);
  }
  if (out.length > MAX_RENDERED_LENGTH) {
    throw new TemplateError(`the template rendered more than ${MAX_RENDERED_LENGTH} characters`);
  }
  return out;
}

/** A JSON template: rendered, then parsed; a parse failure names the template. */
export function renderJson(template: string, payload: unknown): unknown {
  const text = renderString(template, payload);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TemplateError(`the JSON template did not render JSON: ${(err as Error).message}`);
  }
}

const PATH_PART = /([^.[\]]+)|\[(\d+)\]/g;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** Paths already split: a flow reads the same few paths on every run. */
const splitPaths = new Map<string, readonly string[]>();

/** The parts of a payload path such as `data.readings[0].value`. */
export function pathParts(path: string): readonly string[] {
  let parts = splitPaths.get(path);
  if (!parts) {
    const split: string[] = [];
    for (const m of path.matchAll(PATH_PART)) split.push((m[1] ?? m[2]) as string);
    parts = Object.freeze(split);
    if (splitPaths.size >= CACHE_SIZE) splitPaths.delete(splitPaths.keys().next().value as string);
    splitPaths.set(path, parts);
  }
  return parts;
}

/** Reads a payload path: own properties only, undefined where any step is missing. */
export function lookup(payload: unknown, path: string): unknown {
  let here: unknown = payload;
  for (const part of pathParts(path)) {
    if (here === null || typeof here !== 'object' || !Object.hasOwn(here, part)) return undefined;
    here = (here as Record<string, unknown>)[part];
  }
  return here;
}

/** Writes a payload path, making objects on the way; refuses prototype names. */
export function setPath(payload: Record<string, unknown>, path: string, value: unknown): void {
  const parts = pathParts(path);
  if (parts.length === 0) throw new TemplateError(`"${path}" is not a payload path`);
  if (parts.some((p) => FORBIDDEN.has(p))) throw new TemplateError(`the path ${path} names a reserved key`);
  let here: Record<string, unknown> = payload;
  for (const part of parts.slice(0, -1)) {
    const next = Object.hasOwn(here, part) ? here[part] : undefined;
    if (next === null || typeof next !== 'object') here[part] = {};
    here = here[part] as Record<string, unknown>;
  }
  here[parts.at(-1) as string] = value;
}

/** Removes a payload path, if present. */
export function removePath(payload: Record<string, unknown>, path: string): void {
  const parts = pathParts(path);
  const parent = parts.length > 1 ? lookup(payload, parts.slice(0, -1).join('.')) : payload;
  const last = parts.at(-1);
  if (last !== undefined && parent !== null && typeof parent === 'object' && Object.hasOwn(parent, last)) {
    delete (parent as Record<string, unknown>)[last];
  }
}
