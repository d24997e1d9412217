/** A dashboard as a table row, the same in every backend: blocks and context as JSON text. */
import type { Dashboard, DashboardBlock, Theme } from '../dashboards/model.js';

export interface DashboardRow {
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

export const fromRow = (r: DashboardRow): Dashboard => ({
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

export const toRow = (d: Dashboard): DashboardRow => ({
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
