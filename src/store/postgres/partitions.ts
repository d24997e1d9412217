/**
 * The daily range partitions of `device_states`. A state can only be inserted once the
 * partition of its day exists, so the store creates today's and the next days' partitions when
 * it opens and once a day after, and the partition of any other day (backfill, a device clock
 * far off) on demand, before the batch that needs it. Retention drops whole partitions
 * (postgres-store.ts, pruneStates).
 */
import type pg from 'pg';

export const DAY_MS = 86_400_000;

/** Days created ahead of the clock (today included). */
export const DAYS_AHEAD = 3;

/** The advisory lock key taken (per transaction) while partitions are created or dropped. */
const PARTITION_LOCK_KEY = '7449366275094767988';

/** The day number (days since 1970-01-01 UTC, negative before) that holds `time`. */
export const dayOf = (time: number): number => Math.floor(time / DAY_MS);

/** A partition's name: `device_states_d` and its day number (`m` for negative days). */
export const partitionName = (day: number): string => `device_states_d${day < 0 ? `m${-day}` : String(day)}`;

export interface StatePartition {
  name: string;
  /** Inclusive lower and exclusive upper bound, epoch ms. */
  from: number;
  to: number;
}

/** Knows which day partitions exist; creates missing ones. One per store. */
export class StatePartitions {
  private readonly known = new Set<number>();

  constructor(private readonly pool: pg.Pool) {}

  /** Re-reads which partitions exist (another node may have created or dropped some). */
  async reload(): Promise<void> {
    this.known.clear();
    for (const p of await this.list()) this.known.add(dayOf(p.from));
  }

  /** Every partition of device_states, oldest first, with its bounds. */
  async list(client: pg.Pool | pg.PoolClient = this.pool): Promise<StatePartition[]> {
    const { rows } = await client.query<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'device_states'::regclass`,
    );
    const out: StatePartition[] = [];
    for (const row of rows) {
      const m = /FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)/.exec(row.bound);
      if (m) out.push({ name: row.name, from: Number(m[1]), to: Number(m[2]) });
    }
    return out.sort((a, b) => a.from - b.from);
  }

  /** Makes sure the partitions of every day of `times` exist. */
  async ensure(times: Iterable<number>): Promise<void> {
    const missing = new Set<number>();
    for (const time of times) {
      const day = dayOf(time);
      if (!this.known.has(day)) missing.add(day);
    }
    if (missing.size === 0) return;
    const client = await this.pool.connect();
    try {
      // Two nodes creating the same partition at once: the lock makes the second find it.
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      for (const day of [...missing].sort((a, b) => a - b)) {
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF device_states
           FOR VALUES FROM (${day * DAY_MS}) TO (${(day + 1) * DAY_MS})`,
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    for (const day of missing) this.known.add(day);
  }

  /** Creates the partitions of the days from `now` on, `DAYS_AHEAD` of them. */
  ensureAhead(now: number): Promise<void> {
    return this.ensure(Array.from({ length: DAYS_AHEAD }, (_, i) => now + i * DAY_MS));
  }

  /**
   * Takes the partition lock for the caller's transaction, before it locks or drops any
   * partition: always this lock first, then the tables, so creating and dropping cannot deadlock.
   */
  async lock(client: pg.PoolClient): Promise<void> {
    await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
  }

  /** Drops one partition inside the caller's transaction (after `lock`). */
  async drop(client: pg.PoolClient, partition: StatePartition): Promise<void> {
    await client.query(`DROP TABLE IF EXISTS ${partition.name}`);
    this.known.delete(dayOf(partition.from));
  }
}
