/** Time-series and last-value queries over SQLite (issue 3). */
import type Database from 'better-sqlite3';
import type { CompositeValue, SeriesPoint, SeriesQuery } from '../types.js';

export class SqliteSeries {
  constructor(private readonly db: Database.Database) {}

  query(_query: SeriesQuery): Map<string, SeriesPoint[]> {
    throw new Error('querySeries is not implemented yet');
  }

  lastValues(_deviceIds: string[], _attributes: string[] | null): Map<string, Record<string, CompositeValue>> {
    throw new Error('lastValues is not implemented yet');
  }
}
