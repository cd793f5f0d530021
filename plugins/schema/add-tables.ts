// schema.add_tables: the tables in scope the job does not replicate yet (created on both sides outside
// the tool) added to its syncs, their rows copied online; the work is the core's (addTablesToJob).
import { addTablesToJob, type AddTablesResult } from '../../src/core/bucardo/add-tables.js';
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { listTriggers, jobTriggerNames } from '../../src/core/bucardo/triggers.js';
import { runningWayBack } from '../../src/core/bucardo/direction.js';
import { schemaDirection } from './direction.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { recordedTableSyncs } from '../../src/core/bucardo/syncs.js';

export type AddTablesData = AddTablesResult;

export async function addTables(command: CommandContext): Promise<CommandOutcome<AddTablesData>> {
  // While the way back runs: tables on B added to its sync, their rows copied B→A (direction.ts).
  const { ctx, wayBack } = await schemaDirection(command, 'schema.add_tables');
  const only = ctx.options.string('table');
  const result = await addTablesToJob(ctx, 'schema.add_tables', {
    ...(only ? { only: only.split(',') } : {}),
    // The way back carries no sequence: cutover.rollback sets A's past B's itself.
    ...(wayBack ? { recordsOf: wayBack.switched, sequences: false } : {}),
  });
  if (result.waiting.length)
    return {
      ok: false,
      data: result,
      message: `${result.waiting.length} new table(s) could not get their triggers: another session held their lock through every round (listed above). Nothing was copied yet; run schema.add_tables again once the locks are released: it continues this batch.`,
    };
  const blocked = result.blocked.length
    ? ` ${result.blocked.length} table(s) could not be added (listed above).`
    : '';
  const sequences = result.sequences.length
    ? ` Recorded ${result.sequences.length} new sequence(s): ${result.sequences.join(', ')}.`
    : '';
  if (result.added.length === 0 && result.sequences.length)
    return {
      ok: result.blocked.length === 0,
      data: result,
      message: `No new table to add.${sequences}${blocked}`,
    };
  if (result.added.length === 0)
    return {
      ok: result.blocked.length === 0,
      data: result,
      message: `Nothing to add: every table in scope is in the job's syncs.${blocked}`,
    };
  return {
    ok: result.blocked.length === 0,
    data: result,
    message: `Added ${result.added.length} table(s) to ${syncNames(ctx.job).join(', ')}: ${result.added.join(', ')}.${sequences}${blocked}`,
  };
}

/** Each added table is in one of the job's relgroups and carries its triggers. */
export async function validateAddTables(command: CommandContext): Promise<Check[]> {
  const wayBack = await runningWayBack(command.job, command.db);
  const ctx = wayBack ? command.forJob(wayBack.reverse) : command;
  const { job } = ctx;
  const recorded = await recordedTableSyncs(await ctx.db.metadata(), job);
  const triggers = await listTriggers(await ctx.db.primary(), jobTriggerNames(job));
  const withDelta = new Set(
    triggers.filter((t) => t.trigger === 'bucardo_delta').map((t) => `${t.schema}.${t.table}`),
  );
  const lacking = [...recorded.keys()].filter((t) => !withDelta.has(t));
  return [
    {
      name: `every table of the job's syncs carries Bucardo's change trigger (${recorded.size} tables)`,
      pass: lacking.length === 0,
      ...(lacking.length ? { detail: lacking.slice(0, 5).join(', ') } : {}),
    },
  ];
}
