/** Dashboards in PostgreSQL (the DashboardStore part): one row each, blocks and context as JSON text. */
import type pg from 'pg';
import type { Dashboard } from '../../dashboards/model.js';
import { type DashboardRow, fromRow, toRow } from '../dashboard-rows.js';
import type { DashboardStore } from '../types.js';

export class PostgresDashboards implements DashboardStore {
  constructor(private readonly pool: pg.Pool) {}

  async createDashboard(dashboard: Dashboard): Promise<void> {
    const r = toRow(dashboard);
    await this.pool.query(
      `INSERT INTO dashboards (id, application_id, name, description, refresh_rate, default_theme, blocks,
         context_configuration, creation_date, last_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        r.id,
        r.application_id,
        r.name,
        r.description,
        r.refresh_rate,
        r.default_theme,
        r.blocks,
        r.context_configuration,
        r.creation_date,
        r.last_updated,
      ],
    );
  }

  async getDashboard(id: string): Promise<Dashboard | undefined> {
    const { rows } = await this.pool.query<DashboardRow>('SELECT * FROM dashboards WHERE id = $1', [id]);
    return rows[0] && fromRow(rows[0]);
  }

  async listDashboards(applicationId: string): Promise<Dashboard[]> {
    const { rows } = await this.pool.query<DashboardRow>(
      'SELECT * FROM dashboards WHERE application_id = $1 ORDER BY creation_date, id',
      [applicationId],
    );
    return rows.map(fromRow);
  }

  async updateDashboard(dashboard: Dashboard): Promise<void> {
    // The id, application and creation date are the row's own: a write cannot move it elsewhere.
    const r = toRow(dashboard);
    await this.pool.query(
      `UPDATE dashboards SET name = $2, description = $3, refresh_rate = $4, default_theme = $5, blocks = $6,
         context_configuration = $7, last_updated = $8 WHERE id = $1`,
      [r.id, r.name, r.description, r.refresh_rate, r.default_theme, r.blocks, r.context_configuration, r.last_updated],
    );
  }

  async deleteDashboard(id: string): Promise<void> {
    await this.pool.query('DELETE FROM dashboards WHERE id = $1', [id]);
  }
}
