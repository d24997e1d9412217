/**
 * Access keys of the application (devices sign in to MQTT with one). A new key's secret is
 * shown once, with a copy button: the server keeps only its hash.
 */
import { useState } from 'preact/hooks';
import { api, get, type Key, type Page } from '../api';
import { useRole } from '../session';
import { CopyButton, ErrorBox, Field, fieldErrors, formatTime, useAsync } from '../ui';

export function Keys({ appId }: { appId: string }) {
  const { canEdit } = useRole(appId);
  // Keys are editors' business: the API refuses a viewer's list (docs/accounts.md).
  const keys = useAsync(
    () => (canEdit ? get<Page<Key>>(`/applications/${appId}/keys?perPage=1000`) : Promise.resolve(undefined)),
    [appId, canEdit],
  );
  const [description, setDescription] = useState('');
  const [deviceIds, setDeviceIds] = useState('');
  const [created, setCreated] = useState<Key | undefined>();
  const [error, setError] = useState<unknown>();
  const errs = fieldErrors(error);

  const act = async (f: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await f();
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };

  if (!canEdit) {
    return (
      <section>
        <h1>Access keys</h1>
        <p>Access keys are managed by the application's editors and owners.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>Access keys</h1>
      {created?.secret ? (
        <section class="card secret" aria-label="New access key">
          <h2>Key created</h2>
          <p>Copy the secret now: it is shown only this once.</p>
          <div class="field">
            <label for="new-key">Key</label>
            <div class="row">
              <input id="new-key" readOnly value={created.key} />
              <CopyButton text={created.key} label="Copy key" />
            </div>
          </div>
          <div class="field">
            <label for="new-secret">Secret</label>
            <div class="row">
              <input id="new-secret" readOnly value={created.secret} />
              <CopyButton text={created.secret} label="Copy secret" />
            </div>
          </div>
          <button type="button" class="secondary" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </section>
      ) : null}
      {canEdit ? (
        <form
          class="card form"
          aria-label="Create an access key"
          onSubmit={(e) => {
            e.preventDefault();
            const ids = deviceIds
              .split(/[\s,]+/)
              .map((s) => s.trim())
              .filter(Boolean);
            void act(async () => {
              const body = ids.length
                ? { description, filterType: 'whitelist', deviceIds: ids }
                : { description, filterType: 'all' };
              setCreated(await api<Key>('POST', `/applications/${appId}/keys`, body));
              setDescription('');
              setDeviceIds('');
            });
          }}
        >
          <h2>New access key</h2>
          <Field label="Description" id="key-description" error={errs.field.description}>
            <input id="key-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
          </Field>
          <Field label="Only these device ids (empty: every device)" id="key-devices" error={errs.field.deviceIds}>
            <input id="key-devices" value={deviceIds} onInput={(e) => setDeviceIds(e.currentTarget.value)} />
          </Field>
          <ErrorBox error={errs.form} />
          <button type="submit">Create key</button>
        </form>
      ) : null}
      <ErrorBox error={keys.error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Description</th>
              <th scope="col">Devices</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              {canEdit ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {(keys.data?.items ?? []).map((k) => (
              <tr key={k.id}>
                <td>
                  <code>{k.key}</code>
                </td>
                <td>{k.description}</td>
                <td>{k.filterType === 'all' ? 'all' : `${k.filterType}: ${(k.deviceIds ?? []).length}`}</td>
                <td>{k.status}</td>
                <td>{formatTime(k.creationDate)}</td>
                {canEdit ? (
                  <td class="actions">
                    <button
                      type="button"
                      class="secondary"
                      onClick={() =>
                        act(() =>
                          api('PATCH', `/applications/${appId}/keys/${k.id}`, {
                            status: k.status === 'active' ? 'inactive' : 'active',
                          }),
                        )
                      }
                    >
                      {k.status === 'active' ? 'Deactivate' : 'Activate'}
                    </button>
                    <button
                      type="button"
                      class="danger"
                      onClick={() => {
                        if (confirm(`Delete key ${k.key}? Devices using it are disconnected.`)) {
                          void act(() => api('DELETE', `/applications/${appId}/keys/${k.id}`));
                        }
                      }}
                    >
                      Delete
                    </button>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
