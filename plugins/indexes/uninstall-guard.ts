// Before bucardo.uninstall (a hook declared in index.ts): the metadata database it drops holds the
// only copy of the definitions of the indexes indexes.drop dropped on the secondary. Refusing before
// the uninstall starts leaves replication exactly as it was.
import { targetKey, targetViews } from '../../src/core/job.js';
import { OperatorError } from '../../src/core/errors.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import { RECORD_TABLE, recordsInstalled, withRecords } from './records.js';

export async function refuseWithUnrebuiltIndexes(ctx: CommandContext): Promise<void> {
  // Sessions of its own, closed before bucardo.uninstall runs: a shared session on the metadata
  // database would still be open when bucardo.uninstall drops it, and the drop would fail.
  const { job, activity } = ctx;
  if (!(await metadataDatabaseExists(job, activity))) return;
  const names = await withRecords(job, activity, async (client) => {
    if (!(await recordsInstalled(client))) return [];
    // Every target's (fan-out: each keeps its own rows, keyed <job>:<target>).
    const { rows } = await client.query<{ name: string }>(
      `SELECT schema_name || '.' || index_name AS name FROM ${RECORD_TABLE}
        WHERE job = ANY($1) AND recreated_at IS NULL ORDER BY 1`,
      [targetViews(job).map(targetKey)],
    );
    return rows.map((row) => row.name);
  });
  if (names.length > 0) {
    const listed = `${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}`;
    throw new OperatorError(
      `${names.length} index(es) were dropped on the secondary by indexes.drop and not rebuilt ` +
        `(${listed}); their definitions live in the metadata database ${job.metadataDb}, which bucardo.uninstall drops. ` +
        'Run indexes.recreate first, then bucardo.uninstall again. Nothing was changed.',
    );
  }
}
