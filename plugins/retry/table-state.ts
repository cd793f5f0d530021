// Where each table in scope stands with this job's triggers, read from pg_trigger on the primary:
// the ground truth every round starts from (a rerun picks up exactly where the last one stopped).
import {
  expectedTriggers,
  groupByTable,
  jobTriggerNames,
  listTriggers,
} from '../../src/core/bucardo/triggers.js';
import type { Client } from '../../src/core/db.js';
import type { Job } from '../../src/core/job.js';
import { displayName, findReplicationObjects } from '../../src/core/objects.js';
import { syncCount, tablesBySync } from '../../src/core/bucardo/syncs.js';

export interface TableRef {
  key: string;
  schema: string;
  table: string;
  /** The job's sync the table belongs to (bucardo.syncs). */
  sync?: string;
}

/** A table whose triggers exist but fire in the wrong mode (ENABLE ALWAYS on a cascade middle hop). */
export interface ModeChange extends TableRef {
  triggers: { trigger: string; state: string }[];
}

export interface TriggerStates {
  tables: TableRef[];
  ready: TableRef[];
  /** Missing a trigger, or carrying one the sync no longer wants (a kick trigger under asynchronous kicking). */
  needTriggers: TableRef[];
  needMode: ModeChange[];
}

export async function triggerStates(client: Client, job: Job): Promise<TriggerStates> {
  // With several syncs (bucardo.syncs) a table's kick and note-truncation triggers are its own sync's.
  const syncOf = new Map<string, string>();
  if (syncCount(job) > 1)
    for (const [sync, tables] of await tablesBySync(job)) for (const t of tables) syncOf.set(t, sync);
  const { tables: relations } = await findReplicationObjects(client, job.config.bucardo.replicationObjects);
  const present = groupByTable(await listTriggers(client, jobTriggerNames(job)));
  const states: TriggerStates = { tables: [], ready: [], needTriggers: [], needMode: [] };
  for (const relation of relations) {
    const key = displayName(relation);
    const ref = { key, schema: relation.schema, table: relation.name, sync: syncOf.get(key) ?? job.syncName };
    states.tables.push(ref);
    const rows = present.get(ref.key) ?? [];
    const expected = expectedTriggers(job, syncOf.get(ref.key) ?? job.syncName);
    const missing = [...expected.keys()].some((name) => !rows.some((row) => row.trigger === name));
    const unexpected = rows.some((row) => !expected.has(row.trigger));
    const wrongMode = rows.filter(
      (row) => expected.has(row.trigger) && expected.get(row.trigger) !== row.enabled,
    );
    if (missing || unexpected) states.needTriggers.push(ref);
    else if (wrongMode.length)
      states.needMode.push({
        ...ref,
        triggers: wrongMode.map((row) => ({ trigger: row.trigger, state: expected.get(row.trigger)! })),
      });
    else states.ready.push(ref);
  }
  return states;
}
