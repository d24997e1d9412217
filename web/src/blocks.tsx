/**
 * Dashboard blocks (docs/dashboards.md): each reads its data through the data and device APIs
 * and re-reads it when `tick` changes (live events or the dashboard's refresh rate). A block
 * type the console does not draw says so instead of failing the dashboard.
 */
import { api, type Composite, type Device, get, type Page, query, type Tag } from './api';
import { Chart, type Series } from './chart';
import { ConnectionBadge, ErrorBox, formatTime, formatValue, useAsync } from './ui';

export interface Block {
  id: string;
  blockType: string;
  title?: string;
  description?: string;
  startX: number;
  startY: number;
  width: number;
  height: number;
  applicationId?: string;
  config: Record<string, unknown>;
}
interface Selectors {
  deviceIds?: string[];
  deviceTags?: Array<{ key: string; value?: string }>;
}
interface Segment extends Selectors {
  attribute: string;
  aggregation?: string;
  label?: string;
  color?: string;
}
type TimeSeries = {
  devices: Record<string, { name: string; points: { time: string; data: Record<string, unknown> }[] }>;
};

/** The data API's selectors from a block's (deviceTags without `fromCtx`). */
function selectors(s: Selectors): Selectors {
  return {
    ...(s.deviceIds?.length ? { deviceIds: s.deviceIds } : {}),
    ...(s.deviceTags?.length ? { deviceTags: s.deviceTags.map((t) => ({ key: t.key, value: t.value })) } : {}),
  };
}
const num = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

export function BlockBody({ appId, block, tick }: { appId: string; block: Block; tick: number }) {
  switch (block.blockType) {
    case 'graph':
      return (
        <GraphBlock
          appId={appId}
          config={block.config}
          tick={tick}
          title={block.title ?? ''}
          // The chart fills its block: a grid row is 160px, less the header and the legend.
          height={Math.max(100, block.height * 160 - 110)}
        />
      );
    case 'gauge':
      return <GaugeBlock appId={appId} config={block.config} tick={tick} />;
    case 'indicator':
      return <IndicatorBlock appId={appId} config={block.config} tick={tick} />;
    case 'gateway':
      return <GatewayBlock appId={appId} config={block.config} tick={tick} />;
    case 'device-list':
      return <DeviceListBlock appId={appId} config={block.config} tick={tick} />;
    case 'device-state-table':
      return <StateTableBlock appId={appId} config={block.config} tick={tick} />;
    case 'device-log':
      return <DeviceLogBlock appId={appId} config={block.config} tick={tick} />;
    case 'input':
      return <InputBlock appId={appId} config={block.config} />;
    default:
      return <p class="muted">The console does not draw {block.blockType} blocks.</p>;
  }
}

function GraphBlock(props: {
  appId: string;
  config: Record<string, unknown>;
  tick: number;
  title: string;
  height: number;
}) {
  const { appId, config, tick } = props;
  const segments = (config.segments as Segment[] | undefined) ?? [];
  const duration = num(config.duration, 86_400_000);
  const resolution = Math.max(60_000, num(config.resolution, Math.ceil(duration / 120 / 60_000) * 60_000));
  const data = useAsync(async () => {
    const end = Date.now();
    const start = Math.floor((end - duration) / 60_000) * 60_000;
    const series: Series[] = [];
    for (const seg of segments) {
      const r = await api<TimeSeries>('POST', `/applications/${appId}/data/time-series-query`, {
        ...selectors(seg),
        attributes: [seg.attribute],
        start,
        end,
        resolution,
        aggregation: seg.aggregation ?? 'MEAN',
      });
      for (const [, dev] of Object.entries(r.devices)) {
        series.push({
          label: `${seg.label ?? seg.attribute} · ${dev.name}`,
          points: dev.points.map((p) => {
            const v = p.data[seg.attribute];
            return [Date.parse(p.time), typeof v === 'number' ? v : null];
          }),
        });
      }
    }
    return { series, range: [start, end] as [number, number] };
  }, [appId, JSON.stringify(config), tick]);
  return (
    <>
      <ErrorBox error={data.error} />
      <Chart
        series={data.data?.series ?? []}
        range={data.data?.range}
        height={props.height}
        label={`Graph ${props.title}`}
      />
    </>
  );
}

/** One value for a segment: the newest (LAST, or no aggregation), or the aggregate over `duration`. */
async function segmentValue(appId: string, seg: Segment, duration: number): Promise<unknown> {
  const aggregation = seg.aggregation ?? 'LAST';
  if (aggregation === 'LAST') {
    const r = await api<Record<string, Composite>>('POST', `/applications/${appId}/data/last-value-query`, {
      ...selectors(seg),
      attributes: [seg.attribute],
    });
    // The newest value among the selected devices.
    let best: { value: unknown; time: string } | undefined;
    for (const c of Object.values(r)) {
      const v = c[seg.attribute];
      if (v && (!best || v.time > best.time)) best = v;
    }
    return best?.value;
  }
  const end = Date.now();
  const r = await api<TimeSeries>('POST', `/applications/${appId}/data/time-series-query`, {
    ...selectors(seg),
    attributes: [seg.attribute],
    start: end - duration,
    end,
    resolution: Math.max(1000, duration),
    aggregation,
  });
  const values = Object.values(r.devices).flatMap((d) => d.points.map((p) => p.data[seg.attribute]));
  return values.find((v) => v !== undefined);
}

function GaugeBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const seg = config.segment as Segment;
  const min = num(config.gaugeMin, 0);
  const max = num(config.gaugeMax, 100);
  const type = (config.gaugeType as string | undefined) ?? 'number';
  const value = useAsync(
    () => segmentValue(appId, seg, num(config.duration, 3_600_000)),
    [appId, JSON.stringify(config), tick],
  );
  const v = value.data;
  const n = typeof v === 'number' ? v : undefined;
  const precision = num(config.precision, 3);
  const text = n === undefined ? formatValue(v) : Number(n.toPrecision(precision)).toString();
  const share = n === undefined ? 0 : Math.min(1, Math.max(0, (n - min) / (max - min || 1)));
  return (
    <div class="gauge" data-testid="gauge">
      <ErrorBox error={value.error} />
      {type === 'number' ? null : (
        <svg viewBox="0 0 120 70" class="gauge-dial" role="img" aria-label={`${seg.attribute} gauge`}>
          <path d="M10,60 A50,50 0 0 1 110,60" class="gauge-track" />
          <path
            d="M10,60 A50,50 0 0 1 110,60"
            class="gauge-fill"
            pathLength={100}
            stroke-dasharray={`${share * 100} 100`}
            style={seg.color ? { stroke: seg.color } : undefined}
          />
          <text x="10" y="69" class="gauge-limit">
            {min}
          </text>
          <text x="110" y="69" text-anchor="end" class="gauge-limit">
            {max}
          </text>
        </svg>
      )}
      <div class="gauge-value">{text}</div>
      <div class="muted">{seg.label ?? seg.attribute}</div>
    </div>
  );
}

interface Condition {
  condition?: string;
  label?: string;
  color?: string;
}

/** `{{value-0}} > 20` style conditions: a comparison of one segment value with a number or text. */
function holds(condition: string | undefined, values: unknown[]): boolean {
  if (!condition) return false;
  const m = /^\s*\{\{\s*value-(\d+)\s*\}\}\s*(>=|<=|==|!=|>|<|===)\s*(.+?)\s*$/.exec(condition);
  if (!m) return false;
  const v = values[Number(m[1])];
  const rhsText = m[3]!.replace(/^['"]|['"]$/g, '');
  const rhs: unknown = Number.isNaN(Number(rhsText)) ? rhsText : Number(rhsText);
  const a = typeof v === 'boolean' && typeof rhs === 'number' ? Number(v) : v;
  switch (m[2]) {
    case '>':
      return (a as number) > (rhs as number);
    case '<':
      return (a as number) < (rhs as number);
    case '>=':
      return (a as number) >= (rhs as number);
    case '<=':
      return (a as number) <= (rhs as number);
    case '!=':
      return String(a) !== String(rhs);
    default:
      return String(a) === String(rhs);
  }
}

function IndicatorBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const segments = (config.segments as Segment[] | undefined) ?? [];
  const values = useAsync(
    () => Promise.all(segments.map((s) => segmentValue(appId, s, num(config.duration, 3_600_000)))),
    [appId, JSON.stringify(config), tick],
  );
  const conditions = (config.conditions as Condition[] | undefined) ?? [];
  const found =
    conditions.find((c) => holds(c.condition, values.data ?? [])) ?? (config.defaultCondition as Condition | undefined);
  return (
    <div class="indicator">
      <ErrorBox error={values.error} />
      <span class="indicator-dot" style={{ background: found?.color ?? '#9aa3b2' }} aria-hidden="true" />
      <span class="indicator-label">
        {found?.label ?? segments.map((_, i) => formatValue(values.data?.[i])).join(' · ')}
      </span>
    </div>
  );
}

function GatewayBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const gatewayId = String(config.gatewayId ?? '');
  const attributes = (config.attributes as string[] | undefined) ?? [];
  const data = useAsync(async () => {
    const gw = await get<Device>(`/applications/${appId}/devices/${gatewayId}`);
    const ids =
      config.showPeripherals === false
        ? []
        : [...new Set([...(gw.peripherals?.bound ?? []), ...(gw.peripherals?.recent.map((r) => r.deviceId) ?? [])])];
    const [values, devices] = await Promise.all([
      api<Record<string, Composite>>('POST', `/applications/${appId}/data/last-value-query`, {
        deviceIds: [gatewayId, ...ids],
        ...(attributes.length ? { attributes } : {}),
      }),
      ids.length
        ? get<Page<Device>>(`/applications/${appId}/devices?perPage=1000&deviceClass=peripheral,floating`)
        : Promise.resolve({ items: [] as Device[] }),
    ]);
    return { gw, ids, values, devices: devices.items };
  }, [appId, gatewayId, JSON.stringify(config), tick]);
  if (data.error) return <ErrorBox error={data.error} />;
  const d = data.data;
  if (!d) return <p class="loading">Loading…</p>;
  const row = (id: string, name: string, connected: 1 | 0 | null | undefined) => (
    <tr key={id} data-device={id}>
      <td>
        <a href={`/app/${appId}/devices/${id}`}>{name}</a>
      </td>
      {config.includeConnectionInfo === false ? null : (
        <td>
          <ConnectionBadge connected={connected} />
        </td>
      )}
      <td class="last-values">
        {Object.entries(d.values[id] ?? {}).map(([k, v]) => (
          <span class="kv" key={k}>
            {k}: <strong>{formatValue(v.value)}</strong>
          </span>
        ))}
      </td>
    </tr>
  );
  return (
    <div class="table-wrap" data-testid="gateway-block">
      <table class="steady">
        <tbody>
          {row(d.gw.id, d.gw.name, d.gw.connectionInfo.connected)}
          {d.ids.map((id) => {
            const p = d.devices.find((x) => x.id === id);
            return row(id, `↳ ${p?.name ?? id}`, p?.connectionInfo.connected);
          })}
        </tbody>
      </table>
    </div>
  );
}

interface Column {
  type: string;
  source?: string;
  attribute?: string;
  headerTemplate?: string;
}

function DeviceListBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const columns = (config.columns as Column[] | undefined) ?? [{ type: 'name' }];
  const filter = typeof config.filter === 'string' ? config.filter : undefined;
  const tags =
    (typeof config.filter === 'object' && config.filter ? (config.filter as { tags?: Tag[] }).tags : undefined) ?? [];
  const data = useAsync(async () => {
    const page = await get<Page<Device>>(
      `/applications/${appId}/devices${query({
        perPage: 100,
        filter: filter?.replaceAll('*', ''),
        tagFilter: tags.map((t) => (t.value ? `${t.key}:${t.value}` : t.key)),
      })}`,
    );
    const attrs = columns.filter((c) => c.type === 'attribute').map((c) => c.source!);
    const values = attrs.length
      ? await api<Record<string, Composite>>('POST', `/applications/${appId}/data/last-value-query`, {
          deviceIds: page.items.map((d) => d.id),
          attributes: attrs,
        })
      : {};
    return { devices: page.items, values };
  }, [appId, JSON.stringify(config), tick]);
  const cell = (d: Device, c: Column) => {
    switch (c.type) {
      case 'name':
        return <a href={`/app/${appId}/devices/${d.id}`}>{d.name}</a>;
      case 'connectionStatus':
        return <ConnectionBadge connected={d.connectionInfo.connected} />;
      case 'attribute':
        return formatValue(data.data?.values[d.id]?.[c.source ?? '']?.value);
      case 'tag':
        return d.tags.find((t) => t.key === c.source)?.value ?? '—';
      case 'id':
        return <code>{d.id}</code>;
      case 'created':
        return formatTime(d.creationDate);
      case 'updated':
        return formatTime(d.lastUpdated);
      default:
        return '';
    }
  };
  return (
    <div class="table-wrap">
      <ErrorBox error={data.error} />
      <table class="steady">
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c.headerTemplate ?? c.source ?? c.type}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {(data.data?.devices ?? []).map((d) => (
            <tr key={d.id}>
              {columns.map((c, i) => (
                <td key={i}>{cell(d, c)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function StateTableBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const columns = (config.columns as Column[] | undefined) ?? [];
  const data = useAsync(async () => {
    const attrs = columns.filter((c) => c.type === 'attribute').map((c) => c.attribute!);
    const values = await api<Record<string, Composite>>('POST', `/applications/${appId}/data/last-value-query`, {
      ...selectors(config as Selectors),
      ...(attrs.length ? { attributes: attrs } : {}),
    });
    const devices = await get<Page<Device>>(`/applications/${appId}/devices?perPage=1000`);
    return { values, devices: devices.items };
  }, [appId, JSON.stringify(config), tick]);
  const ids = Object.keys(data.data?.values ?? {});
  return (
    <div class="table-wrap">
      <ErrorBox error={data.error} />
      <table class="steady">
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c.headerTemplate ?? c.attribute ?? c.type}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {ids.map((id) => {
            const vals = data.data!.values[id] ?? {};
            const dev = data.data!.devices.find((d) => d.id === id);
            const newest = Object.values(vals)
              .map((v) => v.time)
              .sort()
              .pop();
            return (
              <tr key={id}>
                {columns.map((c, i) => (
                  <td key={i}>
                    {c.type === 'attribute'
                      ? formatValue(vals[c.attribute ?? '']?.value)
                      : c.type === 'timestamp'
                        ? formatTime(newest)
                        : c.type === 'deviceName'
                          ? (dev?.name ?? id)
                          : c.type === 'deviceId'
                            ? id
                            : (dev?.tags.map((t) => `${t.key}:${t.value}`).join(', ') ?? '')}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function DeviceLogBlock({ appId, config, tick }: { appId: string; config: Record<string, unknown>; tick: number }) {
  const ids = ((config.deviceIds as string[] | undefined) ?? []).slice(0, 100);
  const data = useAsync(
    () =>
      get<{ items: { kind: string; time: string; deviceId: string }[] }>(
        `/applications/${appId}/logs${query({
          limit: Number(config.maxResultsPerDevice ?? 20) || 20,
          kinds: 'connect,disconnect,authFailed,inactive',
          deviceId: ids,
        })}`,
      ),
    [appId, JSON.stringify(config), tick],
  );
  return (
    <ul class="log">
      <ErrorBox error={data.error} />
      {(data.data?.items ?? []).map((e, i) => (
        <li key={`${e.time}-${i}`}>
          <span class={`kind kind-${e.kind}`}>{e.kind}</span> <time>{formatTime(e.time)}</time>{' '}
          <span class="muted">{e.deviceId}</span>
        </li>
      ))}
    </ul>
  );
}

interface Control extends Selectors {
  id?: string;
  type: string;
  label?: string;
  action?: string;
  commandName?: string;
  payload?: string;
}

function InputBlock({ appId, config }: { appId: string; config: Record<string, unknown> }) {
  const controls = (config.controls as Control[] | undefined) ?? [];
  return (
    <div class="actions">
      {controls
        .filter((c) => c.type === 'button' && c.action === 'command')
        .map((c, i) => (
          <button
            type="button"
            key={c.id ?? i}
            onClick={async () => {
              let payload: unknown;
              try {
                payload = c.payload ? JSON.parse(c.payload) : undefined;
              } catch {
                payload = c.payload;
              }
              try {
                await api('POST', `/applications/${appId}/devices/command`, {
                  ...selectors(c),
                  name: c.commandName,
                  ...(payload !== undefined ? { payload } : {}),
                });
              } catch (err) {
                alert((err as Error).message);
              }
            }}
          >
            {c.label ?? c.commandName}
          </button>
        ))}
      {controls.some((c) => c.type !== 'button') ? <p class="muted">Only command buttons are drawn here.</p> : null}
    </div>
  );
}
