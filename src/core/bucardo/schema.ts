// The bucardo schema Bucardo creates on a source database (its delta and track tables, trigger
// functions): dropped once no Bucardo trigger uses it any more, under a bounded lock wait.
import type { Client } from '../db.js';
import { lockBoundedDdl } from '../ddl.js';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';

/**
 * Drops the bucardo schema on the database of `client` unless a Bucardo trigger of any job (another
 * metadata database's too) still uses it. `where` names the database in messages ("the primary").
 */
export async function dropBucardoSchema(client: Client, job: Job, where = 'the primary'): Promise<string> {
  // Other jobs (another metadata database) may still use the primary's bucardo schema: their
  // triggers reference its functions. Only drop it when no Bucardo trigger is left.
  const { rows } = await client.query<{ count: string }>(
    `SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
       JOIN pg_class c ON c.oid = t.tgrelid
      WHERE n.nspname = 'bucardo' AND NOT t.tgisinternal AND c.relnamespace <> n.oid`,
  );
  const remaining = Number(rows[0]!.count);
  const exists = (await client.query("SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).rowCount;
  if (!exists) return `no bucardo schema on ${where}`;
  if (remaining > 0) {
    return `kept the bucardo schema on ${where}: ${remaining} trigger(s) of other Bucardo jobs still use it`;
  }
  const outcome = await lockBoundedDdl(client, ['DROP SCHEMA bucardo CASCADE'], {
    timeoutMs: job.config.bucardo.lockTimeoutMs,
    target: { schema: 'bucardo' },
  });
  if (!outcome.done) {
    // Typically autovacuum on a big delta table, or a session still reading Bucardo's tables.
    const holders = outcome.blockers.map(
      (h) => `pid ${h.pid} (${h.application || h.backendType}: ${h.query.slice(0, 120)})`,
    );
    throw new OperatorError(
      `The bucardo schema on ${where} could not be dropped within bucardo.lock_timeout (${job.config.bucardo.lockTimeoutMs} ms): ${holders.join('; ') || 'another session'} holds a lock on its tables. The triggers are already gone, so nothing is being captured any more; run bucardo.uninstall again in a moment.`,
    );
  }
  return `dropped the bucardo schema on ${where}`;
}
