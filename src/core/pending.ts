// Replication backlog on a source database: changes recorded in Bucardo's delta tables that its
// track tables do not yet mark as applied for a target (docs/how-bucardo-behaves.md §11).
// Raw delta counts are not the backlog: delta rows stay until Bucardo's VAC purges them.
import type { Client } from './db.js';

export interface PendingTable {
  target: string;
  table: string;
  changes: number;
  oldest: Date | null;
}

/** True once Bucardo has created its schema on this source (the first add sync does). */
export async function bucardoSchemaExists(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ present: boolean }>(
    "SELECT to_regclass('bucardo.bucardo_delta_names') IS NOT NULL AS present",
  );
  return rows[0]!.present;
}

export async function pendingChanges(client: Client, syncName?: string): Promise<PendingTable[]> {
  if (!(await bucardoSchemaExists(client))) return [];
  // One pass per table gives both figures: under load the delta table holds millions of rows, and
  // status (or a benchmark sampling it) should not read them twice.
  const { rows } = await client.query<{
    target: string;
    table: string;
    changes: string;
    oldest: Date | null;
  }>(
    `
    SELECT target, "table", (xpath('/row/c/text()', doc))[1]::text::bigint AS changes,
           (xpath('/row/m/text()', doc))[1]::text::timestamptz AS oldest
      FROM (SELECT dt.target, dn.tablename AS "table", query_to_xml(format(
              'SELECT count(*) AS c, min(d.txntime) AS m FROM bucardo.%s d WHERE NOT EXISTS (SELECT 1 FROM bucardo.%s t WHERE t.txntime = d.txntime AND t.target = %L)',
              dn.deltaname, dn.trackname, dt.target), false, true, '') AS doc
              FROM bucardo.bucardo_delta_names dn
              JOIN bucardo.bucardo_delta_targets dt ON dt.tablename = to_regclass(dn.tablename)::oid
             WHERE $1::text IS NULL OR dt.target = $1) per_table
     ORDER BY 1, 2`,
    [syncName ? `dbgroup ${syncName}` : null],
  );
  return rows.map((row) => ({
    target: row.target,
    table: row.table,
    changes: Number(row.changes),
    oldest: row.oldest,
  }));
}
