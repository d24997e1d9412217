/**
 * Decoding payloads. Every parser of this package answers a result instead of throwing, so hostile
 * input can only ever produce a reason.
 */

export type WireResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A payload as MQTT delivers it (a Node Buffer is a Uint8Array) or as text. */
export type Payload = string | Uint8Array;

const utf8 = new TextDecoder('utf-8');

/** The payload as text; invalid UTF-8 sequences become U+FFFD, as Node's `buffer.toString()` does. */
export function payloadText(raw: Payload): string {
  return typeof raw === 'string' ? raw : utf8.decode(raw);
}

/** `JSON.parse` of a payload, which V8 runs without recursion however deep the nesting. */
export function parseJson(raw: Payload): WireResult<unknown> {
  try {
    return { ok: true, value: JSON.parse(payloadText(raw)) };
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `JSON.stringify`, with a clear Error when a value cannot be written, such as one nested deeper
 * than the engine's stack (`JSON.stringify` recurses once per level).
 */
export function encodeJson(value: unknown, what: string): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new Error(`${what} cannot be encoded as JSON: ${(err as Error).message}`, { cause: err });
  }
}
