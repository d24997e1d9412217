/**
 * Dashboards: Losant's dashboard format (docs/dashboards.md), so that a dashboard made for
 * Losant's REST client, or exported from Losant, saves here as it is. Application-owned only:
 * every dashboard belongs to one application and its blocks read that application's devices.
 */

/** The block types Gatehouse keeps and the console draws; Losant's names, plus `gateway`. */
export const BLOCK_TYPES = [
  'graph',
  'gauge',
  'indicator',
  'device-list',
  'device-state-table',
  'device-log',
  'input',
  'gateway',
] as const;
export type BlockType = (typeof BLOCK_TYPES)[number];

export interface DashboardBlock {
  /** Unique within the dashboard; chosen by the server when the client gives none. */
  id: string;
  blockType: BlockType;
  title?: string;
  description?: string;
  /** Grid units: 4 columns, in steps of 0.5 (docs/dashboards.md, Layout). */
  startX: number;
  startY: number;
  width: number;
  height: number;
  /** Shaped by `blockType`; checked on save (blocks.ts). */
  config: Record<string, unknown>;
}

export const THEMES = ['light', 'dark'] as const;
export type Theme = (typeof THEMES)[number];

export interface Dashboard {
  id: string;
  applicationId: string;
  name: string;
  description: string;
  /** Seconds between re-queries of the data blocks, 5 to 600. */
  refreshRate: number;
  defaultTheme: Theme;
  blocks: DashboardBlock[];
  /** Losant's context variables, kept as given: the console resolves `{{ctx.name}}` with them. */
  contextConfiguration: Record<string, unknown>[];
  creationDate: number;
  lastUpdated: number;
}

/** What a client sends to create one (its fields as Losant names them). */
export interface DashboardInput {
  name: string;
  description?: string;
  refreshRate?: number;
  defaultTheme?: Theme;
  blocks?: BlockInput[];
  contextConfiguration?: Record<string, unknown>[];
}

export type DashboardPatch = Partial<DashboardInput>;

/** A block as sent: `id` may be absent, `applicationId` may name the dashboard's application. */
export interface BlockInput {
  id?: string;
  blockType: string;
  title?: string;
  description?: string;
  startX: number;
  startY: number;
  width: number;
  height: number;
  applicationId?: string;
  config?: Record<string, unknown>;
}

export const DEFAULT_REFRESH_RATE = 60;
export const MAX_BLOCKS = 100;
export const MAX_CONTEXT_VARIABLES = 100;
/** The grid is 4 columns wide (Losant's), positions and sizes in steps of 0.5. */
export const GRID_COLUMNS = 4;
/** No row limit in Losant; a bound here keeps a mistaken number from making a page miles long. */
export const MAX_GRID_ROW = 1000;
export const MAX_BLOCK_HEIGHT = 24;
/** The largest dashboard accepted, as JSON (the request body limit is the same). */
export const MAX_DASHBOARD_BYTES = 256 * 1024;
