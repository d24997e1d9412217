/**
 * Accounts (spec: Accounts and API tokens): users and their passwords, roles per application,
 * API tokens and browser sessions, and turning a credential into the principal the one
 * authorization rule decides for.
 *
 * Secrets are stored as hashes only: passwords and API tokens as salted scrypt hashes (checked
 * through the shared, throttled `VerifiedSecrets`), session secrets, which are 256 random bits,
 * as SHA-256. Every comparison is constant-time. Tokens and sessions are kept in memory once
 * seen, so a revocation takes effect at once; `version()` tells open streams that a principal's
 * rights may have changed.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  type ApiToken,
  type Membership,
  normalizeEmail,
  passwordProblem,
  type Session,
  type StoredApiToken,
  type StoredUser,
  type User,
} from '../domain/accounts.js';
import type { Principal, Role } from '../domain/authorization.js';
import { newId } from '../domain/ids.js';
import type { Store } from '../store/types.js';
import { GatehouseError } from './errors.js';
import { generateSecret, hashSecret, sameSecret, sha256, type Throttle, type VerifiedSecrets } from './secrets.js';

/** Browser sessions end this long after sign-in (docs/accounts.md). */
export const SESSION_TTL_MS = 7 * 86_400_000;
export const SESSION_COOKIE = 'gh_session';
export const CSRF_HEADER = 'x-csrf-token';

/** Unknown tokens re-read the token list (one made by `gatehouse token create`) at most this often. */
const TOKEN_RELOAD_MS = 1_000;
/** API tokens made by this version: `ght_`, the token's id, then 43 characters of secret. */
const TOKEN_FORMAT = /^ght_([0-9a-f]{24})([A-Za-z0-9_-]{43})$/;
/** The throttle bucket of tokens without an id (the first admin token, one from GATEHOUSE_ADMIN_TOKEN). */
const UNNAMED_TOKENS = 'api-tokens';

export type UserPrincipal = Extract<Principal, { kind: 'user' }>;

export interface NewToken {
  name: string;
  applicationId: string | null;
  role: Role | null;
  expiresAt: number | null;
}

/** A new API token: the value to show once, and the record to store (with its hash only). */
export async function newApiToken(
  input: NewToken,
  now: number,
  value?: string,
): Promise<{ token: string; record: StoredApiToken }> {
  const id = newId();
  const token = value ?? `ght_${id}${generateSecret(32)}`;
  return { token, record: { id, ...input, secretHash: await hashSecret(token), creationDate: now } };
}

/** A new user record, with the password hashed; throws Validation for a password too short or too long. */
export async function newUser(
  input: { email: string; password: string; name?: string; admin?: boolean },
  now: number,
): Promise<StoredUser> {
  const problem = passwordProblem(input.password);
  if (problem) throw new GatehouseError('Validation', `body/password: ${problem}`);
  return {
    id: newId(),
    email: normalizeEmail(input.email),
    name: input.name?.trim() ?? '',
    admin: input.admin ?? false,
    passwordHash: await hashSecret(input.password),
    creationDate: now,
    lastUpdated: now,
  };
}

function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function throttled(t: Throttle): GatehouseError {
  return new GatehouseError('RateLimited', `${t.reason}; try again in ${Math.ceil(t.retryAfterMs / 1000)} s`, {
    retryAfterSeconds: Math.ceil(t.retryAfterMs / 1000),
  });
}

export function publicUser(user: StoredUser): User {
  const { passwordHash: _, ...rest } = user;
  return rest;
}

export function publicToken(token: StoredApiToken): ApiToken {
  const { secretHash: _, ...rest } = token;
  return rest;
}

export class Accounts {
  private tokens = new Map<string, StoredApiToken>();
  private tokensLoadedAt = Number.NEGATIVE_INFINITY;
  private tokensLoading: Promise<void> | undefined;
  private readonly sessions = new Map<string, Session>();
  /** Each user's roles, read once and kept exact by the changes made here. */
  private readonly roles = new Map<string, Map<string, Role>>();
  /** Bumped whenever something about a user changes (role, admin flag, password, deletion). */
  private readonly userVersions = new Map<string, number>();
  private dummyHash: Promise<string> | undefined;
  private readonly changeListeners: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly verified: VerifiedSecrets,
    private readonly clock: () => number,
  ) {}

  async start(): Promise<void> {
    await this.reloadTokens();
  }

  /** Called after anything that may take rights away (open streams re-check themselves). */
  onChange(listener: () => void): () => void {
    this.changeListeners.push(listener);
    return () => {
      const i = this.changeListeners.indexOf(listener);
      if (i >= 0) this.changeListeners.splice(i, 1);
    };
  }

  private changed(userId?: string): void {
    if (userId) {
      this.userVersions.set(userId, (this.userVersions.get(userId) ?? 0) + 1);
      this.roles.delete(userId);
    }
    for (const listener of this.changeListeners) listener();
    this.localChangeListener(userId);
  }

  private localChangeListener: (userId: string | undefined) => void = () => {};

  /** Told of each change made here (not of `invalidate`), so other nodes can drop their caches (src/cluster/). */
  onLocalChange(listener: (userId: string | undefined) => void): void {
    this.localChangeListener = listener;
  }

  /**
   * Another node changed accounts (a token revoked, a session ended, a user or role changed):
   * drops what this node cached, so the next request reads the store, then re-checks streams.
   */
  async invalidate(userId: string | undefined): Promise<void> {
    if (userId) {
      this.userVersions.set(userId, (this.userVersions.get(userId) ?? 0) + 1);
      this.roles.delete(userId);
    }
    // Sessions ended elsewhere: kept here only while the store still holds them.
    for (const id of [...this.sessions.keys()]) {
      if (!(await this.store.getSession(id))) this.sessions.delete(id);
    }
    const before = [...this.tokens.keys()];
    await this.reloadTokens();
    for (const id of before) if (!this.tokens.has(id)) this.verified.forget(id);
    for (const listener of this.changeListeners) listener();
  }

  // API tokens

  /** Whether any operator (admin) token exists: the first start makes one when none does. */
  async hasAdminToken(): Promise<boolean> {
    await this.reloadTokens();
    return [...this.tokens.values()].some((t) => t.applicationId === null);
  }

  async createToken(input: NewToken, value?: string): Promise<{ token: string; record: StoredApiToken }> {
    if (input.expiresAt !== null && !(input.expiresAt > this.clock())) {
      throw new GatehouseError('Validation', 'body/expiresAt must be in the future');
    }
    const made = await newApiToken(input, this.clock(), value);
    await this.store.createApiToken(made.record);
    this.tokens.set(made.record.id, made.record);
    return made;
  }

  async listTokens(applicationId: string): Promise<ApiToken[]> {
    return (await this.store.listApiTokens(applicationId)).map(publicToken);
  }

  /** Revokes at once: the next request with it is refused and streams opened with it end. */
  async revokeToken(applicationId: string, tokenId: string): Promise<void> {
    const token = await this.store.getApiToken(tokenId);
    if (!token || token.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `API token ${tokenId} not found in application ${applicationId}`);
    }
    await this.store.deleteApiToken(tokenId);
    this.forgetToken(tokenId);
    this.changed();
  }

  private forgetToken(tokenId: string): void {
    this.tokens.delete(tokenId);
    this.verified.forget(tokenId);
  }

  /** One read of the token list at a time; `spaced`: not sooner than TOKEN_RELOAD_MS after the last. */
  private reloadTokens(spaced = false): Promise<void> {
    this.tokensLoading ??= (async () => {
      try {
        const wait = spaced ? this.tokensLoadedAt + TOKEN_RELOAD_MS - performance.now() : 0;
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        this.tokens = new Map((await this.store.listApiTokens()).map((t) => [t.id, t]));
        this.tokensLoadedAt = performance.now();
      } finally {
        this.tokensLoading = undefined;
      }
    })();
    return this.tokensLoading;
  }

  /** The principal of an API token; 401 when unknown, revoked or expired, 429 while failures are throttled. */
  async authenticateToken(value: string, address: string | undefined): Promise<Principal> {
    const named = TOKEN_FORMAT.exec(value);
    const token = named
      ? await this.namedToken(named[1] as string, value, address)
      : await this.unnamedToken(value, address);
    if (token.expiresAt !== null && token.expiresAt <= this.clock()) {
      throw new GatehouseError(
        'Unauthorized',
        `API token ${token.id} expired at ${new Date(token.expiresAt).toISOString()}`,
      );
    }
    if (token.applicationId === null || token.role === null) return { kind: 'admin', via: 'token', id: token.id };
    return { kind: 'apiToken', tokenId: token.id, applicationId: token.applicationId, role: token.role };
  }

  private async namedToken(id: string, value: string, address: string | undefined): Promise<StoredApiToken> {
    if (!this.tokens.has(id)) await this.reloadTokens(true);
    const token = this.tokens.get(id);
    if (!token) throw new GatehouseError('Unauthorized', 'invalid API token');
    const check = await this.verified.verify(`token:${id}`, value, [{ id, hash: token.secretHash }], {
      address: address ?? null,
      label: 'API token',
    });
    if (check.ok && this.tokens.get(id) === token) return token;
    if (!check.ok && check.throttled) throw throttled(check.throttled);
    throw new GatehouseError('Unauthorized', 'invalid API token');
  }

  private async unnamedToken(value: string, address: string | undefined): Promise<StoredApiToken> {
    // Tokens without an id in them can only be operators' tokens made before ids were (or set
    // through GATEHOUSE_ADMIN_TOKEN): checked against those alone.
    const candidates = () =>
      [...this.tokens.values()].filter((t) => t.applicationId === null).map((t) => ({ id: t.id, hash: t.secretHash }));
    if (!this.verified.known(value, candidates())) await this.reloadTokens(true);
    const check = await this.verified.verify(UNNAMED_TOKENS, value, candidates(), {
      address: address ?? null,
      label: 'API token',
    });
    const token = check.ok ? this.tokens.get(check.id) : undefined;
    if (token) return token;
    if (!check.ok && check.throttled) throw throttled(check.throttled);
    throw new GatehouseError('Unauthorized', 'invalid API token');
  }

  // Users

  async createUser(input: { email: string; password: string; name?: string; admin?: boolean }): Promise<StoredUser> {
    const user = await newUser(input, this.clock());
    if (await this.store.getUserByEmail(user.email)) {
      throw new GatehouseError('Conflict', `a user with email ${user.email} exists already`);
    }
    await this.store.createUser(user);
    return user;
  }

  async requireUser(id: string): Promise<StoredUser> {
    const user = await this.store.getUser(id);
    if (!user) throw new GatehouseError('NotFound', `user ${id} not found`);
    return user;
  }

  listUsers(): Promise<StoredUser[]> {
    return this.store.listUsers();
  }

  /** A new password ends every session of the user. */
  async updateUser(
    id: string,
    patch: { email?: string; name?: string; password?: string; admin?: boolean },
  ): Promise<StoredUser> {
    const user = await this.requireUser(id);
    const updated: StoredUser = { ...user, lastUpdated: this.clock() };
    if (patch.email !== undefined && normalizeEmail(patch.email) !== user.email) {
      const email = normalizeEmail(patch.email);
      if (await this.store.getUserByEmail(email)) {
        throw new GatehouseError('Conflict', `a user with email ${email} exists already`);
      }
      updated.email = email;
    }
    if (patch.name !== undefined) updated.name = patch.name.trim();
    if (patch.admin !== undefined) updated.admin = patch.admin;
    if (patch.password !== undefined) {
      const problem = passwordProblem(patch.password);
      if (problem) throw new GatehouseError('Validation', `body/password: ${problem}`);
      updated.passwordHash = await hashSecret(patch.password);
    }
    await this.store.updateUser(updated);
    if (patch.password !== undefined) await this.endSessionsOf(id);
    this.changed(id);
    return updated;
  }

  async deleteUser(id: string): Promise<void> {
    await this.requireUser(id);
    await this.store.deleteUser(id);
    for (const [sessionId, s] of this.sessions) if (s.userId === id) this.sessions.delete(sessionId);
    this.changed(id);
  }

  // Members

  async listMembers(applicationId: string): Promise<Array<Membership & { user: StoredUser }>> {
    const members = await this.store.listMembers(applicationId);
    const users = await Promise.all(members.map((m) => this.store.getUser(m.userId)));
    return members.flatMap((m, i) => {
      const user = users[i];
      return user ? [{ ...m, user }] : [];
    });
  }

  async addMember(applicationId: string, email: string, role: Role): Promise<Membership & { user: StoredUser }> {
    const user = await this.store.getUserByEmail(normalizeEmail(email));
    if (!user) throw new GatehouseError('Validation', `body/email: no user has the email ${normalizeEmail(email)}`);
    const existing = (await this.store.listMembers(applicationId)).find((m) => m.userId === user.id);
    if (existing) {
      throw new GatehouseError('Conflict', `user ${user.id} is a member already; change the role with PATCH`);
    }
    const membership: Membership = { applicationId, userId: user.id, role, creationDate: this.clock() };
    await this.store.putMembership(membership);
    this.changed(user.id);
    return { ...membership, user };
  }

  /** The creator of an application becomes its owner. */
  async addOwner(applicationId: string, userId: string): Promise<void> {
    await this.store.putMembership({ applicationId, userId, role: 'owner', creationDate: this.clock() });
    this.changed(userId);
  }

  async changeRole(applicationId: string, userId: string, role: Role): Promise<Membership & { user: StoredUser }> {
    const { members, member } = await this.requireMember(applicationId, userId);
    if (member.role === 'owner' && role !== 'owner') this.keepAnOwner(members, userId);
    const updated: Membership = { ...member, role };
    await this.store.putMembership(updated);
    this.changed(userId);
    return { ...updated, user: await this.requireUser(userId) };
  }

  async removeMember(applicationId: string, userId: string): Promise<void> {
    const { members, member } = await this.requireMember(applicationId, userId);
    if (member.role === 'owner') this.keepAnOwner(members, userId);
    await this.store.deleteMembership(applicationId, userId);
    this.changed(userId);
  }

  private async requireMember(applicationId: string, userId: string) {
    const members = await this.store.listMembers(applicationId);
    const member = members.find((m) => m.userId === userId);
    if (!member) throw new GatehouseError('NotFound', `user ${userId} is not a member of application ${applicationId}`);
    return { members, member };
  }

  private keepAnOwner(members: Membership[], leaving: string): void {
    if (!members.some((m) => m.role === 'owner' && m.userId !== leaving)) {
      throw new GatehouseError('Conflict', 'an application keeps at least one owner; make another member owner first');
    }
  }

  /** An application is gone: its tokens with it, and its members' roles there. */
  applicationDeleted(applicationId: string): void {
    for (const [id, token] of this.tokens) if (token.applicationId === applicationId) this.forgetToken(id);
    for (const [userId, roles] of this.roles) if (roles.has(applicationId)) this.changed(userId);
    this.changed();
  }

  // Sign-in and sessions

  /**
   * Checks an email and password; 401 for either wrong (the same answer, after the same work, so
   * the answer does not tell which addresses have accounts), 429 while failures are throttled
   * per account and per address. Returns a new session and its cookie value.
   */
  async signIn(
    email: string,
    password: string,
    address: string | undefined,
  ): Promise<{ user: StoredUser; cookie: string; csrfToken: string; session: Session }> {
    const normalized = normalizeEmail(email);
    const user = await this.store.getUserByEmail(normalized);
    this.dummyHash ??= hashSecret(generateSecret(32));
    const candidate = user
      ? { id: user.id, hash: user.passwordHash }
      : { id: 'no-such-user', hash: await this.dummyHash };
    const check = await this.verified.verify(`login:${normalized}`, password, [candidate], {
      address: address ?? null,
      label: 'account',
    });
    // A password is never kept as "verified" in memory: each sign-in hashes it again.
    if (user) this.verified.forget(user.id);
    if (!check.ok && check.throttled) throw throttled(check.throttled);
    if (!check.ok || !user) throw new GatehouseError('Unauthorized', 'wrong email or password');

    const secret = generateSecret(32);
    const now = this.clock();
    const session: Session = {
      id: newId(),
      userId: user.id,
      secretHash: sha256(secret).toString('hex'),
      creationDate: now,
      expiresAt: now + SESSION_TTL_MS,
    };
    await this.store.createSession(session);
    this.sessions.set(session.id, session);
    return { user, session, cookie: `${session.id}.${secret}`, csrfToken: csrfTokenOf(secret) };
  }

  /** The session of a cookie value, if it is valid now. */
  async session(cookie: string): Promise<{ session: Session; csrfToken: string } | undefined> {
    const match = /^([0-9a-f]{24})\.([A-Za-z0-9_-]{43})$/.exec(cookie);
    if (!match) return undefined;
    const [, id, secret] = match as unknown as [string, string, string];
    let session = this.sessions.get(id);
    if (!session) {
      session = await this.store.getSession(id);
      if (session) this.sessions.set(id, session);
    }
    if (!session || !sameDigest(sha256(secret), Buffer.from(session.secretHash, 'hex'))) return undefined;
    if (session.expiresAt <= this.clock()) {
      await this.endSession(id);
      return undefined;
    }
    return { session, csrfToken: csrfTokenOf(secret) };
  }

  async endSession(id: string): Promise<void> {
    this.sessions.delete(id);
    await this.store.deleteSession(id);
    this.changed();
  }

  private async endSessionsOf(userId: string): Promise<void> {
    for (const [id, s] of this.sessions) if (s.userId === userId) this.sessions.delete(id);
    await this.store.deleteSessionsOf(userId);
  }

  /** Removes expired sessions from memory and the store. */
  async sweep(): Promise<void> {
    const now = this.clock();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
    await this.store.deleteExpiredSessions(now);
  }

  /** The principal of a user: an operator when the user is an admin, otherwise a member with roles. */
  async principalOf(user: StoredUser): Promise<Principal> {
    if (user.admin) return { kind: 'admin', via: 'user', id: user.id };
    let roles = this.roles.get(user.id);
    if (!roles) {
      roles = new Map((await this.store.listMemberships(user.id)).map((m) => [m.applicationId, m.role]));
      this.roles.set(user.id, roles);
    }
    return { kind: 'user', userId: user.id, roles: new Map(roles) };
  }

  async principalOfSession(session: Session): Promise<Principal> {
    const user = await this.store.getUser(session.userId);
    if (!user) throw new GatehouseError('Unauthorized', 'the user of this session no longer exists');
    return this.principalOf(user);
  }

  /**
   * What a stream opened by `principal` asks before each event: null while its rights stand as
   * they were, otherwise why not. `version` is `accessVersion(principal)` taken at opening.
   */
  stillValid(principal: Principal, version: number, sessionId: string | undefined): string | null {
    switch (principal.kind) {
      case 'apiToken':
        return this.tokenValid(principal.tokenId);
      case 'admin':
        return principal.via === 'token'
          ? this.tokenValid(principal.id)
          : this.userValid(principal.id, version, sessionId);
      case 'user':
        return this.userValid(principal.userId, version, sessionId);
      default:
        return null;
    }
  }

  /** A number that changes whenever the rights of the user behind `principal` may have. */
  accessVersion(principal: Principal): number {
    const userId =
      principal.kind === 'user'
        ? principal.userId
        : principal.kind === 'admin' && principal.via === 'user'
          ? principal.id
          : undefined;
    return userId ? (this.userVersions.get(userId) ?? 0) : 0;
  }

  private tokenValid(tokenId: string): string | null {
    const token = this.tokens.get(tokenId);
    if (!token) return 'the API token of this stream was revoked';
    if (token.expiresAt !== null && token.expiresAt <= this.clock()) return 'the API token of this stream expired';
    return null;
  }

  private userValid(userId: string, version: number, sessionId: string | undefined): string | null {
    if ((this.userVersions.get(userId) ?? 0) !== version)
      return 'the rights of this user changed; open the stream again';
    if (sessionId !== undefined) {
      const session = this.sessions.get(sessionId);
      if (!session) return 'the session of this stream ended';
      if (session.expiresAt <= this.clock()) return 'the session of this stream expired';
    }
    return null;
  }
}

/** The CSRF token of a session: derived from its secret, so nothing more is stored. */
function csrfTokenOf(sessionSecret: string): string {
  return createHmac('sha256', sessionSecret).update('csrf').digest('base64url');
}

/** Whether a request's CSRF header (as Node gives it) matches its session's token, in constant time. */
export function csrfMatches(expected: string, header: string | string[] | undefined): boolean {
  const sent = Array.isArray(header) ? header[0] : header;
  return sent !== undefined && sent !== '' && sameSecret(expected, sent);
}
