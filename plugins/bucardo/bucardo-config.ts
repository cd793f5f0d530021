// What bucardo.install, bucardo.start and bucardo.change_config share: the job's directories, and
// Bucardo's own settings (bucardo.bucardo_config) stored as given.
import { mkdirSync } from 'node:fs';
import { withTransaction } from '../../src/core/db.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { withMetadata } from '../../src/core/bucardo/metadata.js';

/** Creates the job's pid or log directory, or says which key to point elsewhere. */
export function ensureDirectory(dir: string, purpose: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new OperatorError(
      `Cannot create the ${purpose} ${dir}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}. Create it with write permission for this user, or point bucardo.${purpose === 'pid directory' ? 'pid_dir' : 'log_dir'} somewhere writable.`,
    );
  }
}

/**
 * Points Bucardo's pid dir and reason/warning/conflict files at this job's paths. A trigger in
 * Bucardo 5.6's schema lowercases most settings, piddir included ("/tmp/Run" would become
 * "/tmp/run" and the daemon could not start), so the values are stored with triggers bypassed.
 */
export async function storeSettingsVerbatim(
  job: Job,
  settings: [string, string][],
  activity?: CommandContext['activity'],
): Promise<void> {
  // A session of its own: the settings are written in one transaction (SET LOCAL session_replication_role).
  await withMetadata(
    job,
    async (client) =>
      withTransaction(client, async () => {
        await client.query('SET LOCAL session_replication_role = replica');
        for (const [name, value] of settings) {
          await client.query(
            'UPDATE bucardo.bucardo_config SET setting = $1 WHERE name = $2 AND type IS NULL',
            [value, name],
          );
        }
      }),
    activity,
  );
}

/** Where Bucardo keeps its pid files and writes its reason, warning and conflict files: the job's own dirs. */
export function jobPathSettings(job: Job): [string, string][] {
  return [
    ['piddir', job.paths.pidDir],
    ['reason_file', job.paths.reasonFile],
    ['warning_file', job.paths.warningFile],
    ['log_conflict_file', job.paths.conflictFile],
  ];
}
