// Replication backlog on a source database: changes recorded in Bucardo's delta tables that its
// track tables do not yet mark as applied for a target (docs/how-bucardo-behaves.md §11).
// Raw delta counts are not the backlog: delta rows stay until Bucardo's VAC purges them.
import type { Client } from './db.js';
import { trackTarget } from './bucardo/names.js';

export interface PendingTable {
  target: string;
  table: string;
  /** The Bucardo sync whose delta table this is (bucardo.syncs: one of the job's). */
  sync: string;
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

/**
 * SQL for the names of the syncs that replicate from this source to the target bound to <param>
 * (trackTarget of a job's dbgroup): all of a job's syncs, which share its dbgroup. For queries on the
 * primary that must cover all of a job's syncs without reading the metadata database.
 */
export function jobSyncsOnSource(param: string): string {
  return `(SELECT jdn.sync FROM bucardo.bucardo_delta_names jdn
            JOIN bucardo.bucardo_delta_targets jdt ON jdt.tablename = to_regclass(jdn.tablename)::oid
           WHERE jdt.target = ${param}::text)`;
}

/** The backlog per table and target; given a job's dbgroup (job.dbgroupName), only its target's. */
export async function pendingChanges(client: Client, dbgroup?: string): Promise<PendingTable[]> {
  if (!(await bucardoSchemaExists(client))) return [];
  // One pass per table gives both figures: under load the delta table holds millions of rows, and
  // status (or a benchmark sampling it) should not read them twice.
  const { rows } = await client.query<{
    target: string;
    table: string;
    sync: string;
    changes: string;
    oldest: Date | null;
  }>(
    `
    SELECT target, "table", sync, (xpath('/row/c/text()', doc))[1]::text::bigint AS changes,
           (xpath('/row/m/text()', doc))[1]::text::timestamptz AS oldest
      FROM (SELECT dt.target, dn.tablename AS "table", dn.sync, query_to_xml(format(
              'SELECT count(*) AS c, min(d.txntime) AS m FROM bucardo.%s d WHERE NOT EXISTS (SELECT 1 FROM bucardo.%s t WHERE t.txntime = d.txntime AND t.target = %L)',
              dn.deltaname, dn.trackname, dt.target), false, true, '') AS doc
              FROM bucardo.bucardo_delta_names dn
              JOIN bucardo.bucardo_delta_targets dt ON dt.tablename = to_regclass(dn.tablename)::oid
             WHERE $1::text IS NULL OR dt.target = $1) per_table
     ORDER BY 1, 2`,
    [dbgroup ? trackTarget(dbgroup) : null],
  );
  return rows.map((row) => ({
    target: row.target,
    table: row.table,
    sync: row.sync,
    changes: Number(row.changes),
    oldest: row.oldest,
  }));
}
