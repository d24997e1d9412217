/** The console's entry: who is signed in, the shell (header, navigation) and the page for the path. */
import './styles.css';
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { type Application, api, get, type Me, type Page, type Role, setCsrfToken, setUnauthorizedHandler } from './api';
import { useLiveStatus } from './live';
import { AppLog } from './pages/app-log';
import { DashboardPage, Dashboards } from './pages/dashboards';
import { DevicePage } from './pages/device';
import { DeviceForm } from './pages/device-form';
import { Devices } from './pages/devices';
import { Keys } from './pages/keys';
import { Login } from './pages/login';
import { Members } from './pages/members';
import { WorkflowPage, Workflows } from './pages/workflows';
import { match, navigate, useLocation } from './router';
import { hasRole, type Session, SessionContext, useSession as useContextSession } from './session';

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [applications, setApplications] = useState<Application[]>([]);
  const { path } = useLocation();

  const signedIn = useCallback((m: Me) => {
    setCsrfToken(m.csrfToken);
    setMe(m);
  }, []);
  useEffect(() => {
    setUnauthorizedHandler(() => setMe(null));
    get<Me>('/me').then(signedIn, () => setMe(null));
  }, [signedIn]);

  const reloadApplications = useCallback(() => {
    get<Page<Application>>('/applications?perPage=1000').then(
      (p) => setApplications(p.items),
      () => {},
    );
  }, []);
  useEffect(() => {
    if (me) reloadApplications();
  }, [me, reloadApplications]);

  const session = useMemo<Session | null>(
    () =>
      me
        ? {
            me,
            applications,
            reloadApplications,
            signOut: () => {
              api('POST', '/auth/logout').finally(() => {
                setCsrfToken(undefined);
                setMe(null);
                navigate('/login');
              });
            },
          }
        : null,
    [me, applications, reloadApplications],
  );

  if (me === undefined) return <p class="loading">Loading…</p>;
  if (!session) {
    return (
      <Login
        onSignedIn={(m) => {
          signedIn(m);
          if (path === '/login') navigate('/', true);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell path={path} />
    </SessionContext.Provider>
  );
}

/** Sections: key, label, and the role needed to see it. */
const NAV: Array<[string, string, Role]> = [
  ['devices', 'Devices', 'viewer'],
  ['keys', 'Access keys', 'editor'],
  ['log', 'Application log', 'viewer'],
  ['workflows', 'Workflows', 'viewer'],
  ['dashboards', 'Dashboards', 'viewer'],
  ['members', 'Members & tokens', 'viewer'],
];

function Shell({ path }: { path: string }) {
  const { me, applications, signOut } = useContextSession();
  const appId = /^\/app\/([^/]+)/.exec(path)?.[1];
  const section = /^\/app\/[^/]+\/([^/]+)/.exec(path)?.[1] ?? 'devices';
  const live = useLiveStatus();
  const [menuOpen, setMenuOpen] = useState(false);

  // No application in the path: the first one the user may read.
  useEffect(() => {
    if (!appId && applications[0]) navigate(`/app/${applications[0].id}/devices`, true);
  }, [appId, applications]);

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={appId ? `/app/${appId}/devices` : '/'}>
          Gatehouse
        </a>
        <label class="app-switch">
          <span class="visually-hidden">Application</span>
          <select
            aria-label="Application"
            value={appId ?? ''}
            onChange={(e) => navigate(`/app/${e.currentTarget.value}/${section}`)}
          >
            {!appId ? <option value="">Choose an application</option> : null}
            {applications.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
        <span class={`live live-${live}`} role="status" aria-live="polite" title="Live updates">
          <span class="dot" aria-hidden="true" />
          {live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting' : live === 'down' ? 'Offline' : 'Idle'}
        </span>
        <button
          type="button"
          class="menu-toggle secondary"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <span class="who">{me.user?.email ?? me.kind}</span>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <div class="body">
        {appId ? (
          <nav id="main-nav" class={menuOpen ? 'open' : ''} aria-label="Sections">
            {NAV.filter(([, , role]) => hasRole(me, appId, role)).map(([key, label]) => (
              <a
                key={key}
                href={`/app/${appId}/${key}`}
                aria-current={section === key ? 'page' : undefined}
                onClick={() => setMenuOpen(false)}
              >
                {label}
              </a>
            ))}
          </nav>
        ) : null}
        <main class="content">{appId ? <Route path={path} /> : <NoApplication />}</main>
      </div>
    </div>
  );
}

function NoApplication() {
  const { applications, reloadApplications } = useContextSession();
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  if (applications.length > 0) return <p class="loading">Loading…</p>;
  return (
    <section>
      <h1>No application yet</h1>
      <form
        class="card inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const a = await api<Application>('POST', '/applications', { name });
            reloadApplications();
            navigate(`/app/${a.id}/devices`);
          } catch (err) {
            setError(err);
          }
        }}
      >
        <label for="new-app-name">Application name</label>
        <input id="new-app-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit">Create</button>
        {error ? <p class="error">{String((error as Error).message)}</p> : null}
      </form>
    </section>
  );
}

/** Console pages by path pattern (src/api/console.ts serves index.html under /app/). */
const ROUTES: Array<[string, (p: Record<string, string>) => preact.JSX.Element]> = [
  ['/app/:app/devices', (p) => <Devices appId={p.app!} />],
  ['/app/:app/devices/new', (p) => <DeviceForm appId={p.app!} />],
  ['/app/:app/devices/:dev/edit', (p) => <DeviceForm appId={p.app!} deviceId={p.dev!} />],
  ['/app/:app/devices/:dev', (p) => <DevicePage key={p.dev} appId={p.app!} deviceId={p.dev!} />],
  ['/app/:app/keys', (p) => <Keys appId={p.app!} />],
  ['/app/:app/log', (p) => <AppLog appId={p.app!} />],
  ['/app/:app/workflows', (p) => <Workflows appId={p.app!} />],
  ['/app/:app/workflows/:flow', (p) => <WorkflowPage key={p.flow} appId={p.app!} flowId={p.flow!} />],
  ['/app/:app/dashboards', (p) => <Dashboards appId={p.app!} />],
  ['/app/:app/dashboards/:dash', (p) => <DashboardPage key={p.dash} appId={p.app!} dashboardId={p.dash!} />],
  ['/app/:app/members', (p) => <Members appId={p.app!} />],
];

function Route({ path }: { path: string }) {
  for (const [pattern, page] of ROUTES) {
    const params = match(pattern, path);
    if (params) return page(params);
  }
  return (
    <section>
      <h1>Not found</h1>
      <p>No console page at {path}.</p>
    </section>
  );
}

render(<App />, document.getElementById('root')!);
