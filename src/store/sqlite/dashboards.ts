/** Dashboards in SQLite (the DashboardStore part): one row each, blocks and context as JSON. */
import type Database from 'better-sqlite3';
import type { Dashboard } from '../../dashboards/model.js';
import { type DashboardRow, fromRow, toRow } from '../dashboard-rows.js';
import type { DashboardStore } from '../types.js';

function statements(db: Database.Database) {
  return {
    insert: db.prepare<[DashboardRow]>(
      `INSERT INTO dashboards (id, application_id, name, description, refresh_rate, default_theme, blocks,
         context_configuration, creation_date, last_updated)
       VALUES (@id, @application_id, @name, @description, @refresh_rate, @default_theme, @blocks,
         @context_configuration, @creation_date, @last_updated)`,
    ),
    get: db.prepare<[string], DashboardRow>('SELECT * FROM dashboards WHERE id = ?'),
    list: db.prepare<[string], DashboardRow>(
      'SELECT * FROM dashboards WHERE application_id = ? ORDER BY creation_date, id',
    ),
    update: db.prepare<[DashboardRow]>(
      `UPDATE dashboards SET name = @name, description = @description, refresh_rate = @refresh_rate,
         default_theme = @default_theme, blocks = @blocks, context_configuration = @context_configuration,
         last_updated = @last_updated
       WHERE id = @id`,
    ),
    delete: db.prepare<[string]>('DELETE FROM dashboards WHERE id = ?'),
  };
}

export class SqliteDashboards implements DashboardStore {
  private readonly s: ReturnType<typeof statements>;

  constructor(db: Database.Database) {
    this.s = statements(db);
  }

  async createDashboard(dashboard: Dashboard): Promise<void> {
    this.s.insert.run(toRow(dashboard));
  }

  async getDashboard(id: string): Promise<Dashboard | undefined> {
    const row = this.s.get.get(id);
    return row && fromRow(row);
  }

  async listDashboards(applicationId: string): Promise<Dashboard[]> {
    return this.s.list.all(applicationId).map(fromRow);
  }

  async updateDashboard(dashboard: Dashboard): Promise<void> {
    // The id, application and creation date are the row's own: a write cannot move it elsewhere.
    this.s.update.run(toRow(dashboard));
  }

  async deleteDashboard(id: string): Promise<void> {
    this.s.delete.run(id);
  }
}
