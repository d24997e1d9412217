/**
 * Workflows (docs/workflows.md): the list with enable/disable, and one workflow's page: its
 * graph (read-only), a JSON editor whose save shows the server's validation message, its run
 * log and its live debug stream.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, get, type Page } from '../api';
import { useEventStream } from '../live';
import { navigate } from '../router';
import { useRole } from '../session';
import { Empty, ErrorBox, Field, fieldErrors, formatTime, useAsync } from '../ui';

interface FlowNode {
  id?: string;
  key?: string;
  type: string;
  config?: Record<string, unknown>;
  meta?: { x?: number; y?: number; label?: string; [k: string]: unknown };
  outputIds: string[][];
}
interface Flow {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  triggers: FlowNode[];
  nodes: FlowNode[];
  globals: { key: string; json: string }[];
  stats: { runCount: number; errorCount: number };
  lastUpdated: string;
}
interface Run {
  time: string;
  flowVersion: string;
  triggerType: string;
  pathsCompleted: number;
  pathsFailed: number;
  wallTime: number;
  errors: { nodeId: string; nodeType: string; message: string }[];
}
interface Debug {
  time: string;
  nodeId?: string;
  kind: string;
  level: string;
  message: string;
  value?: unknown;
}

export function Workflows({ appId }: { appId: string }) {
  const { canEdit } = useRole(appId);
  const flows = useAsync(() => get<Page<Flow>>(`/applications/${appId}/flows?perPage=1000`), [appId]);
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  const errs = fieldErrors(error);
  return (
    <section>
      <h1>Workflows</h1>
      <ErrorBox error={flows.error} />
      {errs.form && !canEdit ? <ErrorBox error={errs.form} /> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Enabled</th>
              <th scope="col">Runs</th>
              <th scope="col">Errors</th>
              <th scope="col">Changed</th>
            </tr>
          </thead>
          <tbody>
            {(flows.data?.items ?? []).map((f) => (
              <tr key={f.id}>
                <td>
                  <a href={`/app/${appId}/workflows/${f.id}`}>{f.name}</a>
                </td>
                <td>
                  {canEdit ? (
                    <EnableToggle appId={appId} flow={f} onChange={flows.reload} onError={setError} />
                  ) : f.enabled ? (
                    'yes'
                  ) : (
                    'no'
                  )}
                </td>
                <td>{f.stats.runCount}</td>
                <td>{f.stats.errorCount}</td>
                <td>{formatTime(f.lastUpdated)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {flows.data?.items.length === 0 ? <Empty>No workflow yet.</Empty> : null}
      </div>
      {canEdit ? (
        <form
          class="card form"
          aria-label="Create a workflow"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(undefined);
            try {
              const f = await api<Flow>('POST', `/applications/${appId}/flows`, { name });
              navigate(`/app/${appId}/workflows/${f.id}`);
            } catch (err) {
              setError(err);
            }
          }}
        >
          <h2>New workflow</h2>
          <Field label="Name" id="flow-name" error={errs.field.name}>
            <input id="flow-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <ErrorBox error={errs.form} />
          <button type="submit">Create workflow</button>
        </form>
      ) : null}
    </section>
  );
}

function EnableToggle(props: { appId: string; flow: Flow; onChange: () => void; onError: (e: unknown) => void }) {
  const { appId, flow } = props;
  return (
    <label class="check">
      <input
        type="checkbox"
        checked={flow.enabled}
        onChange={async (e) => {
          try {
            await api('PATCH', `/applications/${appId}/flows/${flow.id}`, { enabled: e.currentTarget.checked });
            props.onChange();
          } catch (err) {
            props.onError(err);
          }
        }}
      />
      <span>{flow.enabled ? 'Enabled' : 'Disabled'}</span>
    </label>
  );
}

/** The definition fields the editor edits: what PATCH takes besides name and flags. */
const definitionOf = (f: Flow) => ({ triggers: f.triggers, nodes: f.nodes, globals: f.globals });

export function WorkflowPage({ appId, flowId }: { appId: string; flowId: string }) {
  const { canEdit } = useRole(appId);
  const flow = useAsync(() => get<Flow>(`/applications/${appId}/flows/${flowId}`), [appId, flowId]);
  const runs = useAsync(() => get<Run[]>(`/applications/${appId}/flows/${flowId}/logs?limit=50`), [appId, flowId]);
  const [text, setText] = useState('');
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [debug, setDebug] = useState<Debug[]>([]);
  const [debugOn, setDebugOn] = useState(true);
  useEffect(() => {
    if (flow.data) setText(JSON.stringify(definitionOf(flow.data), null, 2));
  }, [flow.data]);
  const lastRuns = useRef(0);
  const onDebug = (d: Debug) => {
    setDebug((list) => [d, ...list].slice(0, 200));
    // A debug entry means a run: its log entry is written shortly after (at most every 2 s).
    if (Date.now() - lastRuns.current > 2000) {
      lastRuns.current = Date.now();
      setTimeout(runs.reload, 800);
    }
  };
  useEventStream(debugOn ? `/applications/${appId}/flows/${flowId}/debugStream` : undefined, {
    debug: onDebug,
    error: onDebug,
  });

  const f = flow.data;
  if (flow.error) return <ErrorBox error={flow.error} />;
  if (!f) return <p class="loading">Loading…</p>;
  return (
    <section>
      <div class="page-head">
        <div>
          <h1>{f.name}</h1>
          <p class="muted">
            {f.enabled ? 'Enabled' : 'Disabled'} · {f.stats.runCount} runs · {f.stats.errorCount} errors
          </p>
        </div>
        {canEdit ? (
          <div class="actions">
            <EnableToggle appId={appId} flow={f} onChange={flow.reload} onError={setError} />
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (!confirm(`Delete workflow ${f.name}?`)) return;
                await api('DELETE', `/applications/${appId}/flows/${f.id}`);
                navigate(`/app/${appId}/workflows`);
              }}
            >
              Delete
            </button>
          </div>
        ) : null}
      </div>
      <div class="card">
        <h2>Graph</h2>
        <FlowGraph flow={f} />
      </div>
      <form
        class="card form"
        aria-label="Workflow definition"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          setSaved(false);
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch (err) {
            setError(new Error(`not JSON: ${(err as Error).message}`));
            return;
          }
          try {
            flow.setData(await api<Flow>('PATCH', `/applications/${appId}/flows/${f.id}`, body));
            setSaved(true);
          } catch (err) {
            setError(err);
          }
        }}
      >
        <h2>Definition (JSON)</h2>
        <Field label="Triggers, nodes and globals" id="flow-json" error={error ? (error as Error).message : undefined}>
          <textarea
            id="flow-json"
            class="code"
            rows={16}
            spellcheck={false}
            readOnly={!canEdit}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </Field>
        {saved ? (
          <p class="ok" role="status">
            Saved.
          </p>
        ) : null}
        {canEdit ? <button type="submit">Save definition</button> : null}
      </form>
      <div class="grid2">
        <div class="card">
          <h2>Runs</h2>
          <ErrorBox error={runs.error} />
          <ul class="log" data-testid="runs">
            {(runs.data ?? []).map((r, i) => (
              <li key={`${r.time}-${i}`}>
                <time>{formatTime(r.time)}</time> {r.triggerType} · {r.pathsCompleted} ok
                {r.pathsFailed ? <span class="kind kind-rejected"> {r.pathsFailed} failed</span> : null} ·{' '}
                {r.wallTime.toFixed(1)} ms
                {r.errors.map((e) => (
                  <div class="muted" key={e.nodeId}>
                    {e.nodeType} {e.nodeId}: {e.message}
                  </div>
                ))}
              </li>
            ))}
            {runs.data?.length === 0 ? <li class="muted">No runs yet.</li> : null}
          </ul>
        </div>
        <div class="card">
          <div class="page-head">
            <h2>Debug</h2>
            <button type="button" class="secondary" aria-pressed={!debugOn} onClick={() => setDebugOn(!debugOn)}>
              {debugOn ? 'Pause' : 'Resume'}
            </button>
          </div>
          <ul class="log" data-testid="debug">
            {debug.map((d, i) => (
              <li key={`${d.time}-${i}`}>
                <time>{formatTime(d.time)}</time> <span class={`kind kind-${d.kind}`}>{d.kind}</span> {d.nodeId ?? ''}{' '}
                {d.message}
                {d.value !== undefined ? <pre>{JSON.stringify(d.value, null, 2)}</pre> : null}
              </li>
            ))}
            {debug.length === 0 ? <li class="muted">Debug output of the running workflow shows here.</li> : null}
          </ul>
        </div>
      </div>
    </section>
  );
}

const W = 150;
const H = 40;

/**
 * The workflow as boxes and arrows. Positions come from each node's `meta.x/y` (Losant's editor
 * stores them there); nodes without one are laid out in columns by their distance from a trigger.
 */
function FlowGraph({ flow }: { flow: Flow }) {
  const all = [
    ...flow.triggers.map((t, i) => ({ ...t, id: t.key ?? `trigger-${i}`, trigger: true })),
    ...flow.nodes.map((n) => ({ ...n, id: n.id ?? '', trigger: false })),
  ];
  if (all.length === 0) return <Empty>Nothing in this workflow yet.</Empty>;
  const depth = new Map<string, number>();
  const queue = all.filter((n) => n.trigger).map((n) => n.id);
  for (const id of queue) depth.set(id, 0);
  while (queue.length) {
    const id = queue.shift()!;
    const n = all.find((x) => x.id === id);
    for (const out of n?.outputIds.flat() ?? []) {
      if (!depth.has(out)) {
        depth.set(out, (depth.get(id) ?? 0) + 1);
        queue.push(out);
      }
    }
  }
  const rows = new Map<number, number>();
  const pos = new Map<string, { x: number; y: number }>();
  for (const n of all) {
    const mx = typeof n.meta?.x === 'number' ? n.meta.x : undefined;
    const my = typeof n.meta?.y === 'number' ? n.meta.y : undefined;
    if (mx !== undefined && my !== undefined) {
      pos.set(n.id, { x: mx, y: my });
    } else {
      const d = depth.get(n.id) ?? 0;
      const r = rows.get(d) ?? 0;
      rows.set(d, r + 1);
      pos.set(n.id, { x: 20 + d * (W + 60), y: 20 + r * (H + 30) });
    }
  }
  const xs = [...pos.values()].map((p) => p.x);
  const ys = [...pos.values()].map((p) => p.y);
  const minX = Math.min(...xs) - 20;
  const minY = Math.min(...ys) - 20;
  const width = Math.max(...xs) - minX + W + 20;
  const height = Math.max(...ys) - minY + H + 20;
  return (
    <div class="graph-wrap">
      <svg
        class="flow-graph"
        viewBox={`${minX} ${minY} ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-label={`Graph of ${flow.name}`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="#667" />
          </marker>
        </defs>
        {all.flatMap((n) =>
          n.outputIds.flatMap((outs, branch) =>
            outs.map((out) => {
              const a = pos.get(n.id);
              const b = pos.get(out);
              if (!a || !b) return null;
              return (
                <line
                  key={`${n.id}-${branch}-${out}`}
                  x1={a.x + W}
                  y1={a.y + H / 2 + (n.outputIds.length > 1 ? (branch ? 8 : -8) : 0)}
                  x2={b.x}
                  y2={b.y + H / 2}
                  stroke={branch ? '#b55' : '#667'}
                  stroke-width="1.5"
                  marker-end="url(#arrow)"
                />
              );
            }),
          ),
        )}
        {all.map((n) => {
          const p = pos.get(n.id)!;
          const label = n.meta?.label ?? n.type;
          return (
            <g key={n.id} transform={`translate(${p.x},${p.y})`}>
              <rect width={W} height={H} rx="6" class={n.trigger ? 'node trigger' : 'node'} />
              <text x={W / 2} y={H / 2 + 4} text-anchor="middle">
                {String(label).slice(0, 22)}
              </text>
              <title>{`${n.type} ${n.id}`}</title>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
