/**
 * Expressions and templates under hostile input: prototype access, constructors, the process,
 * deep nesting and huge repetition can neither reach the runtime nor hang it.
 */
import { describe, expect, it } from 'vitest';
import { evaluateExpression, expressionProblem } from '../../src/workflows/expressions.js';
import { lookup, renderJson, renderString, setPath, templateProblem } from '../../src/workflows/templates.js';

const payload = { data: { temperature: 31, name: 'fan', list: [1, 2, 3] }, working: {} as Record<string, unknown> };

describe('expressions', () => {
  it.each([
    ['{{data.temperature}} > 30', true],
    ['{{data.temperature}} > 30 && {{data.temperature}} < 31', false],
    ["'{{data.name}}' === 'fan'", true],
    ['data.temperature % 2 === 1', true],
    ['max(1, {{data.temperature}}, 7) - 1', 30],
    ['!({{data.missing}})', true],
    ['data.list[1] + data.list.length', 5],
    ['"a" + "b" == "ab"', true],
    ['(1 + 2) * 3 / 9', 1],
  ])('%s evaluates to %j', (source, expected) => {
    expect(evaluateExpression(source, payload)).toEqual(expected);
  });

  it('inserts a reported value as a value, never as source: a device cannot rewrite the expression', () => {
    const hostile = { data: { name: "x' || 1 || '", temperature: '1 || true' } };
    expect(evaluateExpression("'{{data.name}}' === 'fan'", hostile)).toBe(false);
    expect(evaluateExpression('{{data.temperature}} === 5', hostile)).toBe(false);
  });

  it.each([
    'constructor',
    'data.constructor',
    'data.constructor.constructor',
    'data["constructor"]["constructor"]("return process")()',
    '__proto__',
    'data.__proto__.polluted',
    'toString',
    'process',
    'globalThis',
    'this',
    'data.list.map',
  ])('%s reaches nothing of the runtime', (source) => {
    let result: unknown;
    try {
      result = evaluateExpression(source, payload);
    } catch (err) {
      expect((err as Error).name).toBe('ExpressionError');
      return;
    }
    expect(result).toBeUndefined();
  });

  it('refuses calls to anything but the math functions, assignments and statements', () => {
    for (const source of ['eval("1")', 'Function("x")', 'require("fs")', 'a = 1', 'x; y', 'data.list.push(4)']) {
      expect(() => evaluateExpression(source, payload), source).toThrow();
    }
    expect(payload.data.list).toEqual([1, 2, 3]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('bounds nesting, length and string growth instead of exhausting the stack or memory', () => {
    expect(expressionProblem(`${'('.repeat(2000)}1${')'.repeat(2000)}`)).toMatch(/deeper than 64/);
    expect(expressionProblem(`${'('.repeat(100_000)}1${')'.repeat(100_000)}`)).toMatch(/longer than 4096/);
    expect(expressionProblem(`${'1 + '.repeat(5000)}1`)).toMatch(/longer than 4096/);
    expect(expressionProblem(`${'!'.repeat(4000)}1`)).toMatch(/deeper than 64/);
    const big = { s: 'x'.repeat(600_000) };
    expect(() => evaluateExpression('s + s', big)).toThrow(/1,000,000/);
  });

  it('names what does not parse', () => {
    expect(expressionProblem('{{data.t}} > (')).toMatch(/does not parse/);
    expect(expressionProblem('')).toMatch(/empty/);
    expect(expressionProblem('{{data.t}} > 3')).toBeUndefined();
  });
});

describe('templates', () => {
  it('render lookups and the documented helpers', () => {
    expect(renderString('{{data.name}} at {{format data.temperature "fixed" 1}}', payload)).toBe('fan at 31.0');
    expect(renderString('{{#if (gt data.temperature 30)}}hot{{else}}ok{{/if}}', payload)).toBe('hot');
    expect(renderString('{{upper data.name}} {{defaultTo data.none "n/a"}} {{add 1 2}}', payload)).toBe('FAN n/a 3');
    expect(renderJson('{"t": {{data.temperature}}, "all": {{jsonEncode data.list}}}', payload)).toEqual({
      t: 31,
      all: [1, 2, 3],
    });
  });

  it('reach no prototype, constructor or process', () => {
    for (const t of [
      '{{constructor}}',
      '{{data.constructor.name}}',
      '{{__proto__}}',
      '{{lookup data "constructor"}}',
      '{{process.env.HOME}}',
    ]) {
      expect(renderString(t, payload), t).toBe('');
    }
  });

  it('stop a render that repeats too often, or grows too large', () => {
    const wide = { items: Array.from({ length: 200 }, (_, i) => i) };
    expect(() => renderString('{{#each items}}{{#each ../items}}.{{/each}}{{/each}}', wide)).toThrow(
      /repeats more than/,
    );
    const big = { s: 'x'.repeat(400_000) };
    expect(() => renderString('{{s}}{{s}}{{s}}', big)).toThrow(/more than 1000000 characters/);
  });

  it('name a template that does not parse', () => {
    expect(templateProblem('{{#if}}')).toMatch(/does not parse/);
    expect(templateProblem('{"t":{{data.t}}}')).toBeUndefined();
  });

  it('write payload paths without touching prototypes', () => {
    const target: Record<string, unknown> = {};
    setPath(target, 'working.a.b', 1);
    expect(target).toEqual({ working: { a: { b: 1 } } });
    expect(() => setPath(target, '__proto__.polluted', 1)).toThrow(/reserved/);
    expect(() => setPath(target, 'a.constructor.prototype.x', 1)).toThrow(/reserved/);
    expect(lookup(target, 'working.a.constructor')).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
