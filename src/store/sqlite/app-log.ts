/** The application-wide communication log over SQLite (issue 3). */
import type Database from 'better-sqlite3';
import type { DeviceLogEntry } from '../../domain/model.js';
import type { ApplicationLogQuery } from '../types.js';

export class SqliteApplicationLog {
  constructor(private readonly db: Database.Database) {}

  list(_query: ApplicationLogQuery): DeviceLogEntry[] {
    throw new Error('listApplicationLog is not implemented yet');
  }
}
