/** Users, memberships, API tokens and sessions in PostgreSQL (the AccountStore part of the Store). */
import type pg from 'pg';
import type { Membership, Session, StoredApiToken, StoredUser } from '../../domain/accounts.js';
import {
  type ApiTokenRow,
  type MembershipRow,
  membershipFromRow,
  membershipToRow,
  type SessionRow,
  sessionFromRow,
  sessionToRow,
  tokenFromRow,
  tokenToRow,
  type UserRow,
  userFromRow,
  userToRow,
} from '../account-rows.js';
import type { AccountStore } from '../types.js';

export class PostgresAccounts implements AccountStore {
  constructor(private readonly pool: pg.Pool) {}

  private async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  async createUser(user: StoredUser): Promise<void> {
    const r = userToRow(user);
    await this.pool.query(
      `INSERT INTO users (id, email, name, password_hash, admin, creation_date, last_updated)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [r.id, r.email, r.name, r.password_hash, r.admin, r.creation_date, r.last_updated],
    );
  }

  async getUser(id: string): Promise<StoredUser | undefined> {
    const [row] = await this.rows<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    return row && userFromRow(row);
  }

  async getUserByEmail(email: string): Promise<StoredUser | undefined> {
    const [row] = await this.rows<UserRow>('SELECT * FROM users WHERE email = $1', [email]);
    return row && userFromRow(row);
  }

  async listUsers(): Promise<StoredUser[]> {
    return (await this.rows<UserRow>('SELECT * FROM users ORDER BY creation_date, id')).map(userFromRow);
  }

  async updateUser(user: StoredUser): Promise<void> {
    const r = userToRow(user);
    await this.pool.query(
      `UPDATE users SET email = $2, name = $3, password_hash = $4, admin = $5, last_updated = $6 WHERE id = $1`,
      [r.id, r.email, r.name, r.password_hash, r.admin, r.last_updated],
    );
  }

  async deleteUser(id: string): Promise<void> {
    await this.pool.query('DELETE FROM users WHERE id = $1', [id]);
  }

  async putMembership(m: Membership): Promise<void> {
    const r = membershipToRow(m);
    await this.pool.query(
      `INSERT INTO memberships (application_id, user_id, role, creation_date) VALUES ($1, $2, $3, $4)
       ON CONFLICT (application_id, user_id) DO UPDATE SET role = excluded.role`,
      [r.application_id, r.user_id, r.role, r.creation_date],
    );
  }

  async deleteMembership(applicationId: string, userId: string): Promise<void> {
    await this.pool.query('DELETE FROM memberships WHERE application_id = $1 AND user_id = $2', [
      applicationId,
      userId,
    ]);
  }

  async listMembers(applicationId: string): Promise<Membership[]> {
    const rows = await this.rows<MembershipRow>(
      'SELECT * FROM memberships WHERE application_id = $1 ORDER BY creation_date, user_id',
      [applicationId],
    );
    return rows.map(membershipFromRow);
  }

  async listMemberships(userId: string): Promise<Membership[]> {
    const rows = await this.rows<MembershipRow>(
      'SELECT * FROM memberships WHERE user_id = $1 ORDER BY creation_date, application_id',
      [userId],
    );
    return rows.map(membershipFromRow);
  }

  async createApiToken(token: StoredApiToken): Promise<void> {
    const r = tokenToRow(token);
    await this.pool.query(
      `INSERT INTO api_tokens (id, name, secret_hash, creation_date, application_id, role, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [r.id, r.name, r.secret_hash, r.creation_date, r.application_id, r.role, r.expires_at],
    );
  }

  async getApiToken(id: string): Promise<StoredApiToken | undefined> {
    const [row] = await this.rows<ApiTokenRow>('SELECT * FROM api_tokens WHERE id = $1', [id]);
    return row && tokenFromRow(row);
  }

  async listApiTokens(applicationId?: string | null): Promise<StoredApiToken[]> {
    const rows =
      applicationId === undefined
        ? await this.rows<ApiTokenRow>('SELECT * FROM api_tokens ORDER BY creation_date, id')
        : applicationId === null
          ? await this.rows<ApiTokenRow>(
              'SELECT * FROM api_tokens WHERE application_id IS NULL ORDER BY creation_date, id',
            )
          : await this.rows<ApiTokenRow>(
              'SELECT * FROM api_tokens WHERE application_id = $1 ORDER BY creation_date, id',
              [applicationId],
            );
    return rows.map(tokenFromRow);
  }

  async deleteApiToken(id: string): Promise<void> {
    await this.pool.query('DELETE FROM api_tokens WHERE id = $1', [id]);
  }

  async createSession(session: Session): Promise<void> {
    const r = sessionToRow(session);
    await this.pool.query(
      `INSERT INTO sessions (id, user_id, secret_hash, creation_date, expires_at) VALUES ($1, $2, $3, $4, $5)`,
      [r.id, r.user_id, r.secret_hash, r.creation_date, r.expires_at],
    );
  }

  async getSession(id: string): Promise<Session | undefined> {
    const [row] = await this.rows<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id]);
    return row && sessionFromRow(row);
  }

  async deleteSession(id: string): Promise<void> {
    await this.pool.query('DELETE FROM sessions WHERE id = $1', [id]);
  }

  async deleteSessionsOf(userId: string): Promise<void> {
    await this.pool.query('DELETE FROM sessions WHERE user_id = $1', [userId]);
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    return (await this.pool.query('DELETE FROM sessions WHERE expires_at < $1', [now])).rowCount ?? 0;
  }
}
