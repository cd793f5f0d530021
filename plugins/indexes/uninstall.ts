// indexes.uninstall: removes this job's records of dropped index definitions, and the record table
// itself once no job has any left. Refuses while an index it dropped is not rebuilt: the record is
// the only copy of that index's definition.
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import type { Client } from '../../src/core/db.js';
import { withLockTimeout } from '../../src/core/ddl.js';
import { targetKey, type Job } from '../../src/core/job.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import { RECORD_SCHEMA, RECORD_TABLE, recordsInstalled, withRecords } from './records.js';

export interface UninstallData {
  removedRecords: number;
  droppedTable: boolean;
  otherJobs: string[];
}

export async function uninstall(ctx: CommandContext): Promise<CommandOutcome<UninstallData>> {
  const { job, activity } = ctx;
  const nothing = { removedRecords: 0, droppedTable: false, otherJobs: [] };
  if (!(await metadataDatabaseExists(ctx.db))) {
    return {
      data: nothing,
      message: `Nothing to remove: the metadata database ${job.metadataDb} does not exist.`,
    };
  }
  // A session of its own: the lock timeout is a transaction's.
  return withRecords(job, activity, async (client) => {
    try {
      // Bounded: an indexes.drop or indexes.recreate of some job may be writing to the table.
      const outcome = await withLockTimeout(
        client,
        { timeoutMs: job.config.bucardo.lockTimeoutMs, activity },
        () => removeRecords(client, job),
      );
      if (outcome.done) return outcome.value;
      throw new OperatorError(
        `${RECORD_TABLE} in ${job.metadataDb} stayed locked for longer than bucardo.lock_timeout (${job.config.bucardo.lockTimeoutMs} ms): an indexes.drop or indexes.recreate of some job is probably writing to it. Nothing was removed; run indexes.uninstall again when it has finished.`,
      );
    } catch (error) {
      // Never installed, or dropped already (by an earlier run, or a concurrent one while we waited for the lock).
      if ((error as { code?: string }).code === '42P01')
        return {
          data: nothing,
          message: `Nothing to remove: ${RECORD_TABLE} does not exist in ${job.metadataDb}.`,
        };
      throw error;
    }
  });
}

async function removeRecords(client: Client, job: Job): Promise<CommandOutcome<UninstallData>> {
  // Locked so that an indexes.drop of this job cannot record a definition between the check and the delete.
  await client.query(`LOCK TABLE ${RECORD_TABLE} IN SHARE ROW EXCLUSIVE MODE`);
  const unrebuilt = await client.query<{ schema_name: string; index_name: string }>(
    `SELECT schema_name, index_name FROM ${RECORD_TABLE} WHERE job = $1 AND recreated_at IS NULL ORDER BY 1, 2`,
    [targetKey(job)],
  );
  if (unrebuilt.rows.length > 0) {
    const names = unrebuilt.rows.map((r) => `${r.schema_name}.${r.index_name}`);
    throw new OperatorError(
      `${names.length} index(es) recorded by indexes.drop for ${job.name} are not marked rebuilt (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}); their definitions may exist only in ${RECORD_TABLE}. Run indexes.recreate first (it also marks indexes that are still present), then indexes.uninstall again. Nothing was removed.`,
    );
  }
  const removed = await client.query(`DELETE FROM ${RECORD_TABLE} WHERE job = $1`, [targetKey(job)]);
  const others = await client.query<{ job: string }>(`SELECT DISTINCT job FROM ${RECORD_TABLE} ORDER BY 1`);
  const otherJobs = others.rows.map((r) => r.job);
  const removedRecords = removed.rowCount ?? 0;
  if (otherJobs.length > 0) {
    return {
      data: { removedRecords, droppedTable: false, otherJobs },
      message: `Removed ${removedRecords} rebuilt index record(s) of ${job.name}; ${RECORD_TABLE} stays for ${otherJobs.join(', ')}.`,
    };
  }
  await client.query(`DROP TABLE ${RECORD_TABLE}`);
  const schemaNote = await dropSchemaIfPossible(client);
  return {
    data: { removedRecords, droppedTable: true, otherJobs },
    message: `Removed ${removedRecords} rebuilt index record(s) of ${job.name}; no job has records left, so ${RECORD_TABLE} is dropped${schemaNote}.`,
  };
}

/**
 * The schema goes too unless something else lives in it or another role owns it (the original tool
 * used the same name, and indexes.install adopts an existing schema): then it stays, and says why.
 */
async function dropSchemaIfPossible(client: Client): Promise<string> {
  await client.query('SAVEPOINT drop_schema');
  try {
    // Not CASCADE: whatever else is in the schema is not ours to drop.
    await client.query(`DROP SCHEMA ${RECORD_SCHEMA}`);
    await client.query('RELEASE SAVEPOINT drop_schema');
    return ` with its schema ${RECORD_SCHEMA}`;
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT drop_schema');
    return `; the schema ${RECORD_SCHEMA} stays (${errorMessage(error)})`;
  }
}

export async function validateUninstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  if (!(await metadataDatabaseExists(ctx.db)))
    return [{ name: `no index records of ${job.name} left`, pass: true }];
  const left = await withRecords(ctx.db, undefined, async (client) => {
    if (!(await recordsInstalled(client))) return 0;
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${RECORD_TABLE} WHERE job = $1`,
      [targetKey(job)],
    );
    return Number(rows[0]!.n);
  });
  return [
    {
      name: `no index records of ${job.name} left in ${job.metadataDb}`,
      pass: left === 0,
      detail: left ? `${left} left` : undefined,
    },
  ];
}
