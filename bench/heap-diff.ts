/**
 * Compares two V8 heap snapshots (for scenario d: the server with 0 and with N idle connections,
 * written by BENCH_IDLE_SNAPSHOTS) and prints what grew, per connection:
 *
 * - by constructor: the self size and count of objects of each type and name (`object Client`,
 *   `closure nextBatch`, `array (object properties)`, …);
 * - by owner: every object's self size added to the nearest object or closure that dominates it
 *   in the retainer graph (weak edges left out), so that internal arrays, hidden classes and
 *   strings count with what holds them alone, as DevTools' "retained size" would.
 *
 * `npm run build && node dist/bench/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot N [ROWS]`
 * (give node `--max-old-space-size=4096` for large snapshots). HEAP_DIFF_EXPLAIN=LABEL,… also
 * breaks the growth of those constructors down by their first retainer and the edge's name.
 */
import { readFileSync } from 'node:fs';

interface RawSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Totals {
  count: number;
  bytes: number;
}

/** Self sizes and counts by `type name`, and self sizes by owner, of one snapshot. */
function summarize(
  raw: RawSnapshot,
  explain: Set<string>,
): { byConstructor: Map<string, Totals>; byOwner: Map<string, Totals>; byRetainer: Map<string, Totals> } {
  const { meta } = raw.snapshot;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const typeOf = meta.node_fields.indexOf('type');
  const nameOf = meta.node_fields.indexOf('name');
  const sizeOf = meta.node_fields.indexOf('self_size');
  const edgeCountOf = meta.node_fields.indexOf('edge_count');
  const edgeTypeOf = meta.edge_fields.indexOf('type');
  const edgeNameOf = meta.edge_fields.indexOf('name_or_index');
  const edgeTypes = meta.edge_types[0];
  const toNodeOf = meta.edge_fields.indexOf('to_node');
  const nodeTypes = meta.node_types[0];
  const weak = meta.edge_types[0].indexOf('weak');
  const nodes = raw.nodes;
  const edges = raw.edges;
  const n = nodes.length / nf;

  const type = (i: number) => nodeTypes[nodes[i * nf + typeOf] as number] ?? '?';
  const name = (i: number) => raw.strings[nodes[i * nf + nameOf] as number] ?? '?';
  const label = (i: number) => {
    const t = type(i);
    // Strings and numbers are named by their value: group them by type alone.
    if (t === 'string' || t === 'concatenated string' || t === 'sliced string' || t === 'number') return t;
    const nm = name(i);
    return `${t} ${nm.length > 80 ? `${nm.slice(0, 80)}…` : nm}`;
  };

  // Edges of node i are edges[firstEdge[i] .. firstEdge[i + 1]).
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += (nodes[i * nf + edgeCountOf] as number) * ef;
    firstEdge[i + 1] = e;
  }

  // Depth-first postorder from the root (node 0), strong edges only.
  const postorder = new Uint32Array(n);
  const order = new Int32Array(n).fill(-1); // postorder number, -1 unreachable
  const visited = new Uint8Array(n);
  const stack = new Uint32Array(n);
  const cursor = new Uint32Array(n);
  let top = 0;
  let count = 0;
  stack[0] = 0;
  visited[0] = 1;
  cursor[0] = firstEdge[0] as number;
  while (top >= 0) {
    const v = stack[top] as number;
    const end = firstEdge[v + 1] as number;
    let pushed = false;
    while ((cursor[v] as number) < end) {
      const e = cursor[v] as number;
      cursor[v] = e + ef;
      if (edges[e + edgeTypeOf] === weak) continue;
      const w = (edges[e + toNodeOf] as number) / nf;
      if (visited[w]) continue;
      visited[w] = 1;
      cursor[w] = firstEdge[w] as number;
      stack[++top] = w;
      pushed = true;
      break;
    }
    if (!pushed) {
      order[v] = count;
      postorder[count++] = v;
      top--;
    }
  }

  // Predecessors (strong edges between reachable nodes), by postorder number.
  const predCount = new Uint32Array(count + 1);
  for (let v = 0; v < n; v++) {
    if ((order[v] as number) < 0) continue;
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += ef) {
      if (edges[e + edgeTypeOf] === weak) continue;
      const w = (edges[e + toNodeOf] as number) / nf;
      const k = (order[w] as number) + 1;
      predCount[k] = (predCount[k] as number) + 1;
    }
  }
  for (let i = 1; i <= count; i++) predCount[i] = (predCount[i] as number) + (predCount[i - 1] as number);
  const preds = new Uint32Array(predCount[count] as number);
  const fill = predCount.slice(0, count);
  for (let v = 0; v < n; v++) {
    const ov = order[v] as number;
    if (ov < 0) continue;
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += ef) {
      if (edges[e + edgeTypeOf] === weak) continue;
      const ow = order[(edges[e + toNodeOf] as number) / nf] as number;
      const at = fill[ow] as number;
      preds[at] = ov;
      fill[ow] = at + 1;
    }
  }

  // Immediate dominators by postorder number (Cooper, Harvey and Kennedy's iteration).
  const root = count - 1;
  const idom = new Int32Array(count).fill(-1);
  idom[root] = root;
  let changed = true;
  while (changed) {
    changed = false;
    for (let b = root - 1; b >= 0; b--) {
      let dom = -1;
      for (let p = predCount[b] as number; p < (predCount[b + 1] as number); p++) {
        let other = preds[p] as number;
        if (idom[other] === -1) continue;
        if (dom === -1) {
          dom = other;
          continue;
        }
        let a = dom;
        while (a !== other) {
          while (a < other) a = idom[a] as number;
          while (other < a) other = idom[other] as number;
        }
        dom = a;
      }
      if (dom !== -1 && idom[b] !== dom) {
        idom[b] = dom;
        changed = true;
      }
    }
  }

  // The owner of a node: itself when it is an object, closure or native; else the nearest such dominator.
  const isOwner = (v: number) => {
    const t = type(v);
    return (t === 'object' || t === 'closure' || t === 'native') && !name(v).startsWith('(');
  };
  const owner = new Int32Array(count).fill(-1);
  for (let b = root; b >= 0; b--) {
    const v = postorder[b] as number;
    owner[b] = isOwner(v) ? b : b === root ? root : (owner[idom[b] as number] as number);
  }

  // For the labels to explain: the first strong retainer of each node and the edge's name,
  // looking through internal arrays (an object's properties or elements) to what holds them.
  const retainer = new Int32Array(n).fill(-1);
  const retainerEdge = new Int32Array(n).fill(-1);
  if (explain.size > 0) {
    for (let v = 0; v < n; v++) {
      if ((order[v] as number) < 0) continue;
      for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += ef) {
        if (edges[e + edgeTypeOf] === weak) continue;
        const w = (edges[e + toNodeOf] as number) / nf;
        if (retainer[w] === -1) {
          retainer[w] = v;
          retainerEdge[w] = e;
        }
      }
    }
  }
  const edgeName = (e: number) => {
    const t = edgeTypes[edges[e + edgeTypeOf] as number];
    const v = edges[e + edgeNameOf] as number;
    return t === 'element' || t === 'hidden' ? `[${v}]` : (raw.strings[v] ?? '?');
  };
  const retainedBy = (v: number): string => {
    const path: string[] = [];
    let w = v;
    for (let depth = 0; depth < 5; depth++) {
      const r = retainer[w] as number;
      if (r < 0) break;
      path.push(`${edgeName(retainerEdge[w] as number)}`);
      w = r;
      // Plain objects, arrays and contexts say little: look through them too.
      const t = type(w);
      const l = label(w);
      const through =
        t === 'array' || t === 'hidden' || t === 'object shape' || l === 'object Object' || l === 'object Array';
      if (!through && l !== 'object system / Context') break;
    }
    return `${label(w)} .${path.reverse().join('.')}`;
  };

  const byConstructor = new Map<string, Totals>();
  const byOwner = new Map<string, Totals>();
  const byRetainer = new Map<string, Totals>();
  const add = (map: Map<string, Totals>, key: string, bytes: number, items: number) => {
    const t = map.get(key);
    if (t) {
      t.bytes += bytes;
      t.count += items;
    } else map.set(key, { bytes, count: items });
  };
  for (let b = 0; b < count; b++) {
    const v = postorder[b] as number;
    const size = nodes[v * nf + sizeOf] as number;
    const l = label(v);
    add(byConstructor, l, size, 1);
    if (explain.has(l)) add(byRetainer, `${l} ⇐ ${retainedBy(v)}`, size, 1);
    const o = owner[b] as number;
    add(byOwner, label(postorder[o] as number), size, o === b ? 1 : 0);
  }
  return { byConstructor, byOwner, byRetainer };
}

function diff(before: Map<string, Totals>, after: Map<string, Totals>): Array<[string, Totals]> {
  const keys = new Set([...before.keys(), ...after.keys()]);
  const rows: Array<[string, Totals]> = [];
  for (const key of keys) {
    const a = before.get(key) ?? { count: 0, bytes: 0 };
    const b = after.get(key) ?? { count: 0, bytes: 0 };
    rows.push([key, { count: b.count - a.count, bytes: b.bytes - a.bytes }]);
  }
  return rows.sort((x, y) => y[1].bytes - x[1].bytes);
}

function print(title: string, rows: Array<[string, Totals]>, per: number, limit: number): void {
  const total = rows.reduce((s, [, t]) => s + t.bytes, 0);
  console.log(`\n${title}: ${(total / per).toFixed(0)} B per connection in all`);
  console.log('   B/conn   count/conn  what');
  for (const [key, t] of rows.slice(0, limit)) {
    console.log(`${(t.bytes / per).toFixed(1).padStart(9)}  ${(t.count / per).toFixed(2).padStart(11)}  ${key}`);
  }
}

/** Labels (`object Object`, …) whose growth is also broken down by what retains them. */
const explain = new Set((process.env.HEAP_DIFF_EXPLAIN ?? '').split(',').filter(Boolean));
const load = (file: string) => summarize(JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot, explain);

{
  const [beforeFile, afterFile, perArg, limitArg] = process.argv.slice(2);
  if (!beforeFile || !afterFile || !perArg) {
    console.error('usage: node dist/bench/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot CONNECTIONS [ROWS]');
    process.exit(2);
  }
  const per = Number(perArg);
  const limit = Number(limitArg ?? 40);
  const a = load(beforeFile);
  const b = load(afterFile);
  print('self size by constructor', diff(a.byConstructor, b.byConstructor), per, limit);
  print('self size by owner (nearest dominating object or closure)', diff(a.byOwner, b.byOwner), per, limit);
  if (explain.size > 0) print('explained, by first retainer', diff(a.byRetainer, b.byRetainer), per, limit);
}
