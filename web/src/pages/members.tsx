/**
 * Members of the application and its API tokens. Owners (and operators) manage both; everyone
 * else sees the member list only, without controls (tokens are owners' business).
 */
import { useState } from 'preact/hooks';
import { api, get, type Page, type Role } from '../api';
import { useRole, useSession } from '../session';
import { CopyButton, ErrorBox, Field, fieldErrors, formatTime, useAsync } from '../ui';

interface Member {
  userId: string;
  email: string;
  name: string;
  role: Role;
  creationDate: string;
}
interface Token {
  id: string;
  name: string;
  role: Role;
  token?: string;
  expiresAt: string | null;
  creationDate: string;
}
const ROLES: Role[] = ['viewer', 'editor', 'owner'];

export function Members({ appId }: { appId: string }) {
  const { isOwner } = useRole(appId);
  const { me } = useSession();
  const members = useAsync(() => get<Page<Member>>(`/applications/${appId}/members?perPage=1000`), [appId]);
  const tokens = useAsync(
    () => (isOwner ? get<Page<Token>>(`/applications/${appId}/tokens?perPage=1000`) : Promise.resolve(undefined)),
    [appId, isOwner],
  );
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [tokenName, setTokenName] = useState('');
  const [tokenRole, setTokenRole] = useState<Role>('viewer');
  const [newToken, setNewToken] = useState<Token | undefined>();
  const [memberError, setMemberError] = useState<unknown>();
  const [tokenError, setTokenError] = useState<unknown>();
  const mErr = fieldErrors(memberError);
  const tErr = fieldErrors(tokenError);

  const run = async (f: () => Promise<unknown>, setErr: (e: unknown) => void, after: () => void) => {
    setErr(undefined);
    try {
      await f();
      after();
    } catch (err) {
      setErr(err);
    }
  };

  return (
    <section>
      <h1>Members</h1>
      <ErrorBox error={members.error} />
      {isOwner ? null : <ErrorBox error={memberError} />}
      <div class="table-wrap">
        <table data-testid="members">
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Since</th>
              {isOwner ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {(members.data?.items ?? []).map((m) => (
              <tr key={m.userId}>
                <td>{m.email}</td>
                <td>{m.name}</td>
                <td>
                  {isOwner ? (
                    <select
                      aria-label={`Role of ${m.email}`}
                      value={m.role}
                      onChange={(e) => {
                        const r = e.currentTarget.value;
                        void run(
                          () => api('PATCH', `/applications/${appId}/members/${m.userId}`, { role: r }),
                          setMemberError,
                          members.reload,
                        );
                      }}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                  ) : (
                    m.role
                  )}
                </td>
                <td>{formatTime(m.creationDate)}</td>
                {isOwner ? (
                  <td>
                    <button
                      type="button"
                      class="danger"
                      disabled={m.userId === me.user?.id && me.kind !== 'admin'}
                      onClick={() =>
                        run(
                          () => api('DELETE', `/applications/${appId}/members/${m.userId}`),
                          setMemberError,
                          members.reload,
                        )
                      }
                    >
                      Remove
                    </button>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {isOwner ? (
        <form
          class="card form"
          aria-label="Add a member"
          onSubmit={(e) => {
            e.preventDefault();
            void run(
              () => api('POST', `/applications/${appId}/members`, { email, role }),
              setMemberError,
              () => {
                setEmail('');
                members.reload();
              },
            );
          }}
        >
          <h2>Add a member</h2>
          <div class="row wrap">
            <Field label="Email of an existing user" id="member-email" error={mErr.field.email}>
              <input
                id="member-email"
                type="email"
                required
                value={email}
                onInput={(e) => setEmail(e.currentTarget.value)}
              />
            </Field>
            <Field label="Role" id="member-role" error={mErr.field.role}>
              <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            </Field>
          </div>
          <ErrorBox error={mErr.form} />
          <button type="submit">Add member</button>
        </form>
      ) : null}

      {isOwner ? (
        <>
          <h1>API tokens</h1>
          {newToken?.token ? (
            <section class="card secret" aria-label="New API token">
              <h2>Token created</h2>
              <p>Copy it now: it is shown only this once.</p>
              <div class="row">
                <input aria-label="New token" readOnly value={newToken.token} />
                <CopyButton text={newToken.token} />
              </div>
              <button type="button" class="secondary" onClick={() => setNewToken(undefined)}>
                Done
              </button>
            </section>
          ) : null}
          <ErrorBox error={tokens.error} />
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Created</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {(tokens.data?.items ?? []).map((t) => (
                  <tr key={t.id}>
                    <td>{t.name}</td>
                    <td>{t.role}</td>
                    <td>{t.expiresAt ? formatTime(t.expiresAt) : 'never'}</td>
                    <td>{formatTime(t.creationDate)}</td>
                    <td>
                      <button
                        type="button"
                        class="danger"
                        onClick={() =>
                          run(
                            () => api('DELETE', `/applications/${appId}/tokens/${t.id}`),
                            setTokenError,
                            tokens.reload,
                          )
                        }
                      >
                        Revoke
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <form
            class="card form"
            aria-label="Create an API token"
            onSubmit={(e) => {
              e.preventDefault();
              void run(
                async () =>
                  setNewToken(
                    await api<Token>('POST', `/applications/${appId}/tokens`, { name: tokenName, role: tokenRole }),
                  ),
                setTokenError,
                () => {
                  setTokenName('');
                  tokens.reload();
                },
              );
            }}
          >
            <h2>New API token</h2>
            <div class="row wrap">
              <Field label="Name" id="token-name" error={tErr.field.name}>
                <input
                  id="token-name"
                  required
                  value={tokenName}
                  onInput={(e) => setTokenName(e.currentTarget.value)}
                />
              </Field>
              <Field label="Role" id="token-role" error={tErr.field.role}>
                <select id="token-role" value={tokenRole} onChange={(e) => setTokenRole(e.currentTarget.value as Role)}>
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </Field>
            </div>
            <ErrorBox error={tErr.form} />
            <button type="submit">Create token</button>
          </form>
        </>
      ) : null}
    </section>
  );
}
