import { describe, expect, it } from 'vitest';
import { RetainedBudget, scopeTopic, unscopeTopic } from '../../src/broker/custom-topics.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbb';

describe('custom topic scope', () => {
  it.each(['plant/valve', '/leading/slash', 'a', 'trailing/', 'plant/+', '#', 'ünïcode/топик'])(
    'round-trips %j',
    (topic) => {
      expect(unscopeTopic(scopeTopic(A, topic))).toEqual({ applicationId: A, topic });
    },
  );

  it.each([
    ['a client topic', 'plant/valve'],
    ['the sink', '$gatehouse/refused'],
    ['$SYS', `$SYS/${A}/new/clients`],
    ['a malformed id', '$app/not-an-id/topic'],
    ['an uppercase id', `$app/${A.toUpperCase()}/topic`],
    ['no topic after the id', `$app/${A}/`],
    ['no slash after the id', `$app/${A}x/topic`],
  ])('is not a scoped topic: %s', (_name, topic) => {
    expect(unscopeTopic(topic)).toBeUndefined();
  });
});

describe('RetainedBudget', () => {
  const limits = { messages: 3, bytes: 100 };

  it('admits within the limits and refuses past either, changing nothing', () => {
    const budget = new RetainedBudget(limits);
    expect(budget.admit(A, 't1', 40)).toBeNull();
    expect(budget.admit(A, 't2', 40)).toBeNull();
    expect(budget.admit(A, 't3', 21)).toMatch(/would exceed 3 messages or 100 bytes/);
    expect(budget.usage(A)).toEqual({ messages: 2, bytes: 80 });
    expect(budget.admit(A, 't3', 20)).toBeNull();
    expect(budget.admit(A, 't4', 1)).toMatch(/would exceed/);
    expect(budget.usage(A)).toEqual({ messages: 3, bytes: 100 });
  });

  it('counts a replaced message once, with its new size', () => {
    const budget = new RetainedBudget(limits);
    budget.admit(A, 't1', 90);
    expect(budget.admit(A, 't1', 100)).toBeNull();
    expect(budget.usage(A)).toEqual({ messages: 1, bytes: 100 });
    expect(budget.admit(A, 't1', 101)).toMatch(/would exceed/);
    expect(budget.usage(A)).toEqual({ messages: 1, bytes: 100 });
  });

  it('frees room when an empty retained message removes one, and ignores removing what is not there', () => {
    const budget = new RetainedBudget(limits);
    budget.admit(A, 't1', 100);
    expect(budget.admit(A, 'nothing', 0)).toBeNull();
    expect(budget.admit(A, 't1', 0)).toBeNull();
    expect(budget.usage(A)).toEqual({ messages: 0, bytes: 0 });
    expect(budget.admit(A, 't2', 100)).toBeNull();
  });

  it('keeps applications apart and releases one whole', () => {
    const budget = new RetainedBudget(limits);
    budget.admit(A, 't1', 100);
    expect(budget.admit(B, 't1', 100)).toBeNull();
    expect(budget.release(A)).toEqual(['t1']);
    expect(budget.usage(A)).toEqual({ messages: 0, bytes: 0 });
    expect(budget.usage(B)).toEqual({ messages: 1, bytes: 100 });
  });
});
