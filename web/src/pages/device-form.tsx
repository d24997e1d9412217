/**
 * Create or edit a device: name, description, class, a peripheral's binding (any gateway, or
 * one gateway of the application), attributes and tags. The API's validation message is shown
 * next to the field it names.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  type Attribute,
  api,
  DATA_TYPES,
  DEVICE_CLASSES,
  type Device,
  GATEWAY_CLASSES,
  get,
  type Page,
  type Tag,
} from '../api';
import { navigate } from '../router';
import { ErrorBox, Field, fieldErrors, useAsync } from '../ui';

export function DeviceForm({ appId, deviceId }: { appId: string; deviceId?: string }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [deviceClass, setDeviceClass] = useState('standalone');
  const [gatewayId, setGatewayId] = useState('');
  const [attributes, setAttributes] = useState<Attribute[]>([{ name: '', dataType: 'number' }]);
  const [tags, setTags] = useState<Tag[]>([]);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const gateways = useAsync(
    () => get<Page<Device>>(`/applications/${appId}/devices?perPage=1000&deviceClass=${GATEWAY_CLASSES.join(',')}`),
    [appId],
  );
  const existing = useAsync(
    () => (deviceId ? get<Device>(`/applications/${appId}/devices/${deviceId}`) : Promise.resolve(undefined)),
    [appId, deviceId],
  );
  useEffect(() => {
    const d = existing.data;
    if (!d) return;
    setName(d.name);
    setDescription(d.description);
    setDeviceClass(d.deviceClass);
    setGatewayId(d.gatewayId ?? '');
    setAttributes(d.attributes.map((a) => ({ name: a.name, dataType: a.dataType })));
    setTags(d.tags);
  }, [existing.data]);

  const errs = fieldErrors(error);
  const isPeripheral = deviceClass === 'peripheral';

  return (
    <section>
      <h1>{deviceId ? `Edit ${existing.data?.name ?? 'device'}` : 'New device'}</h1>
      <ErrorBox error={existing.error} />
      <form
        class="card form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          const body = {
            name,
            description,
            deviceClass,
            gatewayId: isPeripheral && gatewayId ? gatewayId : null,
            attributes: attributes.filter((a) => a.name.trim() !== ''),
            tags: tags.filter((t) => t.key.trim() !== ''),
          };
          try {
            const d = deviceId
              ? await api<Device>('PATCH', `/applications/${appId}/devices/${deviceId}`, body)
              : await api<Device>('POST', `/applications/${appId}/devices`, body);
            navigate(`/app/${appId}/devices/${d.id}`);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Name" id="device-name" error={errs.field.name}>
          <input id="device-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Description" id="device-description" error={errs.field.description}>
          <input id="device-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </Field>
        <Field label="Device class" id="device-class-input" error={errs.field.deviceClass}>
          <select id="device-class-input" value={deviceClass} onChange={(e) => setDeviceClass(e.currentTarget.value)}>
            {DEVICE_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </Field>
        {isPeripheral ? (
          <Field label="Reports through" id="device-gateway" error={errs.field.gatewayId}>
            <select id="device-gateway" value={gatewayId} onChange={(e) => setGatewayId(e.currentTarget.value)}>
              <option value="">Any gateway of the application</option>
              {(gateways.data?.items ?? []).map((g) => (
                <option key={g.id} value={g.id}>
                  {g.name} ({g.deviceClass})
                </option>
              ))}
            </select>
          </Field>
        ) : null}

        <fieldset>
          <legend>Attributes</legend>
          {attributes.map((a, i) => (
            <div class="row" key={i}>
              <label class="grow">
                <span class="visually-hidden">Attribute {i + 1} name</span>
                <input
                  aria-label={`Attribute ${i + 1} name`}
                  placeholder="name"
                  value={a.name}
                  onInput={(e) => {
                    const v = e.currentTarget.value;
                    setAttributes(attributes.map((x, j) => (j === i ? { ...x, name: v } : x)));
                  }}
                />
              </label>
              <select
                aria-label={`Attribute ${i + 1} type`}
                value={a.dataType}
                onChange={(e) => {
                  const v = e.currentTarget.value;
                  setAttributes(attributes.map((x, j) => (j === i ? { ...x, dataType: v } : x)));
                }}
              >
                {DATA_TYPES.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
              <button
                type="button"
                class="secondary"
                aria-label={`Remove attribute ${i + 1}`}
                onClick={() => setAttributes(attributes.filter((_, j) => j !== i))}
              >
                Remove
              </button>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            onClick={() => setAttributes([...attributes, { name: '', dataType: 'number' }])}
          >
            Add attribute
          </button>
          {errs.field.attributes ? (
            <p class="field-error" id="device-attributes-error" role="alert">
              {errs.field.attributes}
            </p>
          ) : null}
        </fieldset>

        <fieldset>
          <legend>Tags</legend>
          {tags.map((t, i) => (
            <div class="row" key={i}>
              <input
                aria-label={`Tag ${i + 1} key`}
                placeholder="key"
                value={t.key}
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setTags(tags.map((x, j) => (j === i ? { ...x, key: v } : x)));
                }}
              />
              <input
                aria-label={`Tag ${i + 1} value`}
                placeholder="value"
                value={t.value}
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setTags(tags.map((x, j) => (j === i ? { ...x, value: v } : x)));
                }}
              />
              <button
                type="button"
                class="secondary"
                aria-label={`Remove tag ${i + 1}`}
                onClick={() => setTags(tags.filter((_, j) => j !== i))}
              >
                Remove
              </button>
            </div>
          ))}
          <button type="button" class="secondary" onClick={() => setTags([...tags, { key: '', value: '' }])}>
            Add tag
          </button>
          {errs.field.tags ? (
            <p class="field-error" id="device-tags-error" role="alert">
              {errs.field.tags}
            </p>
          ) : null}
        </fieldset>

        <ErrorBox error={errs.form} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {deviceId ? 'Save' : 'Create device'}
          </button>
          <a class="button secondary" href={deviceId ? `/app/${appId}/devices/${deviceId}` : `/app/${appId}/devices`}>
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
