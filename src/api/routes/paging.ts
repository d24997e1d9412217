/**
 * Offset paging of a list held whole in memory (applications, an application's keys: lists an
 * operator keeps short). The device list pages in the store; all answer the same envelope
 * (docs/decisions.md, Lists).
 */
export function pageOf<T, U>(
  all: readonly T[],
  query: { page: number; perPage: number },
  present: (item: T) => U,
): { items: U[]; count: number; totalCount: number; page: number; perPage: number } {
  const { page, perPage } = query;
  const items = all.slice(page * perPage, (page + 1) * perPage).map(present);
  return { items, count: items.length, totalCount: all.length, page, perPage };
}
