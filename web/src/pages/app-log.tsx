/**
 * The application's communication log (GET .../logs), newest first, with its filters (kinds, a
 * device, a device class, a tag), and live: new entries from the event stream (with the same
 * filters) are put on top.
 */
import { useState } from 'preact/hooks';
import { DEVICE_CLASSES, get, query } from '../api';
import { useEventStream } from '../live';
import { ErrorBox, formatTime, useAsync } from '../ui';

interface Entry {
  kind: string;
  time: string;
  deviceId: string;
  [k: string]: unknown;
}
const KINDS = [
  'state',
  'command',
  'connect',
  'disconnect',
  'authFailed',
  'rejected',
  'dropped',
  'inactive',
  'suppressed',
];
const LIMIT = 50;

export function AppLog({ appId }: { appId: string }) {
  const [kinds, setKinds] = useState<string[]>([]);
  const [deviceId, setDeviceId] = useState('');
  const [deviceClass, setDeviceClass] = useState('');
  const [tag, setTag] = useState('');
  const [tagDraft, setTagDraft] = useState('');
  const filters = { deviceId, deviceClass, tagFilter: tag };
  const [paused, setPaused] = useState(false);
  const [older, setOlder] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const devices = useAsync(
    () =>
      get<{ items: { id: string; name: string }[] }>(`/applications/${appId}/devices?perPage=1000`).then(
        (p) => p.items,
      ),
    [appId],
  );
  const nameOf = (id: string) => devices.data?.find((d) => d.id === id)?.name ?? id;
  const page = useAsync(async () => {
    const r = await get<{ items: Entry[]; nextBefore: string | null }>(
      `/applications/${appId}/logs${query({ limit: LIMIT, kinds: kinds.join(','), ...filters })}`,
    );
    setOlder([]);
    setCursor(r.nextBefore);
    return r.items;
  }, [appId, kinds.join(','), deviceId, deviceClass, tag]);

  const streamUrl = paused
    ? undefined
    : `/applications/${appId}/events${query({ types: kinds.join(','), ...filters })}`;
  const onEvent = (kind: string) => (e: Omit<Entry, 'kind'>) => {
    page.setData((current) => [{ ...e, kind } as Entry, ...(current ?? [])].slice(0, 500));
  };
  useEventStream(streamUrl, Object.fromEntries(KINDS.map((k) => [k, onEvent(k)])));

  const entries = [...(page.data ?? []), ...older];
  return (
    <section>
      <h1>Application log</h1>
      <div class="filters">
        <fieldset class="kinds">
          <legend>Kinds</legend>
          {KINDS.map((k) => (
            <label key={k} class="check">
              <input
                type="checkbox"
                checked={kinds.includes(k)}
                onChange={(e) => setKinds(e.currentTarget.checked ? [...kinds, k] : kinds.filter((x) => x !== k))}
              />
              {k}
            </label>
          ))}
        </fieldset>
        <div class="field">
          <label for="log-device">Device</label>
          <select id="log-device" value={deviceId} onChange={(e) => setDeviceId(e.currentTarget.value)}>
            <option value="">All devices</option>
            {(devices.data ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="log-class">Class</label>
          <select id="log-class" value={deviceClass} onChange={(e) => setDeviceClass(e.currentTarget.value)}>
            <option value="">All classes</option>
            {DEVICE_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <form
          class="field"
          onSubmit={(e) => {
            e.preventDefault();
            setTag(tagDraft.trim());
          }}
        >
          <label for="log-tag">Tag (key or key:value)</label>
          <input
            id="log-tag"
            value={tagDraft}
            placeholder="floor:2"
            onInput={(e) => setTagDraft(e.currentTarget.value)}
            onBlur={() => setTag(tagDraft.trim())}
          />
        </form>
        <button type="button" class="secondary" aria-pressed={paused} onClick={() => setPaused(!paused)}>
          {paused ? 'Resume live' : 'Pause live'}
        </button>
      </div>
      <ErrorBox error={page.error} />
      <div class="table-wrap">
        <table data-testid="app-log">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Kind</th>
              <th scope="col">Device</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e, i) => {
              const { kind, time, deviceId: dev, id: _, ...rest } = e;
              return (
                <tr key={`${time}-${kind}-${i}`}>
                  <td class="time">{formatTime(time)}</td>
                  <td>
                    <span class={`kind kind-${kind}`}>{kind}</span>
                  </td>
                  <td>
                    <a href={`/app/${appId}/devices/${dev}`}>{nameOf(dev)}</a>
                  </td>
                  <td>
                    <code class="details-json">{JSON.stringify(rest)}</code>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {cursor ? (
        <button
          type="button"
          class="secondary"
          onClick={async () => {
            const r = await get<{ items: Entry[]; nextBefore: string | null }>(
              `/applications/${appId}/logs${query({ limit: LIMIT, kinds: kinds.join(','), ...filters, before: cursor })}`,
            );
            setOlder([...older, ...r.items]);
            setCursor(r.nextBefore);
          }}
        >
          Older entries
        </button>
      ) : null}
    </section>
  );
}
