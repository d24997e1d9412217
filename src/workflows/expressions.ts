/**
 * Expressions of Conditional, Switch and Math nodes: parsed by jsep (a maintained expression
 * parser) and evaluated here over its syntax tree, which admits only literals, payload lookups,
 * the operators below and a fixed set of math functions. Nothing is ever turned into code: no
 * eval, no Function, no vm. Lookups read own properties of plain data only, so `constructor`,
 * `__proto__` and the like are undefined, never a door to the runtime.
 *
 * As in Losant, an expression may hold `{{path}}` templates. A template inside quotes
 * (`'{{data.name}}' === 'x'`) becomes a string literal of its value; anywhere else it becomes a
 * reference to its value. Values are never pasted in as source text, so a device cannot change
 * the expression by what it reports.
 */
import jsepModule from 'jsep';
import { lookup, renderString } from './templates.js';

type Jsep = typeof jsepModule;
const jsep: Jsep = (jsepModule as unknown as { default?: Jsep }).default ?? jsepModule;

/** Longest expression text accepted, after templates are replaced. */
export const MAX_EXPRESSION_LENGTH = 4096;
/** Deepest nesting of parentheses, brackets and calls accepted. */
const MAX_DEPTH = 64;

export class ExpressionError extends Error {
  override name = 'ExpressionError';
}

const MATH: Record<string, (...args: number[]) => number> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  round: Math.round,
  trunc: Math.trunc,
  sign: Math.sign,
  min: Math.min,
  max: Math.max,
  pow: Math.pow,
  sqrt: Math.sqrt,
  cbrt: Math.cbrt,
  exp: Math.exp,
  log: Math.log,
  log10: Math.log10,
  log2: Math.log2,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  atan2: Math.atan2,
  hypot: Math.hypot,
};
export const EXPRESSION_FUNCTIONS = Object.keys(MATH);
const CONSTANTS: Record<string, unknown> = { true: true, false: false, null: null, PI: Math.PI, E: Math.E };

type Ast = jsepModule.Expression;

/** A parsed expression, ready to evaluate against payloads. */
export interface CompiledExpression {
  evaluate(payload: unknown): unknown;
}

/** Whether an expression parses (templates allowed); the reason when it does not. */
export function expressionProblem(source: string): string | undefined {
  try {
    compile(source);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Renders the templates of `source` for `payload`, then evaluates it. */
export function evaluateExpression(source: string, payload: unknown): unknown {
  const { ast, slots } = compile(source);
  const values = slots.map((slot) => {
    const value = slot.path !== undefined ? lookup(payload, slot.path) : renderString(`{{${slot.inner}}}`, payload);
    return slot.quoted ? (value === undefined || value === null ? '' : String(value)) : value;
  });
  return evaluate(ast, payload, values, 0);
}

/** One `{{...}}` of an expression: a payload path, or anything else Handlebars renders. */
interface Slot {
  inner: string;
  path: string | undefined;
  /** Inside quotes: the value's text, as a string. */
  quoted: boolean;
}

/** Parsed expressions by source: a flow's expressions are parsed once, not at every run. */
const compiledExpressions = new Map<string, { ast: Ast; slots: Slot[] }>();
const MAX_COMPILED = 5_000;

/**
 * Parses an expression. Each `{{...}}` becomes a reference `__vN` to its value (inside quotes:
 * to its value's text), so the parsed tree is the same whatever the payload holds.
 */
function compile(source: string): { ast: Ast; slots: Slot[] } {
  const known = compiledExpressions.get(source);
  if (known) return known;
  const slots: Slot[] = [];
  const text = source.replace(/(['"]?)\{\{([^}]*)\}\}\1/g, (_all, quote: string, inner: string) => {
    const path = inner.trim();
    slots.push({ inner, path: PATH.test(path) ? path : undefined, quoted: quote !== '' });
    return `__v${slots.length - 1}`;
  });
  const compiled = { ast: parse(text), slots };
  if (compiledExpressions.size >= MAX_COMPILED) {
    compiledExpressions.delete(compiledExpressions.keys().next().value as string);
  }
  compiledExpressions.set(source, compiled);
  return compiled;
}

const PATH = /^[A-Za-z_$][\w$]*(\.[\w$]+|\.\[\d+\]|\[\d+\])*$/;

function parse(text: string): Ast {
  if (text.length > MAX_EXPRESSION_LENGTH) {
    throw new ExpressionError(`the expression is longer than ${MAX_EXPRESSION_LENGTH} characters`);
  }
  let depth = 0;
  for (const ch of text) {
    if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    if (depth > MAX_DEPTH) throw new ExpressionError(`the expression nests deeper than ${MAX_DEPTH} levels`);
  }
  if (text.trim() === '') throw new ExpressionError('the expression is empty');
  let ast: Ast;
  try {
    ast = jsep(text);
  } catch (err) {
    throw new ExpressionError(`the expression does not parse: ${(err as Error).message}`);
  }
  if (deeperThan(ast, MAX_DEPTH)) throw new ExpressionError(`the expression nests deeper than ${MAX_DEPTH} levels`);
  return ast;
}

/** Whether the syntax tree is deeper than `limit` (stops looking once it is). */
function deeperThan(node: unknown, limit: number): boolean {
  if (limit < 0) return true;
  if (node === null || typeof node !== 'object') return false;
  for (const [key, child] of Object.entries(node)) {
    if (key === 'type' || key === 'raw' || key === 'value') continue;
    const children = Array.isArray(child) ? child : [child];
    for (const c of children) if (deeperThan(c, limit - 1)) return true;
  }
  return false;
}

function evaluate(node: Ast, payload: unknown, values: unknown[], depth: number): unknown {
  if (depth > MAX_DEPTH) throw new ExpressionError(`the expression nests deeper than ${MAX_DEPTH} levels`);
  const next = (n: Ast) => evaluate(n, payload, values, depth + 1);
  switch (node.type) {
    case 'Literal':
      return (node as jsepModule.Literal).value;
    case 'Identifier': {
      const name = (node as jsepModule.Identifier).name;
      const ref = /^__v(\d+)$/.exec(name);
      if (ref) return values[Number(ref[1])];
      if (Object.hasOwn(CONSTANTS, name)) return CONSTANTS[name];
      return ownValue(payload, name);
    }
    case 'MemberExpression': {
      const m = node as jsepModule.MemberExpression;
      const object = next(m.object);
      const key = m.computed ? next(m.property) : (m.property as jsepModule.Identifier).name;
      return ownValue(object, key);
    }
    case 'UnaryExpression': {
      const u = node as jsepModule.UnaryExpression;
      const value = next(u.argument);
      switch (u.operator) {
        case '!':
          return !value;
        case '-':
          return -(value as number);
        case '+':
          return +(value as number);
        default:
          throw new ExpressionError(`the operator ${u.operator} is not supported`);
      }
    }
    case 'BinaryExpression': {
      const b = node as jsepModule.BinaryExpression;
      if (b.operator === '&&') return next(b.left) && next(b.right);
      if (b.operator === '||') return next(b.left) || next(b.right);
      return binary(b.operator, next(b.left), next(b.right));
    }
    case 'CallExpression': {
      const c = node as jsepModule.CallExpression;
      const callee = c.callee.type === 'Identifier' ? (c.callee as jsepModule.Identifier).name : undefined;
      const fn = callee !== undefined && Object.hasOwn(MATH, callee) ? MATH[callee] : undefined;
      if (!fn) {
        throw new ExpressionError(
          `only these functions may be called: ${EXPRESSION_FUNCTIONS.join(', ')}${callee ? ` (not ${callee})` : ''}`,
        );
      }
      if (c.arguments.length > 100) throw new ExpressionError('a function takes at most 100 arguments');
      return fn(...c.arguments.map((a) => Number(next(a))));
    }
    case 'ArrayExpression': {
      const a = node as jsepModule.ArrayExpression;
      if (a.elements.length > 1000) throw new ExpressionError('an array literal holds at most 1000 elements');
      return a.elements.map((e) => (e ? next(e) : undefined));
    }
    default:
      throw new ExpressionError(`${node.type} is not supported in an expression`);
  }
}

function binary(operator: string, left: unknown, right: unknown): unknown {
  const l = left as number;
  const r = right as number;
  switch (operator) {
    case '===':
      return left === right;
    case '!==':
      return left !== right;
    case '==':
      // Loose equality on plain values only: objects compare by identity anyway.
      // biome-ignore lint/suspicious/noDoubleEquals: the expression language has ==, as JavaScript does
      return left == right;
    case '!=':
      // biome-ignore lint/suspicious/noDoubleEquals: as above
      return left != right;
    case '>':
      return l > r;
    case '>=':
      return l >= r;
    case '<':
      return l < r;
    case '<=':
      return l <= r;
    case '+':
      if (typeof left === 'string' || typeof right === 'string') return clipString(String(left) + String(right));
      return l + r;
    case '-':
      return l - r;
    case '*':
      return l * r;
    case '/':
      return l / r;
    case '%':
      return l % r;
    default:
      throw new ExpressionError(`the operator ${operator} is not supported`);
  }
}

/** String concatenation is bounded: a loop of doublings cannot exhaust memory. */
function clipString(s: string): string {
  if (s.length > 1_000_000) throw new ExpressionError('a string in the expression grew past 1,000,000 characters');
  return s;
}

/** `object[key]` when it is an own property of an object or array; undefined otherwise. */
function ownValue(object: unknown, key: unknown): unknown {
  if (object === null || typeof object !== 'object') {
    if (typeof object === 'string' && key === 'length') return object.length;
    return undefined;
  }
  const k = typeof key === 'number' ? key : String(key);
  if (Array.isArray(object) && k === 'length') return object.length;
  return Object.hasOwn(object, k) ? (object as Record<string | number, unknown>)[k] : undefined;
}
