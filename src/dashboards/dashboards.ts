/**
 * Dashboards of an application: validated writes through to the store. A dashboard is one
 * document with no versions (as in Losant): a save replaces it for every viewer.
 */
import { GatehouseError } from '../core/errors.js';
import type { Registry } from '../core/registry.js';
import { newId } from '../domain/ids.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../domain/json.js';
import type { Store } from '../store/types.js';
import {
  type Dashboard,
  type DashboardInput,
  type DashboardPatch,
  DEFAULT_REFRESH_RATE,
  MAX_CONTEXT_VARIABLES,
} from './model.js';
import { assertDashboardSize, validBlocks } from './validate.js';

function checkContext(context: Record<string, unknown>[] | undefined): Record<string, unknown>[] {
  const list = context ?? [];
  if (list.length > MAX_CONTEXT_VARIABLES) {
    throw new GatehouseError('Validation', `contextConfiguration: at most ${MAX_CONTEXT_VARIABLES} variables`);
  }
  // Kept as given, so its depth is bounded here as any free-form JSON is (src/domain/json.ts).
  if (nestsDeeperThan(list, MAX_JSON_DEPTH)) {
    throw new GatehouseError(
      'Validation',
      `contextConfiguration nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
    );
  }
  return list;
}

export class Dashboards {
  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly clock: () => number,
  ) {}

  async create(applicationId: string, input: DashboardInput): Promise<Dashboard> {
    await this.registry.requireApplication(applicationId);
    const now = this.clock();
    const dashboard: Dashboard = {
      id: newId(),
      applicationId,
      name: input.name,
      description: input.description ?? '',
      refreshRate: input.refreshRate ?? DEFAULT_REFRESH_RATE,
      defaultTheme: input.defaultTheme ?? 'light',
      blocks: validBlocks(applicationId, input.blocks ?? []),
      contextConfiguration: checkContext(input.contextConfiguration),
      creationDate: now,
      lastUpdated: now,
    };
    assertDashboardSize(dashboard);
    await this.store.createDashboard(dashboard);
    return dashboard;
  }

  /** The dashboard, if it belongs to the application; 404 otherwise (a dashboard of another is not named). */
  async require(applicationId: string, dashboardId: string): Promise<Dashboard> {
    const dashboard = await this.store.getDashboard(dashboardId);
    if (!dashboard || dashboard.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `dashboard ${dashboardId} not found in application ${applicationId}`);
    }
    return dashboard;
  }

  /** The dashboard by id alone (Losant's `/dashboards/ID`): the caller then asks about its application. */
  async find(dashboardId: string): Promise<Dashboard> {
    const dashboard = await this.store.getDashboard(dashboardId);
    if (!dashboard) throw new GatehouseError('NotFound', `dashboard ${dashboardId} not found`);
    return dashboard;
  }

  /** The dashboards of these applications (null: of every one), oldest first within each. */
  async listOf(applicationIds: readonly string[] | null): Promise<Dashboard[]> {
    const ids = applicationIds ?? (await this.registry.listApplications()).map((a) => a.id);
    const lists = await Promise.all(ids.map((id) => this.store.listDashboards(id)));
    return lists.flat();
  }

  async list(applicationId: string): Promise<Dashboard[]> {
    await this.registry.requireApplication(applicationId);
    return this.store.listDashboards(applicationId);
  }

  /** Replaces the fields the patch names (`blocks` whole, as Losant does); the result is validated. */
  async update(applicationId: string, dashboardId: string, patch: DashboardPatch): Promise<Dashboard> {
    const dashboard = await this.require(applicationId, dashboardId);
    const updated: Dashboard = {
      ...dashboard,
      name: patch.name ?? dashboard.name,
      description: patch.description ?? dashboard.description,
      refreshRate: patch.refreshRate ?? dashboard.refreshRate,
      defaultTheme: patch.defaultTheme ?? dashboard.defaultTheme,
      blocks: patch.blocks === undefined ? dashboard.blocks : validBlocks(applicationId, patch.blocks),
      contextConfiguration:
        patch.contextConfiguration === undefined
          ? dashboard.contextConfiguration
          : checkContext(patch.contextConfiguration),
      lastUpdated: this.clock(),
    };
    assertDashboardSize(updated);
    await this.store.updateDashboard(updated);
    return updated;
  }

  async delete(applicationId: string, dashboardId: string): Promise<void> {
    await this.require(applicationId, dashboardId);
    await this.store.deleteDashboard(dashboardId);
  }
}
