import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_TYPES, errorForStatus, typeForStatus } from '../src/core/errors.js';

/** The `| \`Type\` | status |` rows of the REST table of docs/errors.md. */
function documentedTypes(): Array<[string, number]> {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const rest = doc.slice(doc.indexOf('## REST'), doc.indexOf('## MQTT'));
  return [...rest.matchAll(/^\|\s*`(\w+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => [m[1] as string, Number(m[2])]);
}

describe('error catalogue', () => {
  it('is documented exactly: every catalogued type in docs/errors.md, every documented type catalogued', () => {
    const documented = documentedTypes();
    expect(documented.length).toBeGreaterThan(0);
    expect(Object.fromEntries(documented)).toEqual(ERROR_TYPES);
    expect(new Set(documented.map(([type]) => type)).size).toBe(documented.length);
  });

  it('gives each status one type, so the status-to-type map is the catalogue read backwards', () => {
    const statuses = Object.values(ERROR_TYPES);
    expect(new Set(statuses).size).toBe(statuses.length);
    for (const [type, status] of Object.entries(ERROR_TYPES)) expect(typeForStatus(status)).toBe(type);
  });

  it('answers only catalogued types, whatever the status', () => {
    for (const status of [400, 401, 402, 403, 404, 405, 406, 409, 413, 414, 415, 418, 429, 431, 500, 502, 503]) {
      expect(Object.keys(ERROR_TYPES)).toContain(typeForStatus(status));
    }
    expect(typeForStatus(405)).toBe('Validation');
    expect(typeForStatus(502)).toBe('InternalError');
    expect(typeForStatus(503)).toBe('Unavailable');
    expect(errorForStatus(429, 'slow down', { retryAfterSeconds: 3 })).toMatchObject({
      type: 'RateLimited',
      status: 429,
      retryAfterSeconds: 3,
    });
  });
});
