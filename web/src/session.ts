/** Who is signed in and what they may do in each application (docs/accounts.md, Roles). */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Application, Me, Role } from './api';

export interface Session {
  me: Me;
  applications: Application[];
  reloadApplications(): void;
  signOut(): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

const RANK: Record<Role, number> = { viewer: 0, editor: 1, owner: 2 };

/** Operators may do everything; members as their role allows. */
export function hasRole(me: Me, applicationId: string, needed: Role): boolean {
  if (me.kind === 'admin') return true;
  const role = me.applications.find((a) => a.applicationId === applicationId)?.role;
  return role !== undefined && RANK[role] >= RANK[needed];
}

export function useRole(applicationId: string): { canEdit: boolean; isOwner: boolean; role: string } {
  const { me } = useSession();
  const role =
    me.kind === 'admin' ? 'operator' : (me.applications.find((a) => a.applicationId === applicationId)?.role ?? '');
  return { canEdit: hasRole(me, applicationId, 'editor'), isOwner: hasRole(me, applicationId, 'owner'), role };
}
