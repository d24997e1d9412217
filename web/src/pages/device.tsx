/**
 * One device: its live composite state, a chart of an attribute, state history (who reported
 * each entry), its connection log and a command form. A gateway also lists its peripherals
 * (bound and recently reported for) with their last values; a peripheral shows its binding,
 * the gateway it last came through and every gateway that reported for it.
 *
 * Live data comes from one stream per page, the application's event stream (filtered to this
 * device, or for a gateway to its traffic): browsers allow few connections per server.
 */
import { useMemo, useRef, useState } from 'preact/hooks';
import { api, type Composite, type Device, GATEWAY_CLASSES, get, type Page, type StateEntry } from '../api';
import { Chart, type Series } from '../chart';
import { useEventStream } from '../live';
import { navigate } from '../router';
import { useRole } from '../session';
import { ConnectionBadge, Empty, ErrorBox, Field, fieldErrors, formatTime, formatValue, useAsync } from '../ui';

interface LogEntry {
  kind: string;
  time: string;
  [k: string]: unknown;
}
interface LiveState extends StateEntry {
  deviceId: string;
}

const HISTORY = 25;

export function DevicePage({ appId, deviceId }: { appId: string; deviceId: string }) {
  const { canEdit } = useRole(appId);
  const device = useAsync(() => get<Device>(`/applications/${appId}/devices/${deviceId}`), [appId, deviceId]);
  // Names for ids shown on the page (reporters, gateways, peripherals).
  const names = useAsync(
    () => get<Page<Device>>(`/applications/${appId}/devices?perPage=1000`).then((p) => p.items),
    [appId],
  );
  const nameOf = (id: string) => names.data?.find((d) => d.id === id)?.name;
  const composite = useAsync(
    () => get<Composite>(`/applications/${appId}/devices/${deviceId}/compositeState`),
    [appId, deviceId],
  );
  const history = useAsync(
    () =>
      get<StateEntry[]>(`/applications/${appId}/devices/${deviceId}/state?start=0&limit=${HISTORY}&sortDirection=desc`),
    [appId, deviceId],
  );
  const log = useAsync(
    () => get<LogEntry[]>(`/applications/${appId}/devices/${deviceId}/logs?limit=${HISTORY}`),
    [appId, deviceId],
  );
  const d = device.data;
  const isGateway = d ? GATEWAY_CLASSES.includes(d.deviceClass) : false;
  const peripheralIds = useMemo(
    () =>
      d?.peripherals ? [...new Set([...d.peripherals.bound, ...d.peripherals.recent.map((r) => r.deviceId)])] : [],
    [d],
  );
  const [peripheralValues, setPeripheralValues] = useState<Record<string, Composite>>({});
  const periphLoad = useAsync(
    () =>
      peripheralIds.length
        ? api<Record<string, Composite>>('POST', `/applications/${appId}/data/last-value-query`, {
            deviceIds: peripheralIds,
          }).then(setPeripheralValues)
        : Promise.resolve(),
    [appId, peripheralIds.join(',')],
  );
  const [chartTick, setChartTick] = useState(0);
  const lastChartReload = useRef(0);

  // A gateway's page follows its peripherals too; other devices only themselves.
  const streamUrl = d
    ? `/applications/${appId}/events?types=state,command,connect,disconnect,authFailed,rejected,dropped,inactive${
        isGateway ? '' : `&deviceId=${deviceId}`
      }`
    : undefined;
  useEventStream(streamUrl, {
    state: (e: LiveState) => {
      if (e.deviceId === deviceId) {
        composite.setData((current) => {
          const next: Composite = { ...(current ?? {}) };
          for (const [k, v] of Object.entries(e.data)) {
            // A late state with an older time does not replace a newer value (as on the server).
            if (!next[k] || next[k].time <= e.time) next[k] = { value: v, time: e.time };
          }
          return next;
        });
        history.setData((current) =>
          [{ time: e.time, data: e.data, reportedBy: e.reportedBy }, ...(current ?? [])].slice(0, HISTORY),
        );
        // The chart re-reads its range at most every 2 s while data streams in.
        if (Date.now() - lastChartReload.current > 2000) {
          lastChartReload.current = Date.now();
          setChartTick((t) => t + 1);
        }
      } else if (isGateway && (peripheralIds.includes(e.deviceId) || e.reportedBy === deviceId)) {
        setPeripheralValues((all) => {
          const cur = { ...(all[e.deviceId] ?? {}) };
          for (const [k, v] of Object.entries(e.data)) {
            if (!cur[k] || cur[k].time <= e.time) cur[k] = { value: v, time: e.time };
          }
          return { ...all, [e.deviceId]: cur };
        });
        if (!peripheralIds.includes(e.deviceId)) device.reload();
      }
    },
    connect: (e: LogEntry & { deviceId: string }) => onLog(e),
    disconnect: (e: LogEntry & { deviceId: string }) => onLog(e),
    authFailed: (e: LogEntry & { deviceId: string }) => onLog(e),
    rejected: (e: LogEntry & { deviceId: string }) => onLog(e),
    dropped: (e: LogEntry & { deviceId: string }) => onLog(e),
    inactive: (e: LogEntry & { deviceId: string }) => onLog(e),
  });
  function onLog(e: LogEntry & { deviceId: string }) {
    if (e.deviceId !== deviceId) {
      // A peripheral's connection follows its gateway's: re-read the list's status.
      if (isGateway && (e.kind === 'connect' || e.kind === 'disconnect')) device.reload();
      return;
    }
    const { deviceId: _, ...entry } = e;
    log.setData((current) => [{ ...entry, kind: entry.kind ?? '' }, ...(current ?? [])].slice(0, HISTORY));
    if (e.kind === 'connect' || e.kind === 'disconnect') device.reload();
  }

  if (device.error) return <ErrorBox error={device.error} />;
  if (!d) return <p class="loading">Loading…</p>;
  const lastGateway = d.lastReportedBy && d.lastReportedBy.deviceId !== d.id ? d.lastReportedBy : null;

  return (
    <section class="device-page">
      <div class="page-head">
        <div>
          <h1>{d.name}</h1>
          <p class="muted">
            {d.deviceClass} · <ConnectionBadge connected={d.connectionInfo.connected} />{' '}
            {d.inactiveSince ? (
              <span class="badge badge-warn">inactive since {formatTime(d.inactiveSince)}</span>
            ) : null}
          </p>
        </div>
        {canEdit ? (
          <div class="actions">
            <a class="button secondary" href={`/app/${appId}/devices/${d.id}/edit`}>
              Edit
            </a>
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (!confirm(`Delete ${d.name}? Its state history goes with it.`)) return;
                await api('DELETE', `/applications/${appId}/devices/${d.id}`);
                navigate(`/app/${appId}/devices`);
              }}
            >
              Delete
            </button>
          </div>
        ) : null}
      </div>

      <div class="grid2">
        <div class="card">
          <h2>Details</h2>
          <dl class="details">
            <dt>Id</dt>
            <dd>
              <code>{d.id}</code>
            </dd>
            {d.description ? (
              <>
                <dt>Description</dt>
                <dd>{d.description}</dd>
              </>
            ) : null}
            <dt>Tags</dt>
            <dd>
              {d.tags.length
                ? d.tags.map((t) => (
                    <span class="tag" key={t.key}>
                      {t.key}: {t.value}
                    </span>
                  ))
                : '—'}
            </dd>
            <dt>Connection</dt>
            <dd>{formatTime(d.connectionInfo.time)}</dd>
            {d.deviceClass === 'peripheral' ? (
              <>
                <dt>Binding</dt>
                <dd data-testid="binding">
                  {d.gatewayId ? (
                    <>
                      only through{' '}
                      <a href={`/app/${appId}/devices/${d.gatewayId}`}>{nameOf(d.gatewayId) ?? d.gatewayId}</a>
                    </>
                  ) : (
                    'any gateway of the application'
                  )}
                </dd>
                <dt>Last came through</dt>
                <dd data-testid="last-gateway">
                  {lastGateway ? (
                    <>
                      <a href={`/app/${appId}/devices/${lastGateway.deviceId}`}>
                        {nameOf(lastGateway.deviceId) ?? lastGateway.deviceId}
                      </a>{' '}
                      at {formatTime(lastGateway.time)}
                    </>
                  ) : (
                    'no report yet'
                  )}
                </dd>
              </>
            ) : null}
          </dl>
        </div>
        <div class="card">
          <h2>Live state</h2>
          <ErrorBox error={composite.error} />
          <div class="values" data-testid="live-state">
            {d.attributes.map((a) => {
              const v = composite.data?.[a.name];
              return (
                <div class="value" key={a.name} data-attribute={a.name}>
                  <span class="value-name">{a.name}</span>
                  <span class="value-number">{formatValue(v?.value)}</span>
                  <span class="value-time">{v ? formatTime(v.time) : 'no value yet'}</span>
                </div>
              );
            })}
          </div>
          {d.attributes.length === 0 ? <Empty>No attributes defined.</Empty> : null}
        </div>
      </div>

      {isGateway ? (
        <Peripherals
          appId={appId}
          device={d}
          ids={peripheralIds}
          values={peripheralValues}
          nameOf={nameOf}
          error={periphLoad.error}
          devices={names.data ?? []}
        />
      ) : null}

      {d.gateways ? (
        <div class="card">
          <h2>Gateway trail</h2>
          {d.gateways.length === 0 ? (
            <Empty>No gateway has reported for this peripheral yet.</Empty>
          ) : (
            <div class="table-wrap">
              <table data-testid="gateway-trail">
                <thead>
                  <tr>
                    <th scope="col">Gateway</th>
                    <th scope="col">First seen</th>
                    <th scope="col">Last seen</th>
                    <th scope="col">Reports</th>
                  </tr>
                </thead>
                <tbody>
                  {d.gateways.map((g) => (
                    <tr key={g.gatewayId}>
                      <td>
                        <a href={`/app/${appId}/devices/${g.gatewayId}`}>{nameOf(g.gatewayId) ?? g.gatewayId}</a>
                      </td>
                      <td>{formatTime(g.firstSeen)}</td>
                      <td>{formatTime(g.lastSeen)}</td>
                      <td>{g.reports}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      ) : null}

      {/* A device without number attributes (often a gateway) has nothing to chart. */}
      {d.attributes.some((a) => a.dataType === 'number' || a.dataType === 'boolean') ? (
        <AttributeChart appId={appId} device={d} tick={chartTick} />
      ) : null}

      {canEdit ? <CommandForm appId={appId} deviceId={d.id} /> : null}

      <div class="grid2">
        <div class="card">
          <h2>State history</h2>
          <ErrorBox error={history.error} />
          <div class="table-wrap scroll">
            <table data-testid="state-history">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Data</th>
                  <th scope="col">Reported by</th>
                </tr>
              </thead>
              <tbody>
                {(history.data ?? []).map((s) => (
                  <tr key={s.time + s.reportedBy}>
                    <td>{formatTime(s.time)}</td>
                    <td>
                      <code>{JSON.stringify(s.data)}</code>
                    </td>
                    <td>
                      {s.reportedBy === d.id ? (
                        'itself'
                      ) : nameOf(s.reportedBy) ? (
                        <a href={`/app/${appId}/devices/${s.reportedBy}`}>{nameOf(s.reportedBy)}</a>
                      ) : (
                        s.reportedBy
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {history.data?.length === 0 ? <Empty>No state reported yet.</Empty> : null}
          </div>
        </div>
        <div class="card">
          <h2>Connection log</h2>
          <ErrorBox error={log.error} />
          <ul class="log" data-testid="connection-log">
            {(log.data ?? []).map((e, i) => (
              <li key={`${e.time}-${i}`}>
                <span class={`kind kind-${e.kind}`}>{e.kind}</span> <time>{formatTime(e.time)}</time>{' '}
                <span class="muted">{describeLog(e)}</span>
              </li>
            ))}
            {log.data?.length === 0 ? <li class="muted">Nothing logged yet.</li> : null}
          </ul>
        </div>
      </div>
    </section>
  );
}

function describeLog(e: LogEntry): string {
  const parts = ['reason', 'disconnectReason', 'ipAddress', 'topic', 'attribute']
    .filter((k) => e[k] !== undefined)
    .map((k) => String(e[k]));
  return parts.join(' · ');
}

function Peripherals(props: {
  appId: string;
  device: Device;
  ids: string[];
  values: Record<string, Composite>;
  nameOf: (id: string) => string | undefined;
  error: unknown;
  devices: Device[];
}) {
  const { appId, device, ids, values, nameOf, devices } = props;
  const recent = new Map(device.peripherals?.recent.map((r) => [r.deviceId, r]) ?? []);
  const bound = new Set(device.peripherals?.bound ?? []);
  return (
    <div class="card">
      <h2>Peripherals</h2>
      <ErrorBox error={props.error} />
      {ids.length === 0 ? (
        <Empty>No peripheral is bound to this gateway or has reported through it.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="steady" data-testid="peripherals">
            <thead>
              <tr>
                <th scope="col">Peripheral</th>
                <th scope="col">Binding</th>
                <th scope="col">Status</th>
                <th scope="col">Last values</th>
                <th scope="col">Last report through here</th>
              </tr>
            </thead>
            <tbody>
              {ids.map((id) => {
                const p = devices.find((x) => x.id === id);
                const vals = values[id] ?? {};
                const r = recent.get(id);
                return (
                  <tr key={id} data-peripheral={id}>
                    <td>
                      <a href={`/app/${appId}/devices/${id}`}>{nameOf(id) ?? id}</a>
                    </td>
                    <td>{bound.has(id) ? 'bound here' : 'any gateway'}</td>
                    <td>
                      <ConnectionBadge connected={p?.connectionInfo.connected} />
                    </td>
                    <td class="last-values">
                      {Object.keys(vals).length
                        ? Object.entries(vals).map(([k, v]) => (
                            <span class="kv" key={k}>
                              {k}: <strong>{formatValue(v.value)}</strong>
                            </span>
                          ))
                        : '—'}
                    </td>
                    <td>{r ? `${formatTime(r.lastSeen)} (${r.reports})` : '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

const RANGES: Array<[string, number]> = [
  ['Last 15 minutes', 15 * 60_000],
  ['Last hour', 3_600_000],
  ['Last 6 hours', 6 * 3_600_000],
  ['Last 24 hours', 86_400_000],
  ['Last 7 days', 7 * 86_400_000],
];
const AGGREGATIONS = ['MEAN', 'MIN', 'MAX', 'LAST', 'FIRST', 'SUM', 'COUNT', 'NONE'];

function AttributeChart({ appId, device, tick }: { appId: string; device: Device; tick: number }) {
  const numeric = device.attributes.filter((a) => a.dataType === 'number' || a.dataType === 'boolean');
  const [attribute, setAttribute] = useState(numeric[0]?.name ?? '');
  const [range, setRange] = useState(RANGES[1]![1]);
  const [aggregation, setAggregation] = useState('MEAN');
  const data = useAsync(async () => {
    if (!attribute) return { series: [] as Series[], range: undefined };
    // Whole minutes from a minute boundary: the server answers from its rollups (data-queries.md).
    const end = Date.now();
    const resolution = Math.max(60_000, Math.ceil(range / 120 / 60_000) * 60_000);
    const start = Math.floor((end - range) / 60_000) * 60_000;
    const r = await api<{ devices: Record<string, { points: { time: string; data: Record<string, unknown> }[] }> }>(
      'POST',
      `/applications/${appId}/data/time-series-query`,
      { deviceIds: [device.id], attributes: [attribute], start, end, resolution, aggregation },
    );
    const points = (r.devices[device.id]?.points ?? []).map((p): [number, number | null] => {
      const v = p.data[attribute];
      return [Date.parse(p.time), typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : null];
    });
    return { series: [{ label: `${attribute} (${aggregation})`, points }], range: [start, end] as [number, number] };
  }, [appId, device.id, attribute, range, aggregation, tick]);

  return (
    <div class="card">
      <h2>Chart</h2>
      {numeric.length === 0 ? (
        <Empty>No number attribute to chart.</Empty>
      ) : (
        <>
          <div class="filters">
            <div class="field">
              <label for="chart-attribute">Attribute</label>
              <select id="chart-attribute" value={attribute} onChange={(e) => setAttribute(e.currentTarget.value)}>
                {numeric.map((a) => (
                  <option key={a.name} value={a.name}>
                    {a.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="chart-range">Range</label>
              <select id="chart-range" value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
                {RANGES.map(([label, ms]) => (
                  <option key={ms} value={ms}>
                    {label}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="chart-aggregation">Aggregation</label>
              <select
                id="chart-aggregation"
                value={aggregation}
                onChange={(e) => setAggregation(e.currentTarget.value)}
              >
                {AGGREGATIONS.map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <ErrorBox error={data.error} />
          <Chart
            series={data.data?.series ?? [{ label: `${attribute} (${aggregation})`, points: [] }]}
            range={data.data?.range}
            label={`Chart of ${attribute}`}
          />
        </>
      )}
    </div>
  );
}

function CommandForm({ appId, deviceId }: { appId: string; deviceId: string }) {
  const [name, setName] = useState('');
  const [payload, setPayload] = useState('');
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<string | undefined>();
  const errs = fieldErrors(error);
  return (
    <form
      class="card form"
      aria-label="Send a command"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        setResult(undefined);
        let body: { name: string; payload?: unknown };
        try {
          body = payload.trim() ? { name, payload: JSON.parse(payload) } : { name };
        } catch (err) {
          setError(new Error(`payload is not JSON: ${(err as Error).message}`));
          return;
        }
        try {
          const r = await api<{ commandId: string; routedTo: string[] }>(
            'POST',
            `/applications/${appId}/devices/${deviceId}/command`,
            body,
          );
          setResult(
            r.routedTo.length
              ? `Sent (to ${r.routedTo.length} connection).`
              : 'Recorded: nothing connected may receive it now.',
          );
        } catch (err) {
          setError(err);
        }
      }}
    >
      <h2>Send a command</h2>
      <div class="row wrap">
        <Field label="Command name" id="command-name" error={errs.field.name}>
          <input id="command-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Payload (JSON, optional)" id="command-payload" error={errs.field.payload}>
          <textarea
            id="command-payload"
            rows={2}
            value={payload}
            onInput={(e) => setPayload(e.currentTarget.value)}
            placeholder='{"level": 3}'
          />
        </Field>
      </div>
      <ErrorBox error={errs.form} />
      {result ? (
        <p class="ok" role="status">
          {result}
        </p>
      ) : null}
      <button type="submit">Send command</button>
    </form>
  );
}
