/**
 * Dashboards over REST (docs/dashboards.md), at the paths and in the JSON of Losant's
 * application dashboards, so Losant's REST client and dashboard exports work as they are.
 * Viewers read; editors and owners save and delete.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { iso } from '../../core/wire.js';
import type { Dashboards } from '../../dashboards/dashboards.js';
import { type Dashboard as DashboardModel, MAX_BLOCKS, MAX_CONTEXT_VARIABLES } from '../../dashboards/model.js';
import { applicationScope } from '../../domain/authorization.js';
import { ID_PATTERN } from '../../domain/ids.js';
import { allow } from '../guard.js';
import { AppParams, described, errorResponses, Id, Page, PageQuery, Query, Success } from '../schemas.js';
import { pageOf } from './paging.js';

const Config = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Shaped by `blockType`; docs/dashboards.md lists the fields of each.',
});
const Grid = (description: string) => Type.Number({ description });
const BlockBody = Type.Object(
  {
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 48, description: 'Chosen by the server if absent.' })),
    blockType: Type.String({
      maxLength: 64,
      description:
        'graph, gauge, indicator, device-list, device-state-table, device-log, input or gateway (docs/dashboards.md).',
    }),
    title: Type.Optional(Type.String({ maxLength: 255 })),
    description: Type.Optional(Type.String({ maxLength: 32_767 })),
    applicationId: Type.Optional(Id),
    startX: Grid('Column of the left edge: 0 to 3.5, in steps of 0.5.'),
    startY: Grid('Row of the top edge, from 0, in steps of 0.5.'),
    width: Grid('0.5 to 4 columns; startX + width is at most 4.'),
    height: Grid('0.5 to 24 rows.'),
    config: Type.Optional(Config),
  },
  { additionalProperties: false },
);
const ContextVariable = Type.Record(Type.String(), Type.Unknown(), {
  description: 'A Losant context variable (`name`, `type`, `defaultValue`, ...), kept as given for the console.',
});
const Settings = {
  description: Type.Optional(Type.String({ maxLength: 32_767 })),
  refreshRate: Type.Optional(Type.Number({ minimum: 5, maximum: 600, description: 'Seconds; 60 if absent.' })),
  defaultTheme: Type.Optional(Type.Union([Type.Literal('light'), Type.Literal('dark')])),
  blocks: Type.Optional(Type.Array(BlockBody, { maxItems: MAX_BLOCKS })),
  contextConfiguration: Type.Optional(Type.Array(ContextVariable, { maxItems: MAX_CONTEXT_VARIABLES })),
  // Public dashboards, passwords and emailed reports are not offered: only their "off" values pass.
  public: Type.Optional(Type.Literal(false, { description: 'Public dashboards are not supported.' })),
  password: Type.Optional(Type.Null({ description: 'Password-protected dashboards are not supported.' })),
  reportConfigs: Type.Optional(
    Type.Array(Type.Unknown(), { maxItems: 0, description: 'Emailed reports are not supported.' }),
  ),
};
/** Fields of a Losant dashboard export that say nothing about what it shows: accepted on create, ignored. */
const IgnoredExportFields = {
  id: Type.Optional(Type.String({ maxLength: 255 })),
  dashboardId: Type.Optional(Type.String({ maxLength: 255 })),
  applicationId: Type.Optional(Type.String({ maxLength: 255 })),
  applicationName: Type.Optional(Type.String({ maxLength: 255 })),
  ownerId: Type.Optional(Type.String({ maxLength: 255 })),
  ownerType: Type.Optional(Type.String({ maxLength: 64 })),
  creationDate: Type.Optional(Type.String({ maxLength: 64 })),
  lastUpdated: Type.Optional(Type.String({ maxLength: 64 })),
  isPasswordProtected: Type.Optional(Type.Literal(false)),
};
const DashboardBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 255 }), ...Settings, ...IgnoredExportFields },
  { additionalProperties: false },
);
const DashboardPatch = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), ...Settings },
  { additionalProperties: false },
);
const Block = Type.Object({
  id: Type.String(),
  blockType: Type.String(),
  title: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  applicationId: Type.String({ description: "The dashboard's application." }),
  startX: Type.Number(),
  startY: Type.Number(),
  width: Type.Number(),
  height: Type.Number(),
  config: Config,
});
const Dashboard = Type.Object({
  id: Type.String(),
  dashboardId: Type.String({ description: 'The same as `id` (Losant answers both).' }),
  applicationId: Type.String(),
  name: Type.String(),
  description: Type.String(),
  refreshRate: Type.Number(),
  defaultTheme: Type.Union([Type.Literal('light'), Type.Literal('dark')]),
  public: Type.Literal(false),
  isPasswordProtected: Type.Literal(false),
  reportConfigs: Type.Array(Type.Unknown(), { maxItems: 0 }),
  blocks: Type.Array(Block),
  contextConfiguration: Type.Array(ContextVariable),
  creationDate: Type.String({ format: 'date-time' }),
  lastUpdated: Type.String({ format: 'date-time' }),
});
const DashboardParams = Type.Object({
  applicationId: AppParams.properties.applicationId,
  dashboardId: Type.String({ pattern: ID_PATTERN, description: 'The id of a dashboard of the application.' }),
});
/** Losant's list parameters (its REST client sends them): sorting and a name filter with `*`. */
const DashboardListQuery = Query({
  ...PageQuery,
  sortField: Type.Optional(
    Type.Union([Type.Literal('name'), Type.Literal('id'), Type.Literal('creationDate')], {
      description: 'creationDate if absent.',
    }),
  ),
  sortDirection: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
  filterField: Type.Optional(Type.Literal('name')),
  filter: Type.Optional(
    Type.String({ maxLength: 255, description: 'Only dashboards whose name matches; `*` matches any run.' }),
  ),
});

/**
 * Losant's top-level paths (its client's `dashboards` and `dashboard` resources): the same
 * dashboards, found by id alone; one is created with the `applicationId` it belongs to, as Losant
 * allows (dashboards owned by an organization or a user are not offered).
 */
const { applicationId: _ignored, ...ExportFieldsButApplication } = IgnoredExportFields;
const AnywhereBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    applicationId: Type.String({ pattern: ID_PATTERN, description: 'The application the dashboard belongs to.' }),
    ...Settings,
    ...ExportFieldsButApplication,
  },
  { additionalProperties: false },
);
const AnywhereParams = Type.Object({ dashboardId: DashboardParams.properties.dashboardId });
const AnywhereListQuery = Query({
  ...PageQuery,
  sortField: Type.Optional(
    Type.Union([Type.Literal('name'), Type.Literal('id'), Type.Literal('creationDate'), Type.Literal('applicationId')]),
  ),
  sortDirection: DashboardListQuery.properties.sortDirection,
  filterField: DashboardListQuery.properties.filterField,
  filter: DashboardListQuery.properties.filter,
  applicationId: Type.Optional(
    Type.String({ pattern: ID_PATTERN, description: 'Only the dashboards of this application.' }),
  ),
});

const present = (d: DashboardModel): Static<typeof Dashboard> => ({
  id: d.id,
  dashboardId: d.id,
  applicationId: d.applicationId,
  name: d.name,
  description: d.description,
  refreshRate: d.refreshRate,
  defaultTheme: d.defaultTheme,
  public: false,
  isPasswordProtected: false,
  reportConfigs: [],
  blocks: d.blocks.map((b) => ({ ...b, applicationId: d.applicationId })),
  contextConfiguration: d.contextConfiguration,
  creationDate: iso(d.creationDate),
  lastUpdated: iso(d.lastUpdated),
});

/** A case-insensitive whole-name match where `*` stands for any run of characters. */
function globMatcher(pattern: string): (name: string) => boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${source}$`, 'i');
  return (name) => re.test(name);
}

function sorted(
  all: DashboardModel[],
  query: Omit<Static<typeof AnywhereListQuery>, 'applicationId'>,
): DashboardModel[] {
  const matches = query.filter ? globMatcher(query.filter) : () => true;
  const list = all.filter((d) => matches(d.name));
  const field = query.sortField ?? 'creationDate';
  const key = (d: DashboardModel): string | number => (field === 'name' ? d.name.toLowerCase() : d[field]);
  // The store lists oldest first; a stable sort keeps that order among equal keys.
  list.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return query.sortDirection === 'desc' ? list.reverse() : list;
}

export const dashboardRoutes =
  (dashboards: Dashboards): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/applications/:applicationId/dashboards',
      {
        schema: {
          summary: 'Create a dashboard',
          description:
            "Losant's dashboard format; every block is validated, each problem naming the block (index and id) and the field.",
          tags: ['dashboards'],
          params: AppParams,
          body: DashboardBody,
          response: {
            201: described(Dashboard, 'The new dashboard.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        const { name, description, refreshRate, defaultTheme, blocks, contextConfiguration } = request.body;
        const input = { name, description, refreshRate, defaultTheme, blocks, contextConfiguration };
        return reply.code(201).send(present(await dashboards.create(applicationId, input)));
      },
    );

    app.get(
      '/applications/:applicationId/dashboards',
      {
        schema: {
          summary: 'List dashboards',
          tags: ['dashboards'],
          params: AppParams,
          querystring: DashboardListQuery,
          response: {
            200: described(Page(Dashboard), 'A page of dashboards, oldest first unless sorted otherwise.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return pageOf(sorted(await dashboards.list(applicationId), request.query), request.query, present);
      },
    );

    app.get(
      '/applications/:applicationId/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Get a dashboard',
          tags: ['dashboards'],
          params: DashboardParams,
          response: { 200: described(Dashboard, 'The dashboard.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        const { applicationId, dashboardId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return present(await dashboards.require(applicationId, dashboardId));
      },
    );

    app.patch(
      '/applications/:applicationId/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Change a dashboard',
          description:
            'Replaces the fields it names; `blocks` is replaced whole. The result is validated as on create.',
          tags: ['dashboards'],
          params: DashboardParams,
          body: DashboardPatch,
          response: {
            200: described(Dashboard, 'The dashboard as saved.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, dashboardId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        const { name, description, refreshRate, defaultTheme, blocks, contextConfiguration } = request.body;
        const patch = { name, description, refreshRate, defaultTheme, blocks, contextConfiguration };
        return present(await dashboards.update(applicationId, dashboardId, patch));
      },
    );

    app.delete(
      '/applications/:applicationId/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Delete a dashboard',
          tags: ['dashboards'],
          params: DashboardParams,
          response: {
            200: described(Success, 'Deleted.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, dashboardId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        await dashboards.delete(applicationId, dashboardId);
        return { success: true as const };
      },
    );

    app.get(
      '/dashboards',
      {
        schema: {
          summary: 'List dashboards of every application',
          description: "Losant's top-level list: the dashboards of each application the caller may read.",
          tags: ['dashboards'],
          querystring: AnywhereListQuery,
          response: {
            200: described(Page(Dashboard), 'A page of dashboards, by application and oldest first unless sorted.'),
            ...errorResponses(400, 401, 403, 429),
          },
        },
      },
      async (request) => {
        const principal = allow(request, { type: 'listApplications' });
        const scope = applicationScope(principal);
        const wanted = request.query.applicationId;
        const ids = wanted === undefined ? scope : scope === null || scope.includes(wanted) ? [wanted] : [];
        return pageOf(sorted(await dashboards.listOf(ids), request.query), request.query, present);
      },
    );

    app.post(
      '/dashboards',
      {
        schema: {
          summary: 'Create a dashboard (by its applicationId)',
          description: 'As `POST /applications/{applicationId}/dashboards`, with the application named in the body.',
          tags: ['dashboards'],
          body: AnywhereBody,
          response: {
            201: described(Dashboard, 'The new dashboard.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId, name, description, refreshRate, defaultTheme, blocks, contextConfiguration } =
          request.body;
        allow(request, { type: 'editApplication', applicationId });
        const input = { name, description, refreshRate, defaultTheme, blocks, contextConfiguration };
        return reply.code(201).send(present(await dashboards.create(applicationId, input)));
      },
    );

    app.get(
      '/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Get a dashboard by id',
          tags: ['dashboards'],
          params: AnywhereParams,
          response: { 200: described(Dashboard, 'The dashboard.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        const dashboard = await dashboards.find(request.params.dashboardId);
        allow(request, { type: 'readApplication', applicationId: dashboard.applicationId });
        return present(dashboard);
      },
    );

    app.patch(
      '/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Change a dashboard by id',
          description: 'As `PATCH /applications/{applicationId}/dashboards/{dashboardId}`.',
          tags: ['dashboards'],
          params: AnywhereParams,
          body: DashboardPatch,
          response: {
            200: described(Dashboard, 'The dashboard as saved.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { dashboardId } = request.params;
        const { applicationId } = await dashboards.find(dashboardId);
        allow(request, { type: 'editApplication', applicationId });
        const { name, description, refreshRate, defaultTheme, blocks, contextConfiguration } = request.body;
        const patch = { name, description, refreshRate, defaultTheme, blocks, contextConfiguration };
        return present(await dashboards.update(applicationId, dashboardId, patch));
      },
    );

    app.delete(
      '/dashboards/:dashboardId',
      {
        schema: {
          summary: 'Delete a dashboard by id',
          tags: ['dashboards'],
          params: AnywhereParams,
          response: {
            200: described(Success, 'Deleted.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { dashboardId } = request.params;
        const { applicationId } = await dashboards.find(dashboardId);
        allow(request, { type: 'editApplication', applicationId });
        await dashboards.delete(applicationId, dashboardId);
        return { success: true as const };
      },
    );
  };
