/**
 * The application-wide communication log over PostgreSQL: device log entries, commands sent and
 * states accepted, merged at query time as in SQLite (sqlite/app-log.ts), but in one statement:
 * each source is read newest first after the cursor, limited (commands and states per device),
 * and the three are merged by the database. The position (time, rank, number key, text key) compares as a row: rank orders the
 * sources at one millisecond (log 2, command 1, state 0), the number key is a log id or a
 * command's sequence number, the text key a state's device id.
 */
import type pg from 'pg';
import type { DeviceLogKind } from '../../domain/model.js';
import { fromJson } from '../rows.js';
import type { ApplicationLogCursor, ApplicationLogEntry, ApplicationLogQuery } from '../types.js';
import { fromJsonb, unescapeText } from './nul.js';

const RANK = { state: 0, command: 1, log: 2 } as const;

interface Row {
  source: 'log' | 'command' | 'state';
  time: number;
  nk: number;
  tk: string;
  device_id: string;
  kind: string | null;
  json1: string;
  json2: string | null;
  text1: string | null;
  text2: string | null;
  text3: string | null;
}

export class PostgresApplicationLog {
  constructor(private readonly pool: pg.Pool) {}

  async list(query: ApplicationLogQuery): Promise<ApplicationLogEntry[]> {
    const { applicationId, limit } = query;
    const start = query.start ?? Number.MIN_SAFE_INTEGER;
    const end = query.end ?? Number.MAX_SAFE_INTEGER;
    if (limit <= 0 || start > end || query.deviceIds?.length === 0 || query.kinds?.length === 0) return [];
    const wanted = query.kinds ? new Set<string>(query.kinds) : undefined;
    const logKinds = wanted ? [...wanted].filter((k) => k !== 'command' && k !== 'state') : null;

    // $1 application, $2 start, $3 end, $4 devices (null: all), $5 limit, $6 log kinds (null: all),
    // $7..$10 the cursor (time, rank, number key, text key; null: from the newest).
    const before = query.before;
    const params: unknown[] = [
      applicationId,
      start,
      end,
      query.deviceIds ?? null,
      limit,
      logKinds,
      before?.time ?? null,
      before ? RANK[before.source] : null,
      before && typeof before.key === 'number' ? before.key : 0,
      before && typeof before.key === 'string' ? before.key : '',
    ];
    const after = (position: string) =>
      `($7::bigint IS NULL OR ${position} < ($7::bigint, $8::int, $9::bigint, $10::text COLLATE "C"))`;
    const devices = (column: string) => `($4::text[] IS NULL OR ${column} = ANY($4::text[]))`;
    const parts: string[] = [];
    if (!logKinds || logKinds.length > 0) {
      parts.push(`(SELECT 'log' AS source, l.time, l.id AS nk, ''::text COLLATE "C" AS tk, l.device_id, l.kind,
          l.details AS json1, NULL::text AS json2, NULL::text AS text1, NULL::text AS text2, NULL::text AS text3
        FROM device_logs AS l
        WHERE l.application_id = $1 AND l.time BETWEEN $2 AND $3 AND ${devices('l.device_id')}
          AND ($6::text[] IS NULL OR l.kind = ANY($6::text[])) AND ${after('(l.time, 2, l.id, \'\'::text COLLATE "C")')}
        ORDER BY l.time DESC, l.id DESC LIMIT $5)`);
    }
    // Commands and states are read per device (a lateral subquery on each device's primary-key
    // range, newest first), so a page reads at most `limit` rows of each device, never a
    // device's whole history; the sargable upper time bound lets the index start at the cursor.
    const upTo = 'least($3::bigint, coalesce($7::bigint, $3::bigint))';
    if (!wanted || wanted.has('command')) {
      parts.push(`(SELECT 'command', c.time, c.seq, ''::text COLLATE "C", d.id, NULL::text, c.payload, c.routed_to,
          c.id::text, c.name, c.sent_by
        FROM devices AS d CROSS JOIN LATERAL (
          SELECT * FROM commands AS c
          WHERE c.device_id = d.id AND c.time >= $2 AND c.time <= ${upTo}
            AND ${after('(c.time, 1, c.seq, \'\'::text COLLATE "C")')}
          ORDER BY c.time DESC, c.seq DESC LIMIT $5) AS c
        WHERE d.application_id = $1 AND ${devices('d.id')}
        ORDER BY c.time DESC, c.seq DESC LIMIT $5)`);
    }
    if (!wanted || wanted.has('state')) {
      parts.push(`(SELECT 'state', s.time, 0::bigint, d.id, d.id, NULL::text, s.data::text, NULL::text,
          s.reported_by::text, NULL::text, NULL::text
        FROM devices AS d CROSS JOIN LATERAL (
          SELECT * FROM device_states AS s
          WHERE s.device_id = d.id AND s.time >= $2 AND s.time <= ${upTo}
            AND ${after('(s.time, 0, 0::bigint, s.device_id)')}
          ORDER BY s.time DESC LIMIT $5) AS s
        WHERE d.application_id = $1 AND ${devices('d.id')}
        ORDER BY s.time DESC, d.id DESC LIMIT $5)`);
    }
    const sql = `SELECT * FROM (${parts.join(' UNION ALL ')})
        AS merged (source, time, nk, tk, device_id, kind, json1, json2, text1, text2, text3)
      -- Repeats the log branch's kind filter, so that $6 has a type when that branch is left out.
      WHERE source <> 'log' OR $6::text[] IS NULL OR kind = ANY($6::text[])
      ORDER BY time DESC, CASE source WHEN 'log' THEN 2 WHEN 'command' THEN 1 ELSE 0 END DESC, nk DESC, tk DESC
      LIMIT $5`;
    const { rows } = await this.pool.query<Row>(sql, params);
    return rows.map((row) => entry(applicationId, row));
  }
}

function entry(applicationId: string, row: Row): ApplicationLogEntry {
  switch (row.source) {
    case 'log': {
      const cursor: ApplicationLogCursor = { time: row.time, source: 'log', key: row.nk };
      return {
        id: row.nk,
        kind: row.kind as DeviceLogKind,
        deviceId: row.device_id,
        applicationId,
        time: row.time,
        details: fromJson<Record<string, unknown>>(row.json1),
        cursor,
      };
    }
    case 'command':
      return {
        kind: 'command',
        deviceId: row.device_id,
        applicationId,
        time: row.time,
        details: {
          commandId: row.text1,
          name: unescapeText(row.text2 as string),
          payload: fromJson<unknown>(row.json1),
          routedTo: fromJson<string[]>(row.json2 as string),
          sentBy: row.text3,
        },
        cursor: { time: row.time, source: 'command', key: row.nk },
      };
    case 'state':
      return {
        kind: 'state',
        deviceId: row.device_id,
        applicationId,
        time: row.time,
        details: { data: fromJsonb<Record<string, unknown>>(row.json1), reportedBy: row.text1 },
        cursor: { time: row.time, source: 'state', key: row.device_id },
      };
  }
}
