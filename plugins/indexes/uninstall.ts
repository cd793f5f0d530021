// indexes.uninstall: removes this job's records of dropped index definitions, and the record table
// itself once no job has any left. Refuses while an index it dropped is not rebuilt: the record is
// the only copy of that index's definition.
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { withTransaction } from '../../src/core/db.js';
import { metadataDatabaseExists } from '../bucardo/metadata.js';
import { RECORD_SCHEMA, RECORD_TABLE, recordsInstalled, withRecords } from './records.js';

export interface UninstallData { removedRecords: number; droppedTable: boolean; otherJobs: string[] }

export async function uninstall(ctx: CommandContext): Promise<CommandOutcome<UninstallData>> {
  const { job, activity } = ctx;
  const nothing = { removedRecords: 0, droppedTable: false, otherJobs: [] };
  if (!(await metadataDatabaseExists(job, activity))) {
    return { data: nothing, message: `Nothing to remove: the metadata database ${job.metadataDb} does not exist.` };
  }
  return withRecords(job, activity, async (client) => {
    if (!(await recordsInstalled(client))) return { data: nothing, message: `Nothing to remove: ${RECORD_TABLE} does not exist in ${job.metadataDb}.` };
    return withTransaction(client, async () => {
      // Locked so that an indexes.drop of this job cannot record a definition between the check and the delete.
      await client.query(`LOCK TABLE ${RECORD_TABLE} IN SHARE ROW EXCLUSIVE MODE`);
      const unrebuilt = await client.query<{ schema_name: string; index_name: string }>(
        `SELECT schema_name, index_name FROM ${RECORD_TABLE} WHERE job = $1 AND recreated_at IS NULL ORDER BY 1, 2`, [job.name]);
      if (unrebuilt.rows.length > 0) {
        const names = unrebuilt.rows.map((r) => `${r.schema_name}.${r.index_name}`);
        throw new OperatorError(`${names.length} index(es) recorded by indexes.drop for ${job.name} are not rebuilt (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}); their definitions exist only in ${RECORD_TABLE}. Run indexes.recreate first, then indexes.uninstall again. Nothing was removed.`);
      }
      const removed = await client.query(`DELETE FROM ${RECORD_TABLE} WHERE job = $1`, [job.name]);
      const others = await client.query<{ job: string }>(`SELECT DISTINCT job FROM ${RECORD_TABLE} ORDER BY 1`);
      const otherJobs = others.rows.map((r) => r.job);
      let droppedTable = false;
      if (otherJobs.length === 0) {
        await client.query(`DROP TABLE ${RECORD_TABLE}`);
        // Not CASCADE: anything else someone put in the schema stays, and so does the schema.
        const leftovers = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1', [RECORD_SCHEMA]);
        if (Number(leftovers.rows[0]!.n) === 0) await client.query(`DROP SCHEMA IF EXISTS ${RECORD_SCHEMA}`);
        droppedTable = true;
      }
      const removedRecords = removed.rowCount ?? 0;
      const tail = droppedTable ? `; no job has records left, so ${RECORD_TABLE} is dropped` : `; ${RECORD_TABLE} stays for ${otherJobs.join(', ')}`;
      return { data: { removedRecords, droppedTable, otherJobs }, message: `Removed ${removedRecords} rebuilt index record(s) of ${job.name}${tail}.` };
    });
  });
}

export async function validateUninstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  if (!(await metadataDatabaseExists(job, ctx.activity))) return [{ name: `no index records of ${job.name} left`, pass: true }];
  const left = await withRecords(job, ctx.activity, async (client) => {
    if (!(await recordsInstalled(client))) return 0;
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${RECORD_TABLE} WHERE job = $1`, [job.name]);
    return Number(rows[0]!.n);
  });
  return [{ name: `no index records of ${job.name} left in ${job.metadataDb}`, pass: left === 0, detail: left ? `${left} left` : undefined }];
}
