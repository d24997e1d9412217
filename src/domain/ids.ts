import { randomBytes } from 'node:crypto';
import { ID_PATTERN } from '@gatehouse/wire';

/** Application, device, key and command ids: 24 lowercase hex characters, defined with the wire contract. */
export { ID_PATTERN };

const ID_RE = new RegExp(ID_PATTERN);

/** Attribute names and tag keys (spec: Identifiers). */
export const NAME_PATTERN = '^[0-9a-zA-Z_-]{1,255}$';
const NAME_RE = new RegExp(NAME_PATTERN);

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_RE.test(value);
}

export function isAttributeName(value: unknown): value is string {
  return typeof value === 'string' && NAME_RE.test(value);
}

export function newId(): string {
  return randomBytes(12).toString('hex');
}
