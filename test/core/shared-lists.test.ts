import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/core/registry.js';
import { SharedLists } from '../../src/core/shared-lists.js';
import type { AttributeDef } from '../../src/domain/model.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('SharedLists', () => {
  it('gives equal lists one frozen copy, and unequal ones their own', () => {
    const lists = new SharedLists<AttributeDef>();
    const a = lists.share([{ name: 't', dataType: 'number' }]);
    const b = lists.share([{ name: 't', dataType: 'number' }]);
    const c = lists.share([{ name: 't', dataType: 'string' }]);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(c).toEqual([{ name: 't', dataType: 'string' }]);
    expect(lists.size).toBe(2);
    expect(() => a.push({ name: 'u', dataType: 'number' })).toThrow(TypeError);
    expect(() => {
      (a[0] as { name: string }).name = 'changed';
    }).toThrow(TypeError);
    expect(a).toEqual([{ name: 't', dataType: 'number' }]);
  });

  it('leaves the list it was given as it was (a copy is frozen, not the caller’s)', () => {
    const lists = new SharedLists<AttributeDef>();
    const mine: AttributeDef[] = [{ name: 't', dataType: 'number' }];
    lists.share(mine);
    mine.push({ name: 'u', dataType: 'number' });
    expect(Object.isFrozen(mine)).toBe(false);
    expect(lists.share([{ name: 't', dataType: 'number' }])).toEqual([{ name: 't', dataType: 'number' }]);
  });

  it('remembers at most max lists', () => {
    const lists = new SharedLists<number>(3);
    for (let i = 0; i < 10; i++) lists.share([i]);
    expect(lists.size).toBeLessThanOrEqual(3);
    expect(lists.share([9])).toEqual([9]);
  });
});

describe('Registry: cached devices share equal tag and attribute lists', () => {
  it('created, read back and updated devices', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-shared-'));
    dirs.push(dir);
    const store = await openSqliteStore({ dataDir: dir });
    const registry = new Registry(store);
    const app = await registry.createApplication({ name: 'app' });
    const template = {
      name: 'sensor',
      tags: [{ key: 'site', value: 'north' }],
      attributes: [{ name: 'temperature', dataType: 'number' as const }],
    };
    const a = await registry.createDevice(app.id, template);
    const b = await registry.createDevice(app.id, structuredClone(template));
    expect(b.attributes).toBe(a.attributes);
    expect(b.tags).toBe(a.tags);
    // Read from the store by a registry with an empty cache: shared as well.
    const fresh = new Registry(store);
    const [ra, rb] = [await fresh.device(a.id), await fresh.device(b.id)];
    expect(rb?.attributes).toBe(ra?.attributes);
    const updated = await registry.updateDevice(app.id, b.id, { tags: [{ key: 'site', value: 'south' }] });
    expect(updated.tags).toEqual([{ key: 'site', value: 'south' }]);
    expect(registry.deviceCached(a.id)?.tags).toEqual([{ key: 'site', value: 'north' }]);
    expect(updated.attributes).toBe(a.attributes);
    await store.close();
  });
});
