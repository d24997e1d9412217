/** Users, memberships, API tokens and sessions in SQLite (the AccountStore part of the Store). */
import type Database from 'better-sqlite3';
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

function statements(db: Database.Database) {
  return {
    insertUser: db.prepare<[UserRow]>(
      `INSERT INTO users (id, email, name, password_hash, admin, creation_date, last_updated)
       VALUES (@id, @email, @name, @password_hash, @admin, @creation_date, @last_updated)`,
    ),
    getUser: db.prepare<[string], UserRow>('SELECT * FROM users WHERE id = ?'),
    getUserByEmail: db.prepare<[string], UserRow>('SELECT * FROM users WHERE email = ?'),
    listUsers: db.prepare<[], UserRow>('SELECT * FROM users ORDER BY creation_date, id'),
    updateUser: db.prepare<[UserRow]>(
      `UPDATE users SET email = @email, name = @name, password_hash = @password_hash, admin = @admin,
         last_updated = @last_updated WHERE id = @id`,
    ),
    deleteUser: db.prepare<[string]>('DELETE FROM users WHERE id = ?'),

    putMembership: db.prepare<[MembershipRow]>(
      `INSERT INTO memberships (application_id, user_id, role, creation_date)
       VALUES (@application_id, @user_id, @role, @creation_date)
       ON CONFLICT (application_id, user_id) DO UPDATE SET role = excluded.role`,
    ),
    deleteMembership: db.prepare<[string, string]>('DELETE FROM memberships WHERE application_id = ? AND user_id = ?'),
    listMembers: db.prepare<[string], MembershipRow>(
      'SELECT * FROM memberships WHERE application_id = ? ORDER BY creation_date, user_id',
    ),
    listMemberships: db.prepare<[string], MembershipRow>(
      'SELECT * FROM memberships WHERE user_id = ? ORDER BY creation_date, application_id',
    ),

    insertToken: db.prepare<[ApiTokenRow]>(
      `INSERT INTO api_tokens (id, name, secret_hash, creation_date, application_id, role, expires_at)
       VALUES (@id, @name, @secret_hash, @creation_date, @application_id, @role, @expires_at)`,
    ),
    getToken: db.prepare<[string], ApiTokenRow>('SELECT * FROM api_tokens WHERE id = ?'),
    listTokens: db.prepare<[], ApiTokenRow>('SELECT * FROM api_tokens ORDER BY creation_date, id'),
    listAdminTokens: db.prepare<[], ApiTokenRow>(
      'SELECT * FROM api_tokens WHERE application_id IS NULL ORDER BY creation_date, id',
    ),
    listApplicationTokens: db.prepare<[string], ApiTokenRow>(
      'SELECT * FROM api_tokens WHERE application_id = ? ORDER BY creation_date, id',
    ),
    deleteToken: db.prepare<[string]>('DELETE FROM api_tokens WHERE id = ?'),

    insertSession: db.prepare<[SessionRow]>(
      `INSERT INTO sessions (id, user_id, secret_hash, creation_date, expires_at)
       VALUES (@id, @user_id, @secret_hash, @creation_date, @expires_at)`,
    ),
    getSession: db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE id = ?'),
    deleteSession: db.prepare<[string]>('DELETE FROM sessions WHERE id = ?'),
    deleteSessionsOf: db.prepare<[string]>('DELETE FROM sessions WHERE user_id = ?'),
    deleteExpiredSessions: db.prepare<[number]>('DELETE FROM sessions WHERE expires_at < ?'),
  };
}

export class SqliteAccounts implements AccountStore {
  private readonly s: ReturnType<typeof statements>;

  constructor(db: Database.Database) {
    this.s = statements(db);
  }

  async createUser(user: StoredUser): Promise<void> {
    this.s.insertUser.run(userToRow(user));
  }

  async getUser(id: string): Promise<StoredUser | undefined> {
    const row = this.s.getUser.get(id);
    return row && userFromRow(row);
  }

  async getUserByEmail(email: string): Promise<StoredUser | undefined> {
    const row = this.s.getUserByEmail.get(email);
    return row && userFromRow(row);
  }

  async listUsers(): Promise<StoredUser[]> {
    return this.s.listUsers.all().map(userFromRow);
  }

  async updateUser(user: StoredUser): Promise<void> {
    this.s.updateUser.run(userToRow(user));
  }

  async deleteUser(id: string): Promise<void> {
    this.s.deleteUser.run(id);
  }

  async putMembership(m: Membership): Promise<void> {
    this.s.putMembership.run(membershipToRow(m));
  }

  async deleteMembership(applicationId: string, userId: string): Promise<void> {
    this.s.deleteMembership.run(applicationId, userId);
  }

  async listMembers(applicationId: string): Promise<Membership[]> {
    return this.s.listMembers.all(applicationId).map(membershipFromRow);
  }

  async listMemberships(userId: string): Promise<Membership[]> {
    return this.s.listMemberships.all(userId).map(membershipFromRow);
  }

  async createApiToken(t: StoredApiToken): Promise<void> {
    this.s.insertToken.run(tokenToRow(t));
  }

  async getApiToken(id: string): Promise<StoredApiToken | undefined> {
    const row = this.s.getToken.get(id);
    return row && tokenFromRow(row);
  }

  async listApiTokens(applicationId?: string | null): Promise<StoredApiToken[]> {
    const rows =
      applicationId === undefined
        ? this.s.listTokens.all()
        : applicationId === null
          ? this.s.listAdminTokens.all()
          : this.s.listApplicationTokens.all(applicationId);
    return rows.map(tokenFromRow);
  }

  async deleteApiToken(id: string): Promise<void> {
    this.s.deleteToken.run(id);
  }

  async createSession(session: Session): Promise<void> {
    this.s.insertSession.run(sessionToRow(session));
  }

  async getSession(id: string): Promise<Session | undefined> {
    const row = this.s.getSession.get(id);
    return row && sessionFromRow(row);
  }

  async deleteSession(id: string): Promise<void> {
    this.s.deleteSession.run(id);
  }

  async deleteSessionsOf(userId: string): Promise<void> {
    this.s.deleteSessionsOf.run(userId);
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    return this.s.deleteExpiredSessions.run(now).changes;
  }
}
