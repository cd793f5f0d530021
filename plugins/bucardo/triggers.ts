// The bucardo plugin's trigger commands on the primary: dropping this job's triggers and setting
// their modes table by table under bucardo.lock_timeout (the audit is in src/core/bucardo/triggers.ts).
import type { Activity } from '../../src/core/activity.js';
import {
  dropStatements,
  expectedTriggers,
  groupByTable,
  listTriggers,
  triggersToDrop,
} from '../../src/core/bucardo/triggers.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { withClient } from '../../src/core/db.js';
import { lockBoundedDdl, tableFailure, type TableFailure } from '../../src/core/ddl.js';
import type { Job } from '../../src/core/job.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';

export interface DropReport {
  dropped: string[];
  failed: TableFailure[];
}

/**
 * Drops this job's triggers one table per transaction, each under lock_timeout: DROP TRIGGER takes
 * an ACCESS EXCLUSIVE lock, and a wait in the lock queue would block every later query on the table.
 */
export async function dropJobTriggers(
  job: Job,
  activity: Activity,
  progress: (text: string) => void,
): Promise<DropReport> {
  // A session of its own: each table's drop is a transaction with SET LOCAL lock_timeout.
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (client) => {
    const byTable = await triggersToDrop(client, job);
    const report: DropReport = { dropped: [], failed: [] };
    let done = 0;
    for (const [key, rows] of byTable) {
      activity.throwIfInterrupted();
      progress(`dropping triggers: ${done}/${byTable.size} tables, now ${key}`);
      const { schema, table } = rows[0]!;
      const outcome = await lockBoundedDdl(client, dropStatements(rows), {
        timeoutMs: job.config.bucardo.lockTimeoutMs,
        activity,
        report: 'all',
        target: { schema, table },
      });
      if (outcome.done) report.dropped.push(key);
      else report.failed.push(tableFailure(key, outcome));
      done += 1;
    }
    return report;
  });
}

/**
 * Sets each trigger's enabled state to the expected one (ALWAYS on a cascade middle hop), per table under
 * lock_timeout.
 */
export async function applyTriggerPolicy(
  db: DatabaseContext,
  activity: Activity,
  progress: (text: string) => void,
): Promise<{ changed: string[]; failed: TableFailure[] }> {
  const { job } = db;
  const expected = expectedTriggers(job);
  // Usually every trigger already has its mode: that is read on the command's shared session.
  const byTable = groupByTable(
    (await listTriggers(await db.primary(), [...expected.keys()])).filter(
      (row) => expected.get(row.trigger) !== row.enabled,
    ),
  );
  const changed: string[] = [];
  const failed: TableFailure[] = [];
  if (byTable.size === 0) return { changed, failed };
  // A session of its own: each table's change is a transaction with SET LOCAL lock_timeout.
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (client) => {
    for (const [key, tableRows] of byTable) {
      activity.throwIfInterrupted();
      progress(`setting trigger modes on ${key}`);
      const { schema, table } = tableRows[0]!;
      const clauses = tableRows.map(
        (row) =>
          `${expected.get(row.trigger) === 'A' ? 'ENABLE ALWAYS' : 'ENABLE'} TRIGGER ${quoteIdent(row.trigger)}`,
      );
      const outcome = await lockBoundedDdl(
        client,
        [`ALTER TABLE ${quoteQualified(schema, table)} ${clauses.join(', ')}`],
        { timeoutMs: job.config.bucardo.lockTimeoutMs, activity, report: 'all', target: { schema, table } },
      );
      if (outcome.done) changed.push(key);
      else failed.push(tableFailure(key, outcome));
    }
    return { changed, failed };
  });
}
