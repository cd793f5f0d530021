// Re-queuing keys through Bucardo. Change records for the keys go into the job's delta tables on the
// primary, exactly as Bucardo's own delta trigger (and its makedelta) writes them. At its next run
// Bucardo deletes those keys on the secondary and copies the primary's rows for them: a row missing
// or different there is copied again, a row that exists only there is deleted. Bucardo does it in
// its own run, so a repair never races a change the application makes at the same moment.
import { sleep, type Activity } from '../activity.js';
import { withTransaction, type Client } from '../db.js';
import { quoteIdent } from '../quote.js';
import type { ChangeLog } from './in-flight.js';
import { transposeKeys, type TableSql } from './sql.js';

const BATCH_KEYS = 10_000;

export interface Requeue {
  sql: TableSql;
  log: ChangeLog;
  keys: string[][];
}

/**
 * Writes the change records of every table in one transaction, so they share one txntime (the
 * column's default: the commit fence's time for the transaction, docs/how-bucardo-behaves.md §19) and
 * Bucardo applies them in one run. Returns that txntime.
 */
export async function insertChangeRecords(primary: Client, work: Requeue[]): Promise<string> {
  return withTransaction(primary, async () => {
    let txntime: string | undefined;
    for (const { sql, log, keys } of work) {
      const columns = sql.shape.key.map((column) => quoteIdent(column.name)).join(', ');
      for (let i = 0; i < keys.length; i += BATCH_KEYS) {
        const batch = keys.slice(i, i + BATCH_KEYS);
        const { rows } = await primary.query<{ txntime: string | null }>(
          `WITH written AS (
             INSERT INTO ${log.delta} (${columns}) SELECT ${sql.castKeys('w')} FROM ${sql.unnestKeys('w')}
             RETURNING txntime
           ) SELECT max(txntime)::text AS txntime FROM written`,
          transposeKeys(batch, sql.shape.key.length),
        );
        txntime ??= rows[0]?.txntime ?? undefined;
      }
    }
    return (
      txntime ?? (await primary.query<{ txntime: string }>('SELECT now()::text AS txntime')).rows[0]!.txntime
    );
  });
}

/**
 * Applied: Bucardo marked the txntime done for the target in every track table, or its VAC already
 * purged the change records (it purges only records every target has applied).
 */
async function allApplied(primary: Client, logs: ChangeLog[], txntime: string): Promise<boolean> {
  for (const log of logs) {
    const { rows } = await primary.query<{ done: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${log.track} WHERE txntime = $1::timestamptz AND target = $2)
              OR NOT EXISTS (SELECT 1 FROM ${log.delta} WHERE txntime = $1::timestamptz) AS done`,
      [txntime, log.target],
    );
    if (!rows[0]!.done) return false;
  }
  return true;
}

export interface WaitOptions {
  timeoutSeconds: number;
  activity: Activity;
  /** Asks Bucardo for a sync run (a NOTIFY on the metadata database). */
  kick(): Promise<void>;
  progress(text: string): void;
}

/**
 * Kicks the sync and waits until Bucardo has applied the records. Kicks again every few seconds: a
 * kick that arrives while a run is under way may be folded into it before our records were visible.
 * Returns the seconds waited, or undefined when the timeout passed first.
 */
export async function waitUntilApplied(
  primary: Client,
  logs: ChangeLog[],
  txntime: string,
  options: WaitOptions,
): Promise<number | undefined> {
  const started = Date.now();
  const deadline = started + options.timeoutSeconds * 1000;
  let nextKick = 0;
  while (Date.now() < deadline) {
    if (await allApplied(primary, logs, txntime)) return Math.round((Date.now() - started) / 100) / 10;
    if (Date.now() >= nextKick) {
      await options.kick();
      nextKick = Date.now() + 3000;
    }
    options.progress(
      `waiting for Bucardo to apply the re-queued keys (${Math.round((Date.now() - started) / 1000)} s, up to ${options.timeoutSeconds} s)`,
    );
    await sleep(250, options.activity.signal);
  }
  return undefined;
}
