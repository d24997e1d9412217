/**
 * The nodes of the first workflow release: Conditional, Debug, Mutate, Math, Device: State and
 * Device: Command (docs/workflows.md describes each with its config).
 */
import { sendCommandToMany } from '../../core/commands.js';
import { GatehouseError } from '../../core/errors.js';
import { ingestState } from '../../core/ingest.js';
import type { Principal } from '../../domain/authorization.js';
import type { Device } from '../../domain/model.js';
import { oneOf, optionalString, type Problem, registerNode, requireString } from '../catalog.js';
import { evaluateExpression, expressionProblem } from '../expressions.js';
import { lookup, removePath, renderJson, renderString, setPath, templateProblem } from '../templates.js';

/** Reports a template field that does not parse. */
export function checkTemplate(config: Record<string, unknown>, field: string, problem: Problem): void {
  const value = config[field];
  if (typeof value === 'string') {
    const why = templateProblem(value);
    if (why) problem(field, why);
  }
}

/** Reports a missing or unparsable expression field. */
export function checkExpression(config: Record<string, unknown>, field: string, problem: Problem): void {
  const value = requireString(config, field, problem);
  if (value !== undefined) {
    const why = expressionProblem(value);
    if (why) problem(field, why);
  }
}

const workflowPrincipal = (flowId: string, applicationId: string): Principal => ({
  kind: 'workflow',
  flowId,
  applicationId,
});

registerNode({
  type: 'ConditionalNode',
  outputs: 2,
  validate: (config, problem) => checkExpression(config, 'expression', problem),
  run: (config, ctx) => (evaluateExpression(config.expression as string, ctx.payload) ? 1 : 0),
});

const DEBUG_LEVELS = ['verbose', 'info', 'warn', 'error'] as const;
registerNode({
  type: 'DebugNode',
  outputs: 1,
  validate: (config, problem) => {
    optionalString(config, 'message', problem);
    checkTemplate(config, 'message', problem);
    optionalString(config, 'property', problem);
    oneOf(config, 'level', DEBUG_LEVELS, 'verbose', problem);
  },
  run: (config, ctx) => {
    const property = config.property as string | undefined;
    ctx.debug({
      message: renderString((config.message as string | undefined) ?? '', ctx.payload),
      level: (config.level as string | undefined) ?? 'verbose',
      value: property ? lookup(ctx.payload, property) : ctx.payload,
    });
    return 0;
  },
});

/** Mutate: `rules: [{type: 'set'|'remove'|'copy'|'move', destination?, source?, valueTemplate?, valueTemplateType?}]`. */
const MUTATE_TYPES = ['set', 'remove', 'copy', 'move'] as const;
registerNode({
  type: 'MutateNode',
  outputs: 1,
  validate: (config, problem) => {
    const rules = config.rules;
    if (!Array.isArray(rules)) return problem('rules', 'is required (an array)');
    for (const [i, rule] of rules.entries()) {
      if (rule === null || typeof rule !== 'object') {
        problem(`rules/${i}`, 'must be an object');
        continue;
      }
      const r = rule as Record<string, unknown>;
      const sub: Problem = (field, message) => problem(`rules/${i}/${field}`, message);
      const type = oneOf(r, 'type', MUTATE_TYPES, 'set', sub);
      if (type === 'remove') requireString(r, 'source', sub) ?? requireString(r, 'destination', () => {});
      else requireString(r, 'destination', sub);
      if (type === 'copy' || type === 'move') requireString(r, 'source', sub);
      if (type === 'set') checkTemplate(r, 'valueTemplate', sub);
    }
  },
  run: (config, ctx) => {
    for (const rule of config.rules as Array<Record<string, string | undefined>>) {
      const destination = rule.destination ?? '';
      switch (rule.type ?? 'set') {
        case 'set': {
          const template = rule.valueTemplate ?? '';
          const value =
            rule.valueTemplateType === 'json' ? renderJson(template, ctx.payload) : renderString(template, ctx.payload);
          setPath(ctx.payload, destination, value);
          break;
        }
        case 'remove':
          removePath(ctx.payload, rule.source ?? destination);
          break;
        case 'copy':
          setPath(ctx.payload, destination, structuredClone(lookup(ctx.payload, rule.source ?? '')));
          break;
        case 'move':
          setPath(ctx.payload, destination, lookup(ctx.payload, rule.source ?? ''));
          removePath(ctx.payload, rule.source ?? '');
          break;
      }
    }
    return 0;
  },
});

/** Math: `statements: [{expression, resultPath}]`, evaluated in order. */
registerNode({
  type: 'MathNode',
  outputs: 1,
  validate: (config, problem) => {
    const statements = config.statements;
    if (!Array.isArray(statements) || statements.length === 0)
      return problem('statements', 'is required (a non-empty array)');
    for (const [i, s] of statements.entries()) {
      if (s === null || typeof s !== 'object') {
        problem(`statements/${i}`, 'must be an object');
        continue;
      }
      const sub: Problem = (field, message) => problem(`statements/${i}/${field}`, message);
      checkExpression(s as Record<string, unknown>, 'expression', sub);
      requireString(s as Record<string, unknown>, 'resultPath', sub);
    }
  },
  run: (config, ctx) => {
    for (const s of config.statements as Array<{ expression: string; resultPath: string }>) {
      setPath(ctx.payload, s.resultPath, evaluateExpression(s.expression, ctx.payload));
    }
    return 0;
  },
});

/** Device: State: reports state for a device of the flow's application, through the one ingest path. */
const ATTR_METHODS = ['individualFields', 'jsonTemplate', 'payloadPath'] as const;
const TIME_SOURCES = ['payloadTime', 'now', 'payloadPath'] as const;
registerNode({
  type: 'DeviceChangeStateNode',
  outputs: 1,
  validate: (config, problem) => {
    requireString(config, 'deviceId', problem);
    checkTemplate(config, 'deviceId', problem);
    oneOf(config, 'deviceIdTemplateType', ['stringTemplate', 'jsonPath'] as const, 'stringTemplate', problem);
    const method = oneOf(config, 'attrDataMethod', ATTR_METHODS, 'individualFields', problem);
    if (method === 'individualFields') {
      if (!Array.isArray(config.attrInfos)) problem('attrInfos', 'is required (an array of {key, valueTemplate})');
      else {
        (config.attrInfos as unknown[]).forEach((a, i) => {
          const r = (a ?? {}) as Record<string, unknown>;
          requireString(r, 'key', (f, m) => problem(`attrInfos/${i}/${f}`, m));
          checkTemplate(r, 'valueTemplate', (f, m) => problem(`attrInfos/${i}/${f}`, m));
        });
      }
    }
    if (method === 'jsonTemplate') {
      requireString(config, 'attrJsonTemplate', problem);
      checkTemplate(config, 'attrJsonTemplate', problem);
    }
    if (method === 'payloadPath') requireString(config, 'attrPayloadPath', problem);
    const time = oneOf(config, 'timeSourceType', TIME_SOURCES, 'payloadTime', problem);
    if (time === 'payloadPath') requireString(config, 'timeSourcePath', problem);
    optionalString(config, 'resultPath', problem);
  },
  run: async (config, ctx) => {
    const { payload, flow } = ctx;
    const deviceId =
      config.deviceIdTemplateType === 'jsonPath'
        ? String(lookup(payload, config.deviceId as string) ?? '')
        : renderString(config.deviceId as string, payload);
    let data: unknown;
    switch (config.attrDataMethod ?? 'individualFields') {
      case 'jsonTemplate':
        data = renderJson(config.attrJsonTemplate as string, payload);
        break;
      case 'payloadPath':
        data = lookup(payload, config.attrPayloadPath as string);
        break;
      default:
        data = Object.fromEntries(
          (config.attrInfos as Array<{ key: string; valueTemplate?: string }>).map((a) => [
            a.key,
            renderString(a.valueTemplate ?? '', payload),
          ]),
        );
    }
    const now = ctx.platform.clock();
    const time =
      config.timeSourceType === 'now'
        ? now
        : config.timeSourceType === 'payloadPath'
          ? lookup(payload, config.timeSourcePath as string)
          : (payload.time ?? now);
    ctx.beforeStateWrite(deviceId);
    const outcome = await ingestState(ctx.platform, {
      principal: workflowPrincipal(flow.id, flow.applicationId),
      targetId: deviceId,
      applicationId: flow.applicationId,
      payload: JSON.stringify({ data, time: typeof time === 'string' || typeof time === 'number' ? time : now }),
      via: 'rest',
      receivedAt: now,
    });
    const resultPath = config.resultPath as string | undefined;
    if (!outcome.ok) {
      if (!resultPath) throw new GatehouseError('Validation', `state for ${deviceId} refused: ${outcome.reason}`);
      setPath(payload, resultPath, { error: { type: String(outcome.status), message: outcome.reason } });
      return 0;
    }
    await outcome.committed;
    if (resultPath) setPath(payload, resultPath, { success: true });
    return 0;
  },
});

/**
 * Device: Command: a command to devices picked from the payload (`deviceIdsPath`) or listed
 * (`sendToDeviceIds`, `sendToDeviceTags`), through the same command path as REST: a command for
 * a peripheral goes through its gateway, and the history records where it went.
 */
registerNode({
  type: 'DeviceSendCommandNode',
  outputs: 1,
  validate: (config, problem) => {
    requireString(config, 'nameTemplate', problem);
    checkTemplate(config, 'nameTemplate', problem);
    checkTemplate(config, 'payloadTemplate', problem);
    oneOf(config, 'payloadTemplateType', ['json', 'string', 'path'] as const, 'json', problem);
    if (config.deviceQueryJsonTemplate !== undefined) {
      problem(
        'deviceQueryJsonTemplate',
        'device queries are not supported; use deviceIdsPath, sendToDeviceIds or sendToDeviceTags',
      );
    }
    const byPath = config.deviceIdsPath !== undefined;
    const direct = config.sendToDeviceIds !== undefined || config.sendToDeviceTags !== undefined;
    if (!byPath && !direct)
      problem('deviceIdsPath', 'is required, unless sendToDeviceIds or sendToDeviceTags is given');
    if (byPath) requireString(config, 'deviceIdsPath', problem);
    if (config.sendToDeviceIds !== undefined && !Array.isArray(config.sendToDeviceIds)) {
      problem('sendToDeviceIds', 'must be an array of device ids');
    }
    if (config.sendToDeviceTags !== undefined && !Array.isArray(config.sendToDeviceTags)) {
      problem('sendToDeviceTags', 'must be an array of {key, value}');
    }
  },
  run: async (config, ctx) => {
    const { payload, flow, platform } = ctx;
    const ids = new Set<string>();
    if (typeof config.deviceIdsPath === 'string') {
      const found = lookup(payload, config.deviceIdsPath);
      for (const id of Array.isArray(found) ? found : [found]) if (typeof id === 'string') ids.add(id);
    }
    for (const id of (config.sendToDeviceIds as unknown[] | undefined) ?? []) {
      if (typeof id === 'string') ids.add(renderString(id, payload));
    }
    const tags = (config.sendToDeviceTags as Array<{ key?: string; value?: string }> | undefined) ?? [];
    const devices: Device[] = [];
    for (const id of ids) {
      const device = await platform.registry.device(id);
      if (device && device.applicationId === flow.applicationId) devices.push(device);
    }
    for (const tag of tags) {
      if (!tag.key) continue;
      const tagged = await platform.registry.selectDevices(flow.applicationId, undefined, [
        { key: tag.key, value: tag.value ?? '' },
      ]);
      for (const d of tagged) if (!devices.some((x) => x.id === d.id)) devices.push(d);
    }
    if (devices.length === 0) return 0;
    const type = config.payloadTemplateType ?? 'json';
    const template = (config.payloadTemplate as string | undefined) ?? '';
    const commandPayload =
      type === 'path'
        ? lookup(payload, template)
        : type === 'string'
          ? renderString(template, payload)
          : template.trim() === ''
            ? undefined
            : renderJson(template, payload);
    await sendCommandToMany(platform, workflowPrincipal(flow.id, flow.applicationId), devices, {
      name: renderString(config.nameTemplate as string, payload),
      ...(commandPayload !== undefined ? { payload: commandPayload } : {}),
    });
    return 0;
  },
});
