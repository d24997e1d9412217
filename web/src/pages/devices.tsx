/**
 * The application's devices: search by name, filter by class, tag and connection status, all
 * done and paged by the server (GET .../devices with page, perPage, filter, deviceClass,
 * tagFilter, connectionStatus), so the filters hold across every page of a large fleet.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { DEVICE_CLASSES, type Device, get, type Page, query } from '../api';
import { useEventStream } from '../live';
import { navigate, useLocation } from '../router';
import { useRole } from '../session';
import { ConnectionBadge, ErrorBox, formatTime, useAsync } from '../ui';

const PER_PAGE = 25;

export function Devices({ appId }: { appId: string }) {
  const { search } = useLocation();
  const { canEdit } = useRole(appId);
  const filter = search.get('q') ?? '';
  const deviceClass = search.get('class') ?? '';
  const tag = search.get('tag') ?? '';
  const status = search.get('status') ?? '';
  const page = Number(search.get('page') ?? 0) || 0;
  const [draft, setDraft] = useState(filter);

  // The filters live in the URL: a reload or a shared link shows the same list.
  const setParams = (changes: Record<string, string>) => {
    const next = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!('page' in changes)) next.delete('page');
    const s = next.toString();
    navigate(`/app/${appId}/devices${s ? `?${s}` : ''}`, true);
  };

  const { data, error, reload } = useAsync(
    () =>
      get<Page<Device>>(
        `/applications/${appId}/devices${query({
          page,
          perPage: PER_PAGE,
          filter,
          deviceClass,
          tagFilter: tag,
          connectionStatus: status,
        })}`,
      ),
    [appId, page, filter, deviceClass, tag, status],
  );
  // Connection changes re-read the page (at most once a second), so the status column is live.
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const soon = () => {
    pending.current ??= setTimeout(() => {
      pending.current = undefined;
      reload();
    }, 1000);
  };
  useEffect(() => () => clearTimeout(pending.current), []);
  useEventStream(`/applications/${appId}/events?types=connect,disconnect,inactive`, {
    connect: soon,
    disconnect: soon,
    inactive: soon,
  });
  const items = data?.items ?? [];
  const pages = data ? Math.max(1, Math.ceil(data.totalCount / PER_PAGE)) : 1;

  return (
    <section>
      <div class="page-head">
        <h1>Devices</h1>
        {canEdit ? (
          <a class="button" href={`/app/${appId}/devices/new`}>
            New device
          </a>
        ) : null}
      </div>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ q: draft });
        }}
      >
        <div class="field">
          <label for="device-search">Name contains</label>
          <input id="device-search" type="search" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="device-class">Class</label>
          <select id="device-class" value={deviceClass} onChange={(e) => setParams({ class: e.currentTarget.value })}>
            <option value="">Any class</option>
            {DEVICE_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="device-tag">Tag (key or key:value)</label>
          <input
            id="device-tag"
            value={tag}
            onChange={(e) => setParams({ tag: e.currentTarget.value.trim() })}
            placeholder="floor:2"
          />
        </div>
        <div class="field">
          <label for="device-status">Status</label>
          <select id="device-status" value={status} onChange={(e) => setParams({ status: e.currentTarget.value })}>
            <option value="">Any status</option>
            <option value="connected">Connected</option>
            <option value="disconnected">Not connected</option>
            <option value="inactive">Inactive</option>
          </select>
        </div>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={error} />
      <div class="table-wrap">
        <table class="devices">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Class</th>
              <th scope="col">Status</th>
              <th scope="col">Tags</th>
              <th scope="col">Last update</th>
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={`/app/${appId}/devices/${d.id}`}>{d.name}</a>
                </td>
                <td>{d.deviceClass}</td>
                <td>
                  <ConnectionBadge connected={d.connectionInfo.connected} />
                  {d.inactiveSince ? <span class="badge badge-warn">inactive</span> : null}
                </td>
                <td>
                  {d.tags.map((t) => (
                    <button
                      type="button"
                      class="tag"
                      key={`${t.key}:${t.value}`}
                      title="Show devices with this tag"
                      onClick={() => setParams({ tag: `${t.key}:${t.value}` })}
                    >
                      {t.key}: {t.value}
                    </button>
                  ))}
                </td>
                <td>{formatTime(d.lastReportedBy?.time ?? d.connectionInfo.time)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {data && items.length === 0 ? <p class="empty">No devices match.</p> : null}
      </div>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          class="secondary"
          disabled={page <= 0}
          onClick={() => setParams({ page: String(page - 1) })}
        >
          Previous
        </button>
        <span>
          Page {page + 1} of {pages} · {data?.totalCount ?? 0} devices
        </span>
        <button
          type="button"
          class="secondary"
          disabled={page + 1 >= pages}
          onClick={() => setParams({ page: String(page + 1) })}
        >
          Next
        </button>
      </nav>
    </section>
  );
}
