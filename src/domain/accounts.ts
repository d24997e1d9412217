/**
 * People and programs that use the API (spec: Accounts and API tokens): users with a password,
 * their roles per application, application API tokens and browser sessions. Secrets appear here
 * only as their hashes; the plain values exist once, in the answer that creates them.
 */
import type { Role } from './authorization.js';

export interface User {
  id: string;
  /** Stored trimmed and lower-cased: one account per address, however it is typed. */
  email: string;
  name: string;
  /** May do everything the admin token may. */
  admin: boolean;
  creationDate: number;
  lastUpdated: number;
}

export interface StoredUser extends User {
  /** Salted scrypt hash (src/core/secrets.ts). */
  passwordHash: string;
}

export interface Membership {
  applicationId: string;
  userId: string;
  role: Role;
  creationDate: number;
}

/** An API token: an operator's (`applicationId` null, `role` null) or an application's. */
export interface ApiToken {
  id: string;
  name: string;
  applicationId: string | null;
  role: Role | null;
  /** Epoch ms after which the token is refused; null: never. */
  expiresAt: number | null;
  creationDate: number;
}

export interface StoredApiToken extends ApiToken {
  secretHash: string;
}

export interface Session {
  id: string;
  userId: string;
  /** SHA-256 of the session secret: the secret is 256 random bits, so no slow hash is needed. */
  secretHash: string;
  creationDate: number;
  expiresAt: number;
}

export const MIN_PASSWORD_LENGTH = 10;
/** scrypt takes its input whole; a bound keeps a hostile "password" from costing more. */
export const MAX_PASSWORD_LENGTH = 1024;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Why a password is not accepted, or undefined when it is. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `a password needs at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH) return `a password has at most ${MAX_PASSWORD_LENGTH} characters`;
  return undefined;
}
