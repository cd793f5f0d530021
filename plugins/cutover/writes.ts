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

export function describeWrites(writes: TableWrites[]): string {
  return writes.slice(0, 5).map((w) => `${w.table}: ${w.changes}`).join(', ') + (writes.length > 5 ? `, and ${writes.length - 5} more table(s)` : '');
}
