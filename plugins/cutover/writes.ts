// Whether writes really stopped, read from Bucardo's own change capture on the primary: every
// change to a replicated table leaves a delta row stamped with a time (txntime) no earlier than its
// transaction's start (docs/how-bucardo-behaves.md §19), and a TRUNCATE leaves a row in
// bucardo_truncate_trigger. These are the facts cutover.finish relies on between the operator's
// confirmation and the triggers' removal.
import type { Client } from '../../src/core/db.js';
import { trackTarget } from '../../src/core/bucardo/names.js';
import { bucardoSchemaExists, jobSyncsOnSource, pendingChanges } from '../../src/core/pending.js';

export interface TableWrites {
  table: string;
  changes: number;
}

/**
 * Changes to the tables of the job's syncs (those replicating to its dbgroup) stamped at or after
 * `since` (primary's clock): those of every transaction started since then, and of any that wrote since.
 */
export async function writesSince(client: Client, dbgroup: string, since: string): Promise<TableWrites[]> {
  if (!(await bucardoSchemaExists(client))) return [];
  const { rows } = await client.query<{ table: string; changes: string }>(
    `
    SELECT dn.tablename AS table,
      (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM bucardo.%s WHERE txntime >= %L::timestamptz', dn.deltaname, $2::text), false, true, '')))[1]::text::bigint AS changes
      FROM bucardo.bucardo_delta_names dn WHERE dn.sync IN ${jobSyncsOnSource('$1')} ORDER BY 1`,
    [trackTarget(dbgroup), since],
  );
  const result = rows
    .map((row) => ({ table: row.table, changes: Number(row.changes) }))
    .filter((row) => row.changes > 0);
  const truncates = await truncations(
    client,
    `sync IN ${jobSyncsOnSource('$1')} AND cdate >= $2::timestamptz`,
    [trackTarget(dbgroup), since],
  );
  if (truncates > 0) result.push({ table: '(TRUNCATE)', changes: truncates });
  return result;
}

/** Changes captured and not yet applied to the secondary, including TRUNCATEs. */
export async function backlog(client: Client, dbgroup: string): Promise<number> {
  if (!(await bucardoSchemaExists(client))) return 0;
  const pending = (await pendingChanges(client, dbgroup)).reduce((sum, p) => sum + p.changes, 0);
  return (
    pending +
    (await truncations(client, `sync IN ${jobSyncsOnSource('$1')} AND replicated IS NULL`, [
      trackTarget(dbgroup),
    ]))
  );
}

async function truncations(client: Client, condition: string, values: unknown[]): Promise<number> {
  const { rows: present } = await client.query<{ present: boolean }>(
    "SELECT to_regclass('bucardo.bucardo_truncate_trigger') IS NOT NULL AS present",
  );
  if (!present[0]!.present) return 0;
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM bucardo.bucardo_truncate_trigger WHERE ${condition}`,
    values,
  );
  return Number(rows[0]!.n);
}

export interface OpenWriter {
  pid: number | null;
  user: string;
  application: string;
  since: string;
  tables: string[];
  prepared?: string;
}

/**
 * Transactions in this database holding or awaiting a write lock (ROW EXCLUSIVE or stronger) on one
 * of these tables: client sessions (not an aborted one, which can only roll back) and prepared
 * transactions, which have no session. Such a transaction may have begun before the operator's
 * confirmation, so its changes carry an older txntime; if it commits after replication stops they
 * never reach the secondary.
 */
export async function openWriters(
  client: Client,
  tables: { schema: string; name: string }[],
): Promise<OpenWriter[]> {
  if (tables.length === 0) return [];
  const { rows } = await client.query<{
    pid: number | null;
    user: string | null;
    application: string | null;
    since: string | null;
    prepared: string | null;
    tables: string[];
  }>(
    `
    WITH scope AS (
      SELECT c.oid, format('%s.%s', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN unnest($1::text[], $2::text[]) AS t(schema, name) ON t.schema = n.nspname AND t.name = c.relname
    ), writes AS (
      SELECT l.pid, l.virtualtransaction, scope.name
        FROM pg_locks l JOIN scope ON scope.oid = l.relation
       WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
         AND l.pid IS DISTINCT FROM pg_backend_pid()
    )
    SELECT a.pid, a.usename AS user, a.application_name AS application, a.xact_start::text AS since, NULL::text AS prepared,
           array_agg(DISTINCT w.name ORDER BY w.name) AS tables
      FROM writes w JOIN pg_stat_activity a ON a.pid = w.pid
     WHERE a.backend_type = 'client backend' AND a.state IS DISTINCT FROM 'idle in transaction (aborted)'
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT NULL::int, p.owner, NULL::text, p.prepared::text, p.gid, array_agg(DISTINCT w.name ORDER BY w.name)
      -- A prepared transaction's locks have no pid; its transactionid lock ties them to pg_prepared_xacts.
      FROM writes w
      JOIN pg_locks x ON x.locktype = 'transactionid' AND x.pid IS NULL AND x.virtualtransaction = w.virtualtransaction
      JOIN pg_prepared_xacts p ON p.transaction = x.transactionid
     WHERE w.pid IS NULL
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1 NULLS LAST, 5`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows.map((row) => ({
    pid: row.pid,
    user: row.user ?? '?',
    application: row.application ?? '',
    since: row.since ?? '?',
    tables: row.tables,
    ...(row.prepared !== null ? { prepared: row.prepared } : {}),
  }));
}

export function describeWriters(writers: OpenWriter[]): string {
  const who = (w: OpenWriter): string =>
    w.prepared !== undefined
      ? `prepared transaction '${w.prepared}' (${w.user}, prepared at ${w.since})`
      : `pid ${w.pid} (${w.user}, ${w.application || 'no application name'}, transaction open since ${w.since})`;
  return (
    writers
      .slice(0, 5)
      .map((w) => `${who(w)} on ${w.tables.slice(0, 3).join(', ')}${w.tables.length > 3 ? ', ...' : ''}`)
      .join('; ') + (writers.length > 5 ? `; and ${writers.length - 5} more` : '')
  );
}

export function describeWrites(writes: TableWrites[]): string {
  return (
    writes
      .slice(0, 5)
      .map((w) => `${w.table}: ${w.changes}`)
      .join(', ') + (writes.length > 5 ? `, and ${writes.length - 5} more table(s)` : '')
  );
}
