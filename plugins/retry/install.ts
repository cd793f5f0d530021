// retry.install and retry.uninstall: put the per-table validate_sync in place in the metadata
// database, and put Bucardo's own back exactly. Both are one transaction each: a failure leaves the
// function as it was.
import { existsSync, readFileSync } from 'node:fs';
import { metadataDatabaseExists, withMetadata } from '../../src/core/bucardo/metadata.js';
import { type Client, withTransaction } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import {
  forgetSaved,
  installedBody,
  installedDefinition,
  isPatched,
  lockFunctionStore,
  packagedValidateSyncBody,
  patchValidateSync,
  SAVED_SCHEMA,
  savedOriginal,
  savedSchemaExists,
  saveOriginal,
  VALIDATE_SYNC,
} from './validate-sync.js';

const BUCARDO_SCHEMA_FILE = '/usr/share/bucardo/bucardo.schema';

export interface RetryInstallData {
  steps: string[];
}

async function requireMetadata(job: Job, ctx: CommandContext): Promise<void> {
  if (!(await metadataDatabaseExists(ctx.db, ctx.activity))) {
    throw new OperatorError(
      `Bucardo is not installed for ${job.name}: the metadata database ${job.metadataDb} does not exist, so there is no validate_sync to prepare. Run bucardo.install first, then retry.install.`,
    );
  }
}

/** Executes a function definition and proves the database now holds exactly that text. */
async function replaceDefinition(client: Client, definition: string, what: string): Promise<void> {
  await client.query(definition);
  const now = await installedDefinition(client);
  if (now !== definition) {
    throw new OperatorError(
      `After writing ${what}, ${VALIDATE_SYNC} reads back differently from what was written; the change was rolled back and nothing was changed. Report this with your PostgreSQL and Bucardo versions.`,
    );
  }
}

export async function install(ctx: CommandContext): Promise<CommandOutcome<RetryInstallData>> {
  const { job } = ctx;
  await requireMetadata(job, ctx);
  ctx.progress(`preparing the per-table validate_sync in ${job.metadataDb}`);
  // A session of its own: the function is read and replaced in one locked transaction.
  const steps = await withMetadata(
    job,
    (client) =>
      withTransaction(client, async () => {
        await lockFunctionStore(client);
        const current = await installedDefinition(client);
        const saved = await savedOriginal(client);
        if (isPatched(current)) {
          if (saved !== undefined && patchValidateSync(saved) === current)
            return [
              `${VALIDATE_SYNC} in ${job.metadataDb} is already the per-table variant; Bucardo's original is saved in ${SAVED_SCHEMA}`,
            ];
          throw new OperatorError(
            `${VALIDATE_SYNC} in ${job.metadataDb} carries the retry patch, but Bucardo's original is ${saved === undefined ? 'not saved' : 'saved in a form that does not match it'} (schema ${SAVED_SCHEMA}), so it could not be restored exactly. Nothing was changed. Recreate the metadata database (bucardo.uninstall, bucardo.install), then run retry.install.`,
          );
        }
        const patched = patchValidateSync(current);
        await saveOriginal(client, current);
        await replaceDefinition(client, patched, 'the per-table variant');
        return [
          `saved Bucardo's ${VALIDATE_SYNC} in ${job.metadataDb}.${SAVED_SCHEMA}`,
          "installed the per-table variant (inert unless retry.add_triggers asks for it: the daemon and bucardo.add_triggers keep Bucardo's behaviour)",
        ];
      }),
    ctx.activity,
  );
  return {
    data: { steps },
    message: `retry is ready for ${job.name}: retry.add_triggers and retry.drop_triggers can run.`,
  };
}

export async function validateInstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  if (!(await metadataDatabaseExists(ctx.db)))
    return [{ name: `metadata database ${job.metadataDb} exists`, pass: false }];
  return withMetadata(ctx.db, async (client) => {
    const current = await installedDefinition(client);
    const saved = await savedOriginal(client);
    return [
      { name: `${VALIDATE_SYNC} in ${job.metadataDb} is the per-table variant`, pass: isPatched(current) },
      {
        name: "Bucardo's original is saved, and the installed function is exactly it plus the patch (so uninstall restores it exactly)",
        pass: saved !== undefined && !isPatched(saved) && patchValidateSync(saved) === current,
        ...(saved === undefined ? { detail: `no saved original in ${SAVED_SCHEMA}` } : {}),
      },
    ];
  });
}

export async function uninstall(ctx: CommandContext): Promise<CommandOutcome<RetryInstallData>> {
  const { job } = ctx;
  if (!(await metadataDatabaseExists(ctx.db, ctx.activity))) {
    return {
      data: { steps: [] },
      message: `Nothing to undo: the metadata database ${job.metadataDb} does not exist (bucardo.uninstall removed it, and the patch with it).`,
    };
  }
  ctx.progress(`restoring Bucardo's validate_sync in ${job.metadataDb}`);
  // A session of its own: the function is read and replaced in one locked transaction.
  const steps = await withMetadata(
    job,
    (client) =>
      withTransaction(client, async () => {
        await lockFunctionStore(client);
        const current = await installedDefinition(client);
        const saved = await savedOriginal(client);
        const done: string[] = [];
        if (isPatched(current)) {
          if (saved === undefined || isPatched(saved)) {
            throw new OperatorError(
              `${VALIDATE_SYNC} in ${job.metadataDb} carries the retry patch but Bucardo's original is not saved (schema ${SAVED_SCHEMA}), so it cannot be restored exactly. Nothing was changed. Recreate the metadata database (bucardo.uninstall, bucardo.install) to get Bucardo's own function back.`,
            );
          }
          await replaceDefinition(client, saved, "Bucardo's original");
          done.push(`restored Bucardo's ${VALIDATE_SYNC} exactly as it was saved`);
        } else if (saved !== undefined && saved !== current) {
          // Something else (bucardo upgrade) replaced the function since retry.install: leave it alone.
          done.push(
            `${VALIDATE_SYNC} had already been replaced by something else since retry.install; left it as it is`,
          );
        } else {
          done.push(`${VALIDATE_SYNC} is already Bucardo's own`);
        }
        if (await savedSchemaExists(client)) {
          await forgetSaved(client);
          done.push(`dropped the saved copy (schema ${SAVED_SCHEMA})`);
        }
        return done;
      }),
    ctx.activity,
  );
  return {
    data: { steps },
    message: `retry undone for ${job.name}: Bucardo's own validate_sync is in place.`,
  };
}

export async function validateUninstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  if (!(await metadataDatabaseExists(ctx.db)))
    return [{ name: `no retry patch (metadata database ${job.metadataDb} is gone)`, pass: true }];
  return withMetadata(ctx.db, async (client) => {
    const current = await installedDefinition(client);
    const checks: Check[] = [
      { name: `${VALIDATE_SYNC} in ${job.metadataDb} carries no retry patch`, pass: !isPatched(current) },
      { name: `no saved copy left (schema ${SAVED_SCHEMA})`, pass: !(await savedSchemaExists(client)) },
    ];
    const packaged = existsSync(BUCARDO_SCHEMA_FILE)
      ? packagedValidateSyncBody(readFileSync(BUCARDO_SCHEMA_FILE, 'utf8'))
      : undefined;
    if (packaged !== undefined) {
      checks.push({
        name: `${VALIDATE_SYNC}'s code is identical to Bucardo's packaged one (${BUCARDO_SCHEMA_FILE})`,
        pass: (await installedBody(client)) === packaged,
      });
    }
    return checks;
  });
}
