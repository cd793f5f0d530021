// Whether writes really stopped, read from Bucardo's own change capture on the primary: every
// change to a replicated table leaves a delta row stamped with its transaction's start time
// (txntime), and a TRUNCATE leaves a row in bucardo_truncate_trigger. These are the facts
// cutover.finish relies on between the operator's confirmation and the triggers' removal.
import type { Client } from '../../src/core/db.js';
import { bucardoSchemaExists, pendingChanges } from '../../src/core/pending.js';

export interface TableWrites { table: string; changes: number }

/** Changes to this sync's tables by transactions that started at or after `since` (primary's clock). */
export async function writesSince(client: Client, syncName: string, since: string): Promise<TableWrites[]> {
  if (!(await bucardoSchemaExists(client))) return [];
  const { rows } = await client.query<{ table: string; changes: string }>(`
    SELECT dn.tablename AS table,
      (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM bucardo.%s WHERE txntime >= %L::timestamptz', dn.deltaname, $2::text), false, true, '')))[1]::text::bigint AS changes
      FROM bucardo.bucardo_delta_names dn WHERE dn.sync = $1 ORDER BY 1`, [syncName, since]);
  const result = rows.map((row) => ({ table: row.table, changes: Number(row.changes) })).filter((row) => row.changes > 0);
  const truncates = await truncations(client, 'sync = $1 AND cdate >= $2::timestamptz', [syncName, since]);
  if (truncates > 0) result.push({ table: '(TRUNCATE)', changes: truncates });
  return result;
}

/** Changes captured and not yet applied to the secondary, including TRUNCATEs. */
export async function backlog(client: Client, syncName: string): Promise<number> {
  if (!(await bucardoSchemaExists(client))) return 0;
  const pending = (await pendingChanges(client, syncName)).reduce((sum, p) => sum + p.changes, 0);
  return pending + await truncations(client, 'sync = $1 AND replicated IS NULL', [syncName]);
}

async function truncations(client: Client, condition: string, values: unknown[]): Promise<number> {
  const { rows: present } = await client.query<{ present: boolean }>("SELECT to_regclass('bucardo.bucardo_truncate_trigger') IS NOT NULL AS present");
  if (!present[0]!.present) return 0;
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM bucardo.bucardo_truncate_trigger WHERE ${condition}`, values);
  return Number(rows[0]!.n);
}

export interface OpenWriter { pid: number; user: string; application: string; since: string; tables: string[] }

/**
 * Sessions whose open transaction holds a write lock (ROW EXCLUSIVE or stronger) on one of these
 * tables. Such a transaction may have begun before the operator's confirmation, so its changes carry
 * an older txntime; if it commits after replication stops they never reach the secondary.
 */
export async function openWriters(client: Client, tables: { schema: string; name: string }[]): Promise<OpenWriter[]> {
  if (tables.length === 0) return [];
  const { rows } = await client.query<{ pid: number; user: string | null; application: string; since: string | null; tables: string[] }>(`
    SELECT a.pid, a.usename AS user, a.application_name AS application, a.xact_start::text AS since,
           array_agg(DISTINCT format('%s.%s', n.nspname, c.relname) ORDER BY format('%s.%s', n.nspname, c.relname)) AS tables
      FROM pg_locks l
      JOIN pg_stat_activity a ON a.pid = l.pid
      JOIN pg_class c ON c.oid = l.relation
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest($1::text[], $2::text[]) AS scope(schema, name) ON scope.schema = n.nspname AND scope.name = c.relname
     WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
       AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
     GROUP BY 1, 2, 3, 4 ORDER BY 1`, [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  return rows.map((row) => ({ pid: row.pid, user: row.user ?? '?', application: row.application, since: row.since ?? '?', tables: row.tables }));
}

export function describeWriters(writers: OpenWriter[]): string {
  return writers.slice(0, 5).map((w) => `pid ${w.pid} (${w.user}, ${w.application || 'no application name'}, transaction open since ${w.since}) on ${w.tables.slice(0, 3).join(', ')}${w.tables.length > 3 ? ', ...' : ''}`).join('; ')
    + (writers.length > 5 ? `; and ${writers.length - 5} more session(s)` : '');
}

export function describeWrites(writes: TableWrites[]): string {
  return writes.slice(0, 5).map((w) => `${w.table}: ${w.changes}`).join(', ') + (writes.length > 5 ? `, and ${writes.length - 5} more table(s)` : '');
}
