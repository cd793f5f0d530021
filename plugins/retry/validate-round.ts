// One round of the per-table validate_sync (see patch.ts): called over SQL in the metadata database
// with this connection's session settings asking for per-table mode, reporting each table as it goes.
import { withClient } from '../../src/core/db.js';
import { errorMessage, InterruptedError, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { withMetadata } from '../../src/core/bucardo/metadata.js';
import { APPLICATION_PREFIX, NOTICE_PREFIX } from './patch.js';
import type { RetrySettings } from './settings.js';

/**
 * validate_sync waits for locks on its own connection to the primary, where cancelling our metadata
 * session only takes effect once that wait ends: on Ctrl-C, cancel that connection's statement too.
 */
function trackInnerConnection(job: Job, ctx: CommandContext, syncName: string): () => void {
  let backendPid: number | undefined;
  return ctx.activity.trackSession({
    description: `validate_sync's connection to the primary database "${job.config.databases.primary.dbname}"`,
    get backendPid() {
      return backendPid;
    },
    busy: () => true,
    cancel: () =>
      withClient(job, { role: 'primary' }, async (client) => {
        const { rows } = await client.query<{ pid: number; cancelled: boolean }>(
          'SELECT pid, pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
          [`${APPLICATION_PREFIX}${syncName}`],
        );
        backendPid = rows[0]?.pid;
        return rows.some((row) => row.cancelled);
      }),
  });
}

/**
 * One call of the per-table validate_sync for each of the job's syncs (bucardo.syncs) that has tables
 * left to do; each table it reports goes to onTable as it finishes.
 */
export async function validateRound(
  job: Job,
  ctx: CommandContext,
  settings: RetrySettings,
  onTable: (status: string, key: string) => void,
  syncs: string[] = [job.syncName],
): Promise<void> {
  for (const syncName of syncs) {
    const untrack = trackInnerConnection(job, ctx, syncName);
    try {
      await validateSyncPerTable(job, ctx, settings, onTable, syncName);
    } finally {
      untrack();
    }
  }
}

async function validateSyncPerTable(
  job: Job,
  ctx: CommandContext,
  settings: RetrySettings,
  onTable: (status: string, key: string) => void,
  syncName: string,
): Promise<void> {
  await withMetadata(
    job,
    async (client) => {
      client.on('notice', (notice) => {
        const text = notice.message ?? '';
        if (!text.startsWith(NOTICE_PREFIX)) return;
        const rest = text.slice(NOTICE_PREFIX.length);
        const space = rest.indexOf(' ');
        if (space > 0) onTable(rest.slice(0, space), rest.slice(space + 1));
      });
      // Session settings of this connection only; they end with it.
      await client.query(
        `SELECT set_config('bucardo_console.retry_mode', 'per_table', false), set_config('bucardo_console.retry_lock_timeout', $1, false)`,
        [String(settings.timeoutMs)],
      );
      let result: string | undefined;
      try {
        const { rows } = await client.query<{ result: string }>(
          'SELECT bucardo.validate_sync($1) AS result',
          [syncName],
        );
        result = rows[0]?.result;
      } catch (error) {
        if (ctx.activity.interrupted) throw new InterruptedError();
        throw new OperatorError(
          `Bucardo's validate_sync stopped on sync ${syncName}: ${errorMessage(error).replace(/ at line \d+\.?/g, '')}. Tables it finished keep their triggers, inside the recorded sync. Fix the cause and run retry.add_triggers again: it continues from there.`,
        );
      }
      if (result !== 'MODIFY')
        throw new OperatorError(
          `Bucardo's validate_sync did not validate sync ${syncName}: ${result}. Check that its relgroup has tables (bucardo.install).`,
        );
    },
    ctx.activity,
  );
}
