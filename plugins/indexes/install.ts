// indexes.install: the table in the metadata database that records dropped index definitions.
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import { installRecords, RECORD_TABLE, recordsInstalled, withRecords } from './records.js';

export async function install(ctx: CommandContext): Promise<CommandOutcome> {
  const { job, activity } = ctx;
  if (!(await metadataDatabaseExists(ctx.db))) {
    throw new OperatorError(
      `The metadata database ${job.metadataDb} does not exist yet, and indexes.install keeps its records there. Run bucardo.install first, then indexes.install.`,
    );
  }
  const created = await installRecords(job, activity);
  return {
    message: created
      ? `Created ${RECORD_TABLE} in ${job.metadataDb}: indexes.drop records every definition there before it drops anything.`
      : `${RECORD_TABLE} already exists in ${job.metadataDb}.`,
  };
}

export async function validateInstall(ctx: CommandContext): Promise<Check[]> {
  const present = await withRecords(ctx.db, undefined, recordsInstalled);
  return [{ name: `${RECORD_TABLE} exists in ${ctx.job.metadataDb}`, pass: present }];
}
