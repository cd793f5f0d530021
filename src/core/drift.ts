// Schema drift: what the job's syncs no longer carry because the schema moved on while replication ran
// (docs/how-bucardo-behaves.md §23): a table in scope that no sync holds (created since install), a
// table of a sync that is gone from the primary, and a table whose columns differ between the sides
// (Bucardo's runs of it fail, or the daemon refuses the sync when it loads it). bucardo.status shows
// it as a state of its own and cutover.check fails on it; the schema plugin's schema.diff lists every
// difference with its fix.
import { unreplicatedTables } from './bucardo/add-tables.js';
import { recordedTableSyncs } from './bucardo/syncs.js';
import type { Client } from './db.js';
import type { Job } from './job.js';
import { tableColumns } from './objects.js';

export interface DriftItem {
  table: string;
  problem: string;
  /** The command or step that removes it. */
  fix: string;
}

const split = (table: string) => ({
  schema: table.slice(0, table.indexOf('.')),
  name: table.slice(table.indexOf('.') + 1),
});

export async function replicationDrift(
  job: Job,
  clients: { primary: Client; secondary: Client; metadata: Client },
): Promise<DriftItem[]> {
  const drift: DriftItem[] = [];
  // Without sizes: reading a table's size takes a lock, and status must not wait on an ALTER or LOCK.
  const { missing } = await unreplicatedTables(job, clients, { sizes: false });
  for (const table of missing)
    drift.push({
      table: table.table,
      problem: `in scope${table.partitionOf ? ` (a new partition of ${table.partitionOf})` : ''} but in none of the job's syncs: its changes are not replicated`,
      fix: table.blocked
        ? `cannot be added as it is: ${table.blocked}`
        : 'schema.add_tables (the schema plugin)',
    });
  const recorded = [...(await recordedTableSyncs(clients.metadata, job)).keys()].map(split);
  const [primary, secondary] = await Promise.all([
    tableColumns(clients.primary, recorded),
    tableColumns(clients.secondary, recorded),
  ]);
  for (const { schema, name } of recorded) {
    const key = `${schema}.${name}`;
    const p = primary.get(key);
    const s = secondary.get(key);
    if (!p) {
      drift.push({
        table: key,
        problem: "in the job's sync but gone from the primary: the sync's runs fail on it",
        fix: 'remove it from the sync: schema.apply with DROP TABLE IF EXISTS does that first',
      });
      continue;
    }
    // Order does not matter: Bucardo names the columns it copies.
    if (JSON.stringify([...p].sort(byName)) !== JSON.stringify([...(s ?? [])].sort(byName)))
      drift.push({
        table: key,
        problem: s
          ? 'its columns differ between the primary and the secondary: Bucardo copies every column by name, so its runs of this table fail'
          : 'missing on the secondary: the sync fails on it',
        fix: 'schema.diff names the difference; schema.apply changes both sides in the safe order, then reloads the daemon',
      });
  }
  return drift;
}

const byName = (x: { name: string }, y: { name: string }) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
