/** Dashboards in SQLite (the DashboardStore part): one row each, blocks and context as JSON. */
import type Database from 'better-sqlite3';
import type { Dashboard, DashboardBlock, Theme } from '../../dashboards/model.js';
import type { DashboardStore } from '../types.js';

interface DashboardRow {
  id: string;
  application_id: string;
  name: string;
  description: string;
  refresh_rate: number;
  default_theme: string;
  blocks: string;
  context_configuration: string;
  creation_date: number;
  last_updated: number;
}

const fromRow = (r: DashboardRow): Dashboard => ({
  id: r.id,
  applicationId: r.application_id,
  name: r.name,
  description: r.description,
  refreshRate: r.refresh_rate,
  defaultTheme: r.default_theme as Theme,
  blocks: JSON.parse(r.blocks) as DashboardBlock[],
  contextConfiguration: JSON.parse(r.context_configuration) as Record<string, unknown>[],
  creationDate: r.creation_date,
  lastUpdated: r.last_updated,
});

const toRow = (d: Dashboard): DashboardRow => ({
  id: d.id,
  application_id: d.applicationId,
  name: d.name,
  description: d.description,
  refresh_rate: d.refreshRate,
  default_theme: d.defaultTheme,
  blocks: JSON.stringify(d.blocks),
  context_configuration: JSON.stringify(d.contextConfiguration),
  creation_date: d.creationDate,
  last_updated: d.lastUpdated,
});

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
