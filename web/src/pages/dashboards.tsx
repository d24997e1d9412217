/**
 * Dashboards (docs/dashboards.md): the list, and one dashboard drawn on Losant's grid of 4
 * columns (positions in steps of 0.5). Blocks re-read their data on live events of the
 * application and at the dashboard's refresh rate. Editors add blocks, drag them by their
 * header (or move them with the arrow keys) and edit the blocks as JSON; every save goes to
 * the server, whose validation message is shown when it refuses.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Device, get, type Page } from '../api';
import { type Block, BlockBody } from '../blocks';
import { useEventStream } from '../live';
import { navigate } from '../router';
import { useRole } from '../session';
import { Empty, ErrorBox, Field, fieldErrors, formatTime, useAsync } from '../ui';

interface Dashboard {
  id: string;
  name: string;
  description: string;
  refreshRate: number;
  blocks: Block[];
  contextConfiguration: Array<{ name?: string; defaultValue?: unknown }>;
  lastUpdated: string;
}

export function Dashboards({ appId }: { appId: string }) {
  const { canEdit } = useRole(appId);
  const list = useAsync(() => get<Page<Dashboard>>(`/applications/${appId}/dashboards?perPage=1000`), [appId]);
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  const errs = fieldErrors(error);
  return (
    <section>
      <h1>Dashboards</h1>
      <ErrorBox error={list.error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Blocks</th>
              <th scope="col">Changed</th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.items ?? []).map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={`/app/${appId}/dashboards/${d.id}`}>{d.name}</a>
                </td>
                <td>{d.blocks.length}</td>
                <td>{formatTime(d.lastUpdated)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data?.items.length === 0 ? <Empty>No dashboard yet.</Empty> : null}
      </div>
      {canEdit ? (
        <form
          class="card form"
          aria-label="Create a dashboard"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(undefined);
            try {
              const d = await api<Dashboard>('POST', `/applications/${appId}/dashboards`, { name, blocks: [] });
              navigate(`/app/${appId}/dashboards/${d.id}`);
            } catch (err) {
              setError(err);
            }
          }}
        >
          <h2>New dashboard</h2>
          <Field label="Dashboard name" id="dashboard-name" error={errs.field.name}>
            <input id="dashboard-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <ErrorBox error={errs.form} />
          <button type="submit">Create dashboard</button>
        </form>
      ) : null}
    </section>
  );
}

/** Height in pixels of half a grid row. */
const HALF_ROW = 80;

const overlaps = (a: Block, b: Block) =>
  a.startX < b.startX + b.width &&
  b.startX < a.startX + a.width &&
  a.startY < b.startY + b.height &&
  b.startY < a.startY + a.height;

/** `{{ctx.NAME}}` in a block's config, from the dashboard's context defaults. */
function withContext(block: Block, context: Dashboard['contextConfiguration']): Block {
  if (!context.length) return block;
  const text = JSON.stringify(block.config).replace(/\{\{\s*ctx\.([\w-]+)\s*\}\}/g, (all, name: string) => {
    const v = context.find((c) => c.name === name)?.defaultValue;
    return v === undefined ? all : String(v).replace(/["\\]/g, '');
  });
  return { ...block, config: JSON.parse(text) };
}

export function DashboardPage({ appId, dashboardId }: { appId: string; dashboardId: string }) {
  const { canEdit } = useRole(appId);
  const dash = useAsync(() => get<Dashboard>(`/applications/${appId}/dashboards/${dashboardId}`), [appId, dashboardId]);
  const [tick, setTick] = useState(0);
  const [error, setError] = useState<unknown>();
  const [moving, setMoving] = useState<{ id: string; x: number; y: number } | undefined>();
  const grid = useRef<HTMLDivElement>(null);
  const lastTick = useRef(0);
  const pendingTick = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  // Live: blocks re-read at most once a second while events come in.
  const bump = () => {
    const wait = 1000 - (Date.now() - lastTick.current);
    if (pendingTick.current) return;
    pendingTick.current = setTimeout(
      () => {
        pendingTick.current = undefined;
        lastTick.current = Date.now();
        setTick((t) => t + 1);
      },
      Math.max(0, wait),
    );
  };
  useEffect(() => () => clearTimeout(pendingTick.current), []);
  useEventStream(dash.data ? `/applications/${appId}/events?types=state,connect,disconnect` : undefined, {
    state: bump,
    connect: bump,
    disconnect: bump,
  });
  const refresh = dash.data?.refreshRate ?? 60;
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), refresh * 1000);
    return () => clearInterval(t);
  }, [refresh]);

  const d = dash.data;
  /**
   * Saves the blocks; a refusal is returned (the forms show it at their field) and, for changes
   * made on the grid itself, shown above the grid.
   */
  const save: Save = async (blocks, onGrid = false) => {
    setError(undefined);
    try {
      dash.setData(await api<Dashboard>('PATCH', `/applications/${appId}/dashboards/${dashboardId}`, { blocks }));
      return undefined;
    } catch (err) {
      if (onGrid) setError(err);
      return err;
    }
  };
  const moveTo = (block: Block, x: number, y: number) => {
    if (!d) return;
    const nx = Math.min(4 - block.width, Math.max(0, Math.round(x * 2) / 2));
    const ny = Math.max(0, Math.round(y * 2) / 2);
    if (nx === block.startX && ny === block.startY) return;
    const moved = { ...block, startX: nx, startY: ny };
    if (d.blocks.some((b) => b.id !== block.id && overlaps(b, moved))) {
      setError(new Error('A block is already there.'));
      return;
    }
    void save(
      d.blocks.map((b) => (b.id === block.id ? moved : b)),
      true,
    );
  };

  if (dash.error) return <ErrorBox error={dash.error} />;
  if (!d) return <p class="loading">Loading…</p>;
  const rows = Math.max(2, ...d.blocks.map((b) => (b.startY + b.height) * 2)) + (canEdit ? 1 : 0);

  return (
    <section>
      <div class="page-head">
        <div>
          <h1>{d.name}</h1>
          {d.description ? <p class="muted">{d.description}</p> : null}
        </div>
        {canEdit ? (
          <div class="actions">
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (!confirm(`Delete dashboard ${d.name}?`)) return;
                await api('DELETE', `/applications/${appId}/dashboards/${d.id}`);
                navigate(`/app/${appId}/dashboards`);
              }}
            >
              Delete dashboard
            </button>
          </div>
        ) : null}
      </div>
      <ErrorBox error={error} />
      <div class="dash-grid" ref={grid} style={{ '--rows': rows }}>
        {d.blocks.map((raw) => {
          const b = withContext(raw, d.contextConfiguration);
          const pos = moving?.id === b.id ? { x: moving.x, y: moving.y } : { x: b.startX, y: b.startY };
          return (
            <article
              key={b.id}
              class={`block${moving?.id === b.id ? ' dragging' : ''}`}
              data-block={b.id}
              data-type={b.blockType}
              aria-label={b.title || b.blockType}
              style={{
                '--x': pos.x * 2 + 1,
                '--y': pos.y * 2 + 1,
                '--w': b.width * 2,
                '--h': b.height * 2,
              }}
            >
              <header class="block-head">
                {canEdit ? (
                  <button
                    type="button"
                    class="drag-handle"
                    aria-label={`Move ${b.title || b.blockType} (drag, or arrow keys)`}
                    title="Drag to move; arrow keys move by half a cell"
                    onPointerDown={(e) => {
                      const el = grid.current;
                      if (!el) return;
                      e.currentTarget.setPointerCapture(e.pointerId);
                      const colWidth = el.clientWidth / 4;
                      const start = { px: e.clientX, py: e.clientY, x: b.startX, y: b.startY };
                      const at = (ev: PointerEvent) => ({
                        x: Math.min(
                          4 - b.width,
                          Math.max(0, Math.round((start.x + (ev.clientX - start.px) / colWidth) * 2) / 2),
                        ),
                        y: Math.max(0, Math.round((start.y + (ev.clientY - start.py) / (HALF_ROW * 2)) * 2) / 2),
                      });
                      const target = e.currentTarget;
                      const onMove = (ev: PointerEvent) => setMoving({ id: b.id, ...at(ev) });
                      const onUp = (ev: PointerEvent) => {
                        target.removeEventListener('pointermove', onMove);
                        target.removeEventListener('pointerup', onUp);
                        setMoving(undefined);
                        const p = at(ev);
                        moveTo(raw, p.x, p.y);
                      };
                      target.addEventListener('pointermove', onMove);
                      target.addEventListener('pointerup', onUp);
                    }}
                    onKeyDown={(e) => {
                      const step: Record<string, [number, number]> = {
                        ArrowLeft: [-0.5, 0],
                        ArrowRight: [0.5, 0],
                        ArrowUp: [0, -0.5],
                        ArrowDown: [0, 0.5],
                      };
                      const s = step[e.key];
                      if (!s) return;
                      e.preventDefault();
                      moveTo(raw, b.startX + s[0], b.startY + s[1]);
                    }}
                  >
                    ⠿
                  </button>
                ) : null}
                <h2>{b.title || b.blockType}</h2>
                {canEdit ? (
                  <button
                    type="button"
                    class="block-remove secondary"
                    aria-label={`Remove ${b.title || b.blockType}`}
                    onClick={() =>
                      void save(
                        d.blocks.filter((x) => x.id !== b.id),
                        true,
                      )
                    }
                  >
                    ×
                  </button>
                ) : null}
              </header>
              <div class="block-body">
                <BlockBody appId={appId} block={b} tick={tick} />
              </div>
            </article>
          );
        })}
      </div>
      {d.blocks.length === 0 ? <Empty>No blocks yet.</Empty> : null}
      {canEdit ? <AddBlock appId={appId} dashboard={d} save={save} /> : null}
      {canEdit ? <BlocksJson dashboard={d} save={save} /> : null}
    </section>
  );
}

const BLOCK_TYPES = [
  'graph',
  'gauge',
  'indicator',
  'gateway',
  'device-list',
  'device-state-table',
  'device-log',
  'input',
];

/** A starting config for each type, with a device of the application where one is needed. */
function template(type: string, devices: Device[]): Record<string, unknown> {
  const withNumber = devices.find((d) => d.attributes.some((a) => a.dataType === 'number'));
  const attribute = withNumber?.attributes.find((a) => a.dataType === 'number')?.name ?? 'temperature';
  const deviceIds = withNumber ? [withNumber.id] : [];
  const gateway = devices.find((d) => d.deviceClass === 'gateway' || d.deviceClass === 'edgeCompute');
  switch (type) {
    case 'graph':
      return {
        duration: 3_600_000,
        resolution: 60_000,
        segments: [{ deviceIds, attribute, aggregation: 'MEAN', graphType: 'line' }],
      };
    case 'gauge':
      return { gaugeType: 'dial', gaugeMin: 0, gaugeMax: 50, segment: { deviceIds, attribute, aggregation: 'LAST' } };
    case 'indicator':
      return {
        segments: [{ deviceIds, attribute, aggregation: 'LAST' }],
        conditions: [{ condition: '{{value-0}} > 30', label: 'Hot', color: '#d62728' }],
        defaultCondition: { label: 'Normal', color: '#2ca02c' },
      };
    case 'gateway':
      return { gatewayId: gateway?.id ?? '', showPeripherals: true, attributes: [attribute] };
    case 'device-list':
      return { columns: [{ type: 'name' }, { type: 'connectionStatus' }, { type: 'attribute', source: attribute }] };
    case 'device-state-table':
      return { deviceIds, columns: [{ type: 'deviceName' }, { type: 'attribute', attribute }, { type: 'timestamp' }] };
    case 'device-log':
      return { deviceIds: devices.slice(0, 10).map((d) => d.id), maxResultsPerDevice: 20 };
    default:
      return {
        controls: [{ id: 'b1', type: 'button', label: 'Send', action: 'command', commandName: 'ping', deviceIds }],
      };
  }
}

/** The first free place for a block of this size, top to bottom, left to right. */
function freePlace(blocks: Block[], width: number, height: number): { startX: number; startY: number } {
  for (let y = 0; ; y += 0.5) {
    for (let x = 0; x + width <= 4; x += 0.5) {
      const b = { startX: x, startY: y, width, height } as Block;
      if (!blocks.some((o) => overlaps(o, b))) return { startX: x, startY: y };
    }
  }
}

/** Saves a dashboard's blocks; answers the refusal, if any. */
type Save = (blocks: Block[], onGrid?: boolean) => Promise<unknown>;

function AddBlock(props: { appId: string; dashboard: Dashboard; save: Save }) {
  const devices = useAsync(
    () => get<Page<Device>>(`/applications/${props.appId}/devices?perPage=1000`).then((p) => p.items),
    [props.appId],
  );
  const [type, setType] = useState('graph');
  const [title, setTitle] = useState('');
  const [width, setWidth] = useState(2);
  const [height, setHeight] = useState(2);
  const [config, setConfig] = useState('');
  const [error, setError] = useState<unknown>();
  // The template follows the block type and the devices as they load, until the user edits the config:
  // a late device list must not overwrite what was typed.
  const [edited, setEdited] = useState(false);
  useEffect(() => setEdited(false), [type]);
  useEffect(() => {
    if (!edited) setConfig(JSON.stringify(template(type, devices.data ?? []), null, 2));
  }, [type, devices.data, edited]);
  return (
    <form
      class="card form"
      aria-label="Add a block"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(config);
        } catch (err) {
          setError(new Error(`config is not JSON: ${(err as Error).message}`));
          return;
        }
        const block = {
          blockType: type,
          title,
          width,
          height,
          ...freePlace(props.dashboard.blocks, width, height),
          config: parsed,
        } as Block;
        const refused = await props.save([...props.dashboard.blocks, block]);
        if (refused) setError(refused);
        else setTitle('');
      }}
    >
      <h2>Add a block</h2>
      <div class="row wrap">
        <Field label="Block type" id="block-type">
          <select id="block-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
            {BLOCK_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Title" id="block-title">
          <input id="block-title" value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        </Field>
        <Field label="Width (columns, of 4)" id="block-width">
          <input
            id="block-width"
            type="number"
            min={0.5}
            max={4}
            step={0.5}
            value={width}
            onInput={(e) => setWidth(Number(e.currentTarget.value))}
          />
        </Field>
        <Field label="Height (rows)" id="block-height">
          <input
            id="block-height"
            type="number"
            min={0.5}
            max={24}
            step={0.5}
            value={height}
            onInput={(e) => setHeight(Number(e.currentTarget.value))}
          />
        </Field>
      </div>
      <Field label="Config (JSON)" id="block-config" error={error ? (error as Error).message : undefined}>
        <textarea
          id="block-config"
          class="code"
          rows={8}
          spellcheck={false}
          value={config}
          onInput={(e) => {
            setEdited(true);
            setConfig(e.currentTarget.value);
          }}
        />
      </Field>
      <button type="submit">Add block</button>
    </form>
  );
}

function BlocksJson({ dashboard, save }: { dashboard: Dashboard; save: Save }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  useEffect(() => setText(JSON.stringify(dashboard.blocks, null, 2)), [dashboard.blocks]);
  return (
    <details class="card">
      <summary>Edit blocks as JSON</summary>
      <form
        class="form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          let blocks: Block[];
          try {
            blocks = JSON.parse(text);
          } catch (err) {
            setError(`not JSON: ${(err as Error).message}`);
            return;
          }
          const refused = await save(blocks);
          if (refused) setError((refused as Error).message);
        }}
      >
        <Field label="Blocks" id="blocks-json" error={error}>
          <textarea
            id="blocks-json"
            class="code"
            rows={16}
            spellcheck={false}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </Field>
        <button type="submit">Save blocks</button>
      </form>
    </details>
  );
}
