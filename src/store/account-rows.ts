/** Row shapes of the account tables (the same in both backends) and their mapping to and from the domain. */
import type { Membership, Session, StoredApiToken, StoredUser } from '../domain/accounts.js';
import type { Role } from '../domain/authorization.js';

export interface UserRow {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  admin: number;
  creation_date: number;
  last_updated: number;
}

export interface MembershipRow {
  application_id: string;
  user_id: string;
  role: string;
  creation_date: number;
}

export interface ApiTokenRow {
  id: string;
  name: string;
  secret_hash: string;
  creation_date: number;
  application_id: string | null;
  role: string | null;
  expires_at: number | null;
}

export interface SessionRow {
  id: string;
  user_id: string;
  secret_hash: string;
  creation_date: number;
  expires_at: number;
}

export const userToRow = (u: StoredUser): UserRow => ({
  id: u.id,
  email: u.email,
  name: u.name,
  password_hash: u.passwordHash,
  admin: u.admin ? 1 : 0,
  creation_date: u.creationDate,
  last_updated: u.lastUpdated,
});

export const userFromRow = (r: UserRow): StoredUser => ({
  id: r.id,
  email: r.email,
  name: r.name,
  passwordHash: r.password_hash,
  admin: r.admin === 1,
  creationDate: r.creation_date,
  lastUpdated: r.last_updated,
});

export const membershipFromRow = (r: MembershipRow): Membership => ({
  applicationId: r.application_id,
  userId: r.user_id,
  role: r.role as Role,
  creationDate: r.creation_date,
});

export const tokenFromRow = (r: ApiTokenRow): StoredApiToken => ({
  id: r.id,
  name: r.name,
  secretHash: r.secret_hash,
  creationDate: r.creation_date,
  applicationId: r.application_id,
  role: r.role as Role | null,
  expiresAt: r.expires_at,
});

export const sessionFromRow = (r: SessionRow): Session => ({
  id: r.id,
  userId: r.user_id,
  secretHash: r.secret_hash,
  creationDate: r.creation_date,
  expiresAt: r.expires_at,
});

export const membershipToRow = (m: Membership): MembershipRow => ({
  application_id: m.applicationId,
  user_id: m.userId,
  role: m.role,
  creation_date: m.creationDate,
});

export const tokenToRow = (t: StoredApiToken): ApiTokenRow => ({
  id: t.id,
  name: t.name,
  secret_hash: t.secretHash,
  creation_date: t.creationDate,
  application_id: t.applicationId,
  role: t.role,
  expires_at: t.expiresAt,
});

export const sessionToRow = (session: Session): SessionRow => ({
  id: session.id,
  user_id: session.userId,
  secret_hash: session.secretHash,
  creation_date: session.creationDate,
  expires_at: session.expiresAt,
});
