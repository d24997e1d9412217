/**
 * Device: Get (`GetDeviceNode`): one device of the flow's application by id, with its tags,
 * attributes, connection info and (on request) its composite state, written to `resultPath`.
 */
import { presentDevice } from '../../api/present.js';
import { iso } from '../../core/wire.js';
import { registerNode, requireString } from '../catalog.js';
import { renderString, setPath } from '../templates.js';
import { checkTemplate } from './core.js';

registerNode({
  type: 'GetDeviceNode',
  outputs: 1,
  validate: (config, problem) => {
    const method = config.findMethod ?? 'id';
    if (method !== 'id') {
      problem('findMethod', `${JSON.stringify(method)} is not supported; only "id" (find one device by idTemplate)`);
    }
    requireString(config, 'idTemplate', problem);
    checkTemplate(config, 'idTemplate', problem);
    requireString(config, 'resultPath', problem);
    for (const flag of ['includeConnectionStatus', 'includeState', 'tagsAsObject', 'attributesAsObject']) {
      if (config[flag] !== undefined && typeof config[flag] !== 'boolean') problem(flag, 'must be true or false');
    }
    if (
      config.attributes !== undefined &&
      config.attributes !== null &&
      !(Array.isArray(config.attributes) && config.attributes.every((a) => typeof a === 'string'))
    ) {
      problem('attributes', 'must be null or an array of attribute names');
    }
  },
  run: async (config, ctx) => {
    const { payload, platform, flow } = ctx;
    const id = renderString(config.idTemplate as string, payload);
    const resultPath = config.resultPath as string;
    const device = id ? await platform.registry.device(id) : undefined;
    if (!device || device.applicationId !== flow.applicationId) {
      setPath(payload, resultPath, null);
      return 0;
    }
    const presented = await presentDevice(platform, device);
    const { connectionInfo, ...rest } = presented;
    const out: Record<string, unknown> = { ...rest };
    if (config.includeConnectionStatus !== false) out.connectionInfo = connectionInfo;
    if (config.tagsAsObject === true) {
      const tags: Record<string, string[]> = {};
      for (const t of device.tags) {
        const values = tags[t.key] ?? [];
        values.push(t.value);
        tags[t.key] = values;
      }
      out.tags = tags;
    }
    if (config.attributesAsObject === true) {
      out.attributes = Object.fromEntries(device.attributes.map(({ name, ...a }) => [name, a]));
    }
    if (config.includeState === true) {
      const wanted = Array.isArray(config.attributes) ? new Set(config.attributes as string[]) : undefined;
      const composite = await platform.store.getCompositeState(device.id);
      const state: Record<string, { value: unknown; time: string }> = {};
      for (const [name, { value, time }] of Object.entries(composite)) {
        if (!wanted || wanted.has(name)) state[name] = { value, time: iso(time) };
      }
      out.compositeState = state;
    }
    setPath(payload, resultPath, out);
    return 0;
  },
});
