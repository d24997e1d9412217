/** JSON schemas of users, members, API tokens and sign-in (spec: Accounts and API tokens). */
import { Type } from '@sinclair/typebox';
import { MAX_PASSWORD_LENGTH } from '../domain/accounts.js';
import { ROLES } from '../domain/authorization.js';
import { Id } from './schemas.js';

const IsoTime = Type.String({ format: 'date-time' });
const Role = Type.Unsafe<(typeof ROLES)[number]>({ type: 'string', enum: [...ROLES] });
// A length bound only: the address is an account name here, and mail is never sent to it.
const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' });
// The minimum length is checked by the handler, which names it (domain/accounts.ts).
const Password = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH });
const UserName = Type.String({ maxLength: 255 });

export const UserParams = Type.Object({ userId: Id });
export const MemberParams = Type.Object({ applicationId: Id, userId: Id });
export const TokenParams = Type.Object({ applicationId: Id, tokenId: Id });

export const User = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  admin: Type.Boolean(),
  creationDate: IsoTime,
  lastUpdated: IsoTime,
});

export const UserBody = Type.Object(
  {
    email: Email,
    password: Password,
    name: Type.Optional(UserName),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const UserPatch = Type.Partial(UserBody, { additionalProperties: false });

export const SignInBody = Type.Object(
  { email: Type.String({ minLength: 1, maxLength: 254 }), password: Password },
  { additionalProperties: false },
);

export const SignInReply = Type.Object({
  user: User,
  /** Sent back as the X-CSRF-Token header with every request that changes something. */
  csrfToken: Type.String(),
  expiresAt: IsoTime,
});

export const Membership = Type.Object({ applicationId: Type.String(), role: Role });

export const Me = Type.Object({
  /** `admin` (an admin token or admin user), `user`, `apiToken` or `device`. */
  kind: Type.String(),
  /** Who, as the command history names them: `token:ID`, `user:ID`, or a device id. */
  id: Type.String(),
  /** The signed-in user (a session, or an admin user). */
  user: Type.Optional(User),
  /** Roles by application: a user's memberships, or an application token's one; operators may use every application. */
  applications: Type.Array(Membership),
  /** Present when the request came with a session cookie. */
  csrfToken: Type.Optional(Type.String()),
});

export const Member = Type.Object({
  userId: Type.String(),
  email: Type.String(),
  name: Type.String(),
  role: Role,
  creationDate: IsoTime,
});

export const MemberBody = Type.Object({ email: Email, role: Role }, { additionalProperties: false });
export const MemberPatch = Type.Object({ role: Role }, { additionalProperties: false });

export const ApiToken = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Role,
  expiresAt: Type.Union([IsoTime, Type.Null()]),
  creationDate: IsoTime,
});

export const ApiTokenWithSecret = Type.Intersect([ApiToken, Type.Object({ token: Type.String() })]);

export const ApiTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    role: Role,
    /** ISO 8601 or ms since the epoch; absent or null: never. */
    expiresAt: Type.Optional(Type.Union([IsoTime, Type.Integer({ minimum: 0 }), Type.Null()])),
  },
  { additionalProperties: false },
);
