/**
 * Bounds on JSON values the platform stores as given (command payloads). A value nested deeper
 * than any device needs costs recursion in every later JSON.stringify, SQLite json function and
 * client parser that meets it (SQLite's JSON functions refuse more than 1,000 levels); refusing it
 * up front keeps every reader safe.
 */

/** The deepest nesting of arrays and objects a stored JSON value may have (a scalar is depth 0). */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests arrays and objects more than `max` levels deep. Iterative: no stack. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const v = item.value;
    if (v === null || typeof v !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth });
    }
  }
  return false;
}
