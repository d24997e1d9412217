/**
 * PostgreSQL text cannot hold U+0000, and jsonb refuses the `\u0000` escape, while devices may
 * send strings containing it (SQLite stores them as they are). Without this, one such string
 * would make the whole group commit fail. Strings are escaped reversibly with U+FFFF, a
 * noncharacter: U+FFFF becomes U+FFFF U+FFFF and U+0000 becomes U+FFFF "0". The JSON forms are
 * escaped on their text (JSON.stringify writes U+0000 as `\u0000` and U+FFFF as itself, both
 * only ever inside strings), so JSON without either character costs one scan.
 */
const ESC = '\uffff';

// `\u0000` preceded by an even number of backslashes (itself an escape, not an escaped backslash).
const JSON_NUL = /(?<!\\)((?:\\\\)*)\\u0000/g;

/** JSON text (from JSON.stringify) as it may go into a jsonb column. */
export function escapeJson(text: string): string {
  if (!text.includes('\\u0000') && !text.includes(ESC)) return text;
  return text.replaceAll(ESC, ESC + ESC).replace(JSON_NUL, `$1${ESC}0`);
}

/** jsonb text back to the JSON that was stored. */
export function unescapeJson(text: string): string {
  if (!text.includes(ESC)) return text;
  return text.replace(/\uffff([\uffff0])/g, (_, c: string) => (c === ESC ? ESC : '\\u0000'));
}

/** A string as it may go into a text column (command names, workflow storage keys). */
export function escapeText(text: string): string {
  if (!text.includes('\u0000') && !text.includes(ESC)) return text;
  return text.replaceAll(ESC, ESC + ESC).replaceAll('\u0000', `${ESC}0`);
}

/** A value read from a jsonb column (as text: the pool's type parsers). */
export function fromJsonb<T = unknown>(text: string): T {
  return JSON.parse(unescapeJson(text)) as T;
}

/** A string read from a text column written with `escapeText`. */
export function unescapeText(text: string): string {
  if (!text.includes(ESC)) return text;
  return text.replace(/\uffff([\uffff0])/g, (_, c: string) => (c === ESC ? ESC : '\u0000'));
}
