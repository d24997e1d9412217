/** Trigger validation and matching without a server: every problem names the field. */
import { describe, expect, it } from 'vitest';
import type { Device } from '../../src/domain/model.js';
import type { FlowTrigger } from '../../src/workflows/definition.js';
import { ManualTimers } from '../../src/workflows/timers.js';
import {
  cronProblem,
  deviceMatches,
  isTimeZone,
  mqttTopicFilter,
  validateTrigger,
} from '../../src/workflows/triggers.js';

const ID = '0123456789abcdef01234567';

function problems(trigger: Partial<FlowTrigger> & { type: string }): string[] {
  const found: string[] = [];
  validateTrigger({ config: {}, outputIds: [[]], ...trigger }, (field, message) => found.push(`${field} ${message}`));
  return found;
}

describe('trigger validation', () => {
  it('accepts each supported trigger in its Losant shape', () => {
    for (const trigger of [
      { type: 'deviceIdConnect', key: ID },
      { type: 'deviceTagConnect', key: 'site/' },
      { type: 'deviceIdDisconnect', key: ID },
      { type: 'deviceTagDisconnect', key: '/north' },
      { type: 'deviceIdInactivity', key: ID, config: { seconds: 7200 } },
      { type: 'deviceTagInactivity', key: 'fleet/trucks', config: { seconds: 1 } },
      { type: 'timer', config: { seconds: 300 } },
      { type: 'timer', config: { cron: '0 0 9 * * 1,2,3,4,5', tz: 'America/New_York' } },
      { type: 'timer', config: { cron: '0 9 * * 1-5' } },
      { type: 'timer', config: { cron: '@daily', tz: 'UTC' } },
      { type: 'webhook', key: ID },
      { type: 'mqttTopic', config: { topic: 'custom/sensors/+/temperature' } },
      { type: 'mqttTopic', key: 'custom/#' },
    ]) {
      expect([trigger, problems(trigger)]).toEqual([trigger, []]);
    }
  });

  it('names the field of each problem', () => {
    expect(problems({ type: 'deviceIdConnect', key: 'x' })).toEqual(['key must be a device id (24 hex characters)']);
    expect(problems({ type: 'deviceTagInactivity', key: 'a/b', config: { seconds: -1 } })[0]).toMatch(
      /^config\/seconds/,
    );
    expect(problems({ type: 'timer', config: { seconds: 0 } })[0]).toMatch(/^config\/seconds/);
    expect(problems({ type: 'timer', config: { seconds: 5, cron: '* * * * *' } })[0]).toMatch(/^config give/);
    expect(problems({ type: 'timer', config: { cron: '* * *' } })[0]).toMatch(/^config\/cron must have 5 fields/);
    expect(problems({ type: 'timer', config: { cron: '99 * * * *' } })[0]).toMatch(/^config\/cron is not a valid/);
    expect(problems({ type: 'timer', config: { cron: '* * * * *', tz: 'Nowhere/City' } })[0]).toMatch(/^config\/tz/);
    expect(problems({ type: 'webhook', key: 'door' })[0]).toMatch(/^key must be a webhook id/);
    for (const topic of ['losant/x/state', 'losant/#', '#', '+', '$SYS/#', 'a/b#', 'a/#/b', '']) {
      expect([topic, problems({ type: 'mqttTopic', config: { topic } })[0]]).toEqual([
        topic,
        expect.stringMatching(/^config\/topic/),
      ]);
    }
  });

  it('knows time zones and cron patterns as croner reads them', () => {
    expect(isTimeZone('Europe/Berlin')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
    expect(cronProblem('*/5 * * * * *', 'UTC')).toBeUndefined();
    expect(cronProblem('0 0 31 2 *', 'UTC')).toBeDefined(); // never happens
  });

  it('matches devices by id and by tag, and reads the topic from config or key', () => {
    const device = { id: ID, tags: [{ key: 'site', value: 'north' }] } as Device;
    expect(deviceMatches({ type: 'deviceIdConnect', key: ID, config: {}, outputIds: [] }, device)).toBe(true);
    expect(deviceMatches({ type: 'deviceTagDisconnect', key: 'site/', config: {}, outputIds: [] }, device)).toBe(true);
    expect(deviceMatches({ type: 'deviceTagDisconnect', key: '/south', config: {}, outputIds: [] }, device)).toBe(
      false,
    );
    expect(deviceMatches({ type: 'timer', key: ID, config: {}, outputIds: [] }, device)).toBe(false);
    expect(mqttTopicFilter({ type: 'mqttTopic', key: 'a/b', config: {}, outputIds: [] })).toBe('a/b');
    expect(mqttTopicFilter({ type: 'mqttTopic', key: 'a/b', config: { topic: 'c/+' }, outputIds: [] })).toBe('c/+');
  });

  it('drives timers by hand', () => {
    const timers = new ManualTimers();
    let fired = 0;
    const stop = timers.every(1000, () => fired++);
    timers.cron('0 9 * * *', 'UTC', () => fired++);
    expect(timers.fire(1000)).toBe(1);
    expect(timers.fire()).toBe(2);
    stop();
    expect(timers.fire()).toBe(1);
    expect(fired).toBe(4);
  });
});
