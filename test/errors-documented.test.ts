import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_TYPES } from '../src/core/errors.js';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  it.each(Object.entries(ERROR_TYPES))('documents %s with its status %i', (type, status) => {
    expect(doc).toMatch(new RegExp(`\\|\\s*\`${type}\`\\s*\\|\\s*${status}\\s*\\|`));
  });
});
