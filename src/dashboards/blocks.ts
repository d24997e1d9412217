/**
 * The config of each block type, field for field as Losant names them (docs/dashboards.md lists
 * them), and the checks a shape cannot say: a segment's axis exists, a button says what it sends.
 */
import { ID_PATTERN } from '../domain/ids.js';
import { AGGREGATIONS } from '../store/types.js';
import type { BlockType } from './model.js';
import { arrayOf, bool, check, num, numOrStr, object, oneOfValues, required, type Shape, str } from './shape.js';

const ID_RE = new RegExp(ID_PATTERN);
/** A device id, or a template the console fills from the context (`{{ctx.deviceId}}`). */
const DeviceRef: Shape = str(1024, {
  min: 1,
  pattern: new RegExp(`${ID_PATTERN}|\\{\\{[^}]*\\}\\}`),
  hint: 'a device id or a template such as {{ctx.deviceId}}',
});
const Color = str(64);
const Template = str(32_767);
/** Aggregations the data API computes (docs/data-queries.md); Losant's MEDIAN and STDDEV are not among them. */
const Aggregation = oneOfValues(AGGREGATIONS);
/** Milliseconds, or Losant's `{{dashboard.duration}}` and other templates. */
const Duration = numOrStr({ min: 0, integer: true });

/** Losant's device selectors: ids, tags (all must match) or an advanced query as JSON text. */
const Selectors = {
  deviceIds: arrayOf(DeviceRef, 100),
  deviceTags: arrayOf(object({ key: required(str(255, { min: 1 })), value: str(255), fromCtx: str(255) }), 100),
  query: str(32_767),
};

/** One attribute of the selected devices, reduced to one value (gauge, indicator). */
const ValueSegment = object({
  ...Selectors,
  attribute: required(str(255, { min: 1 })),
  aggregation: Aggregation,
  label: str(255),
  color: Color,
  expression: str(255),
});

const GraphSegment = object({
  ...Selectors,
  attribute: required(str(255, { min: 1 })),
  aggregation: Aggregation,
  graphType: oneOfValues(['line', 'bar', 'area']),
  label: str(255),
  color: Color,
  yAxisId: str(255),
  cumulative: bool,
  detectDataGaps: bool,
  expression: str(255),
  lineType: oneOfValues(['linear', 'monotone', 'step', 'stepBefore', 'stepAfter']),
  lineWeight: num({ integer: true, min: 0, max: 5 }),
  dotWeight: num({ integer: true, min: 0, max: 5 }),
  yAxisLabel: str(255),
  yAxisFormat: str(255),
  yAxisMin: numOrStr(),
  yAxisMax: numOrStr(),
});

const Condition = object({
  id: str(48),
  condition: str(2048),
  label: str(32_767),
  color: Color,
  imageUrl: str(32_767),
  shape: oneOfValues(['circle', 'square', 'triangle-down', 'triangle-up', 'octagon']),
});

const ControlGrid = object({
  x: required(num({ integer: true, min: 0, max: 3 })),
  y: required(num({ integer: true, min: 0, max: 1000 })),
  w: required(num({ integer: true, min: 1, max: 4 })),
  h: required(num({ integer: true, min: 1, max: 100 })),
});

const Control = object({
  type: required(oneOfValues(['range', 'toggle', 'text', 'select', 'help', 'button'])),
  id: str(48),
  templateId: str(64),
  label: str(512),
  color: Color,
  grid: ControlGrid,
  min: numOrStr(),
  max: numOrStr(),
  step: numOrStr(),
  defaultValue: { kind: 'oneOf', shapes: [num(), str(2048), bool], hint: 'a number, a string or true or false' },
  defaultQuery: object({ ...Selectors, attribute: str(255), aggregation: Aggregation }),
  includeLabel: bool,
  options: arrayOf(object({ value: required(str(255)), label: str(255) }), 500),
  help: str(32_767),
  // Buttons: what they send.
  action: oneOfValues(['command', 'workflow']),
  payload: str(32_767),
  commandName: str(255),
  workflowId: { kind: 'oneOf', shapes: [str(255), { kind: 'null' }], hint: 'a flow id or null' },
  buttonId: str(255),
  ...Selectors,
});

/** The config shape of each block type. */
export const BLOCK_CONFIGS: Record<BlockType, Shape> = {
  graph: object({
    realTime: bool,
    duration: Duration,
    resolution: Duration,
    disallowUserSelectedDuration: bool,
    hideLegend: bool,
    displayType: oneOfValues(['stick', 'line']),
    segments: required(arrayOf(GraphSegment, 100, 1)),
    yAxes: arrayOf(
      object({
        id: required(str(255, { min: 1 })),
        label: str(255),
        position: oneOfValues(['left', 'right', 'hidden']),
        scale: oneOfValues(['linear', 'log', 'sqrt']),
        min: numOrStr(),
        max: numOrStr(),
        format: str(255),
        stacked: bool,
      }),
      10,
    ),
    decorators: arrayOf(
      object({
        type: required(oneOfValues(['line', 'area'])),
        yAxisId: required(str(255)),
        y1: required(numOrStr()),
        y2: numOrStr(),
        label: str(255),
        color: Color,
        lineStyle: oneOfValues(['solid', 'dotted', 'dashed']),
        lineWeight: num({ integer: true, min: 0, max: 5 }),
      }),
      10,
    ),
  }),
  gauge: object({
    realTime: bool,
    duration: Duration,
    gaugeType: oneOfValues(['number', 'dial', 'battery', 'thermometer', 'tank', 'needle']),
    gaugeMin: numOrStr(),
    gaugeMax: numOrStr(),
    precision: numOrStr({ integer: true, min: 1, max: 21 }),
    precisionType: oneOfValues(['floating', 'significant']),
    displayAsPercentage: bool,
    segment: required(ValueSegment),
    conditions: arrayOf(Condition, 100),
  }),
  indicator: object({
    realTime: bool,
    duration: Duration,
    segments: required(arrayOf(ValueSegment, 100, 1)),
    conditions: arrayOf(Condition, 100),
    defaultCondition: Condition,
  }),
  'device-list': object({
    query: str(32_767),
    filter: {
      kind: 'oneOf',
      shapes: [str(255), object({ ids: arrayOf(DeviceRef, 100), tags: Selectors.deviceTags, searchParam: str(255) })],
      hint: 'a name pattern or an object of ids, tags and searchParam',
    },
    match: oneOfValues(['unfiltered', 'all', 'any']),
    sortField: oneOfValues(['id', 'name', 'creationDate', 'lastUpdated']),
    sortDirection: oneOfValues(['asc', 'desc', 'ASC', 'DESC', '']),
    showPublicFilter: bool,
    excludeConnectionInfo: bool,
    additionalAttributes: {
      kind: 'oneOf',
      shapes: [{ kind: 'null' }, arrayOf(str(255), 100)],
      hint: 'null or an array of attribute names',
    },
    deviceLinkType: oneOfValues(['default', 'custom']),
    deviceLinkUrl: str(2048),
    deviceLinkNewWindow: bool,
    columns: required(
      arrayOf(
        object({
          id: str(48),
          type: required(
            oneOfValues(['name', 'connectionStatus', 'attribute', 'tag', 'id', 'created', 'updated', 'custom']),
          ),
          source: str(255),
          headerTemplate: str(1024),
          rowTemplate: Template,
        }),
        100,
        1,
      ),
    ),
  }),
  'device-state-table': object({
    ...Selectors,
    duration: Duration,
    sortIndex: num({ integer: true, min: 0, max: 100 }),
    sortDirection: oneOfValues([-1, 0, 1]),
    attributes: arrayOf(str(255), 100),
    columns: required(
      arrayOf(
        object({
          id: str(48),
          type: required(oneOfValues(['attribute', 'timestamp', 'deviceName', 'deviceId', 'deviceTags'])),
          attribute: str(255),
          headerTemplate: str(1024),
          rowTemplate: Template,
        }),
        100,
        1,
      ),
    ),
  }),
  'device-log': object({
    ...Selectors,
    includeDeviceInfo: bool,
    maxResultsPerDevice: numOrStr({ integer: true, min: 1, max: 100 }),
  }),
  input: object({
    defaultMode: oneOfValues(['locked', 'unlocked']),
    controls: arrayOf(Control, 100),
  }),
  // Gatehouse's own: one gateway, its state and connection, and the peripherals it reports for.
  gateway: object({
    gatewayId: required(DeviceRef),
    showPeripherals: bool,
    attributes: arrayOf(str(255), 100),
    includeConnectionInfo: bool,
  }),
};

type Problem = (message: string) => void;
type Rec = Record<string, unknown>;
const arr = (v: unknown): Rec[] => (Array.isArray(v) ? (v as Rec[]) : []);

/**
 * A segment whose aggregation is NONE plots raw states: of one device only (Losant's rule), so a
 * segment naming several devices, or tags or a query that may select several, is refused.
 */
function checkRawSegment(segment: Rec, path: string, problem: Problem): void {
  if (segment.aggregation !== 'NONE') return;
  const ids = arr(segment.deviceIds);
  if (ids.length !== 1 || segment.deviceTags !== undefined || segment.query !== undefined) {
    problem(`${path}/aggregation NONE needs exactly one device, given by deviceIds`);
  }
}

/** The checks that span fields; run only once the shape is sound. */
const CROSS_CHECKS: Partial<Record<BlockType, (config: Rec, problem: Problem) => void>> = {
  graph(config, problem) {
    const axes = new Set(arr(config.yAxes).map((a) => a.id));
    arr(config.segments).forEach((s, i) => {
      const path = `config/segments/${i}`;
      if (s.yAxisId !== undefined && !axes.has(s.yAxisId)) {
        problem(`${path}/yAxisId names axis ${JSON.stringify(s.yAxisId)}, which is not in config/yAxes`);
      } else if (s.yAxisId === undefined && axes.size > 1) {
        problem(`${path}/yAxisId is required when config/yAxes holds more than one axis`);
      }
      checkRawSegment(s, path, problem);
    });
    arr(config.decorators).forEach((d, i) => {
      if (!axes.has(d.yAxisId)) {
        problem(`config/decorators/${i}/yAxisId names axis ${JSON.stringify(d.yAxisId)}, which is not in config/yAxes`);
      }
    });
  },
  gauge(config, problem) {
    const scaled = ['dial', 'thermometer', 'tank', 'needle'];
    if (typeof config.gaugeType === 'string' && scaled.includes(config.gaugeType)) {
      for (const bound of ['gaugeMin', 'gaugeMax']) {
        if (config[bound] === undefined) problem(`config/${bound} is required for gaugeType ${config.gaugeType}`);
      }
    }
    checkRawSegment(config.segment as Rec, 'config/segment', problem);
  },
  indicator(config, problem) {
    arr(config.segments).forEach((s, i) => {
      checkRawSegment(s, `config/segments/${i}`, problem);
    });
  },
  'device-list'(config, problem) {
    arr(config.columns).forEach((c, i) => {
      if ((c.type === 'attribute' || c.type === 'tag') && c.source === undefined) {
        problem(`config/columns/${i}/source is required for a column of type ${c.type}`);
      }
    });
  },
  'device-state-table'(config, problem) {
    arr(config.columns).forEach((c, i) => {
      if (c.type === 'attribute' && c.attribute === undefined) {
        problem(`config/columns/${i}/attribute is required for a column of type attribute`);
      }
    });
  },
  input(config, problem) {
    const ids = new Set<unknown>();
    arr(config.controls).forEach((c, i) => {
      const path = `config/controls/${i}`;
      if (c.id !== undefined) {
        if (ids.has(c.id)) problem(`${path}/id ${JSON.stringify(c.id)} is used by another control`);
        ids.add(c.id);
      }
      if (c.grid && (c.grid as Rec).x !== undefined) {
        const g = c.grid as { x: number; w: number };
        if (g.x + g.w > 4) problem(`${path}/grid: x + w must not exceed 4`);
      }
      if (c.type !== 'button') return;
      if (c.action === undefined) problem(`${path}/action is required for a button (command or workflow)`);
      if (c.action === 'command') {
        if (c.commandName === undefined) problem(`${path}/commandName is required for a command button`);
        if (c.deviceIds === undefined && c.deviceTags === undefined && c.query === undefined) {
          problem(`${path} needs deviceIds, deviceTags or query: the devices the command goes to`);
        }
      }
      if (c.action === 'workflow') {
        if (typeof c.workflowId !== 'string' || !ID_RE.test(c.workflowId)) {
          problem(`${path}/workflowId must be the id of a flow of this application`);
        }
        if (c.buttonId === undefined) problem(`${path}/buttonId is required: the key of the flow's virtual button`);
      }
    });
  },
};

/** Reports the problems of one block's config, each path starting at `config`. */
export function checkBlockConfig(blockType: BlockType, config: unknown, problem: Problem): void {
  let sound = true;
  check(config, BLOCK_CONFIGS[blockType], 'config', (m) => {
    sound = false;
    problem(m);
  });
  if (sound) CROSS_CHECKS[blockType]?.(config as Rec, problem);
}
