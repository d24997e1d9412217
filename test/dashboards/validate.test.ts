/**
 * The check of a dashboard's blocks on save: an example of every block type passes as written in
 * docs/dashboards.md, and each kind of mistake is refused naming the block and the field.
 */
import { describe, expect, it } from 'vitest';
import { GatehouseError } from '../../src/core/errors.js';
import { BLOCK_TYPES, type BlockInput } from '../../src/dashboards/model.js';
import { validBlocks } from '../../src/dashboards/validate.js';

const APP = 'a0a0a0a0a0a0a0a0a0a0a0a0';
const DEVICE = 'd0d0d0d0d0d0d0d0d0d0d0d0';
const FLOW = 'f0f0f0f0f0f0f0f0f0f0f0f0';

const at = (startY: number) => ({ startX: 0, startY, width: 4, height: 1 });

/** One block of each type, with the fields Losant's documentation uses. */
const EXAMPLES: Record<(typeof BLOCK_TYPES)[number], Record<string, unknown>> = {
  graph: {
    duration: '{{dashboard.duration}}',
    resolution: 300_000,
    segments: [{ deviceIds: [DEVICE], attribute: 'temp', aggregation: 'NONE', lineType: 'step', dotWeight: 2 }],
    yAxes: [{ id: 'a', scale: 'log', stacked: false }],
  },
  gauge: {
    gaugeType: 'number',
    precision: 2,
    precisionType: 'floating',
    segment: { deviceTags: [{ key: 'site' }], attribute: 'temp', aggregation: 'MEAN' },
  },
  indicator: {
    realTime: true,
    segments: [{ query: '{"tags.site":{"$eq":"north"}}', attribute: 'on', aggregation: 'LAST' }],
    conditions: [{ condition: '{{value-0}} == true', label: 'On', color: 'green', shape: 'circle' }],
    defaultCondition: { label: 'Off', color: 'grey' },
  },
  'device-list': {
    filter: { tags: [{ key: 'site', value: 'north' }] },
    sortField: 'name',
    sortDirection: 'asc',
    additionalAttributes: null,
    deviceLinkType: 'default',
    columns: [
      { type: 'connectionStatus', headerTemplate: 'Status' },
      { type: 'tag', source: 'site', headerTemplate: 'Site', rowTemplate: '{{format value}}' },
    ],
  },
  'device-state-table': {
    deviceIds: ['{{ctx.deviceId}}'],
    duration: 0,
    sortIndex: 1,
    sortDirection: -1,
    attributes: ['temp'],
    columns: [
      { type: 'deviceName', headerTemplate: 'Device', rowTemplate: '{{format value}}' },
      { type: 'attribute', attribute: 'temp', headerTemplate: 'Temp', rowTemplate: '{{format value}}' },
    ],
  },
  'device-log': { deviceIds: [DEVICE], includeDeviceInfo: true, maxResultsPerDevice: '20' },
  input: {
    defaultMode: 'unlocked',
    controls: [
      { type: 'range', id: 'r', templateId: 'level', min: 0, max: 10, step: 1, defaultValue: 5 },
      { type: 'select', id: 's', templateId: 'mode', options: [{ value: 'a', label: 'A' }], defaultValue: 'a' },
      {
        type: 'button',
        id: 'send',
        action: 'command',
        label: 'Send',
        commandName: 'setLevel',
        payload: '{"level": {{level}}}',
        deviceIds: [DEVICE],
        grid: { x: 0, y: 1, w: 4, h: 1 },
      },
      { type: 'button', id: 'run', action: 'workflow', workflowId: FLOW, buttonId: 'go', payload: '{}' },
    ],
  },
  gateway: { gatewayId: DEVICE, showPeripherals: false, includeConnectionInfo: true },
};

const blocks = (entries: Array<[string, Record<string, unknown>]>): BlockInput[] =>
  entries.map(([blockType, config], i) => ({ blockType, ...at(i), config }));

function problemOf(input: BlockInput[]): string {
  try {
    validBlocks(APP, input);
  } catch (err) {
    expect(err).toBeInstanceOf(GatehouseError);
    expect((err as GatehouseError).type).toBe('Validation');
    return (err as Error).message;
  }
  throw new Error('expected the blocks to be refused');
}

describe('dashboard blocks', () => {
  it('accepts an example of every block type, giving each block an id', () => {
    const saved = validBlocks(APP, blocks(Object.entries(EXAMPLES)));
    expect(saved.map((b) => b.blockType)).toEqual([...BLOCK_TYPES]);
    expect(new Set(saved.map((b) => b.id)).size).toBe(BLOCK_TYPES.length);
    expect(saved[0]?.config).toEqual(EXAMPLES.graph);
  });

  it('keeps the ids given, and its own never clash with them', () => {
    const saved = validBlocks(APP, [
      { id: 'one', blockType: 'gateway', ...at(0), config: EXAMPLES.gateway },
      { blockType: 'gateway', ...at(1), config: EXAMPLES.gateway },
    ]);
    expect(saved[0]?.id).toBe('one');
    expect(saved[1]?.id).toMatch(/^[0-9a-f]{12}$/);
  });

  it.each([
    ['graph', { segments: [] }, 'config/segments must hold at least 1 item'],
    [
      'graph',
      { segments: [{ deviceIds: [DEVICE, DEVICE], attribute: 't', aggregation: 'NONE' }] },
      'config/segments/0/aggregation NONE needs exactly one device',
    ],
    [
      'graph',
      { segments: [{ attribute: 't' }], yAxes: [{ id: 'a' }, { id: 'b' }] },
      'config/segments/0/yAxisId is required when config/yAxes holds more than one axis',
    ],
    [
      'graph',
      { segments: [{ attribute: 't' }], decorators: [{ type: 'line', yAxisId: 'z', y1: 1 }] },
      'config/decorators/0/yAxisId names axis "z"',
    ],
    [
      'graph',
      { segments: [{ attribute: 't', deviceIds: ['nope'] }] },
      'config/segments/0/deviceIds/0 must be a device id',
    ],
    ['gauge', { gaugeType: 'tank', segment: { attribute: 't' } }, 'config/gaugeMin is required for gaugeType tank'],
    ['gauge', { segment: { attribute: 't' }, precision: 1.5 }, 'config/precision must be an integer'],
    [
      'indicator',
      { segments: [{ attribute: 't' }], conditions: [{ shape: 'star' }] },
      'config/conditions/0/shape must be one of',
    ],
    [
      'device-list',
      { columns: [{ type: 'attribute' }] },
      'config/columns/0/source is required for a column of type attribute',
    ],
    [
      'device-list',
      { columns: [{ type: 'name' }], additionalAttributes: 'all' },
      'config/additionalAttributes must be null or an array',
    ],
    ['device-state-table', { columns: [{ type: 'attribute' }] }, 'config/columns/0/attribute is required'],
    [
      'device-state-table',
      { columns: [{ type: 'deviceId' }], sortDirection: 2 },
      'config/sortDirection must be one of -1, 0, 1',
    ],
    ['device-log', { maxResultsPerDevice: 500 }, 'config/maxResultsPerDevice must be at most 100'],
    ['input', { controls: [{ type: 'button', label: 'Go' }] }, 'config/controls/0/action is required for a button'],
    [
      'input',
      { controls: [{ type: 'button', action: 'workflow', buttonId: 'go' }] },
      'config/controls/0/workflowId must be the id of a flow',
    ],
    [
      'input',
      { controls: [{ type: 'text', grid: { x: 3, y: 0, w: 2, h: 1 } }] },
      'config/controls/0/grid: x + w must not exceed 4',
    ],
    ['input', { controls: [{ type: 'slider' }] }, 'config/controls/0/type must be one of range, toggle'],
    ['gateway', {}, 'config/gatewayId is required'],
    ['gateway', { gatewayId: DEVICE, peripherals: true }, 'config has an unknown property "peripherals"'],
  ])('refuses a %s block with a wrong config: %s', (blockType, config, message) => {
    const text = problemOf([{ id: 'b', blockType, ...at(0), config }]);
    expect(text).toContain(`blocks/0 (id "b", ${blockType}): ${message}`);
  });

  it('refuses more than 100 blocks, and bad positions', () => {
    const many = Array.from({ length: 101 }, (_, i) => ({ blockType: 'gateway', ...at(i), config: EXAMPLES.gateway }));
    expect(problemOf(many)).toContain('blocks: at most 100 blocks');
    const place = (p: Partial<BlockInput>) =>
      problemOf([{ blockType: 'gateway', ...at(0), config: EXAMPLES.gateway, ...p }]);
    expect(place({ startX: -0.5, width: 1 })).toContain('blocks/0 (gateway): startX must be between 0 and 3.5');
    expect(place({ height: 0 })).toContain('height must be between 0.5 and 24');
    expect(place({ height: 25 })).toContain('height must be between 0.5 and 24');
    expect(place({ startY: 0.25 })).toContain('startY must be a multiple of 0.5');
    expect(place({ width: 5 })).toContain('width must be between 0.5 and 4');
    expect(place({ applicationId: DEVICE })).toContain(`applicationId must be the dashboard's application (${APP})`);
  });

  it('lists at most ten problems, and says how many more there are', () => {
    const bad = Array.from({ length: 12 }, (_, i) => ({ blockType: 'gateway', ...at(i), config: {} }));
    expect(problemOf(bad)).toMatch(/blocks\/9 .*\(and 2 more\)$/);
  });
});
