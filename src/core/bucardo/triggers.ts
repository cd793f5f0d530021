// Bucardo's triggers on a job's primary, as every plugin needs them: which ones a job should carry
// and in which mode (cascade middle hops fire ALWAYS), which exist, which to drop, and dropping
// them table by table in rounds of lock-bounded tries.
import type { Activity } from '../activity.js';
import { DatabaseContext, withSession } from '../context.js';
import type { Client } from '../db.js';
import { describeWaiting, lockBoundedDdl, type TableFailure } from '../ddl.js';
import type { Job } from '../job.js';
import { displayName, findReplicationObjects, type Relation } from '../objects.js';
import { quoteIdent, quoteQualified } from '../quote.js';
import { RoundProgress, runRounds, type RoundsPolicy } from '../rounds.js';
import { DELTA_TRIGGER, kickTriggerName, truncateTriggerName } from './names.js';
import { syncCount, syncNames, tablesBySync } from './syncs.js';

export interface TriggerRow {
  schema: string;
  table: string;
  trigger: string;
  enabled: string;
}

/**
 * The triggers a table of this job carries, and the tgenabled state each should have. A table belongs
 * to one of the job's syncs (bucardo.syncs): its kick and note-truncation triggers are that sync's.
 * Without a sync: every trigger name of the job (what bucardo.add_triggers sets the mode of).
 */
export function expectedTriggers(job: Job, syncName?: string): Map<string, string> {
  // On a cascade middle hop (this job's primary is B of A→B→C), rows arrive from the A→B sync with
  // session_replication_role = replica; only ALWAYS triggers fire then, so B's changes reach C.
  const state = job.config.databases.primary.cascade ? 'A' : 'O';
  const expected = new Map<string, string>([[DELTA_TRIGGER, state]]);
  for (const name of syncName === undefined ? syncNames(job) : [syncName]) {
    expected.set(truncateTriggerName(name), state);
    if (!job.config.bucardo.asynchronousKicking) expected.set(kickTriggerName(name), state);
  }
  return expected;
}

/** Every trigger name this job may have created (the kick trigger whatever the kicking mode). */
export function jobTriggerNames(job: Job): string[] {
  return [
    DELTA_TRIGGER,
    ...syncNames(job).flatMap((name) => [truncateTriggerName(name), kickTriggerName(name)]),
  ];
}

export async function listTriggers(client: Client, names: string[]): Promise<TriggerRow[]> {
  const { rows } = await client.query<TriggerRow>(
    `SELECT n.nspname AS schema, c.relname AS table, t.tgname AS trigger, t.tgenabled AS enabled
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT t.tgisinternal AND n.nspname <> 'bucardo' AND t.tgname = ANY($1)
      ORDER BY 1, 2, 3`,
    [names],
  );
  return rows;
}

/** Trigger rows grouped by "schema.table". */
export function groupByTable(rows: TriggerRow[]): Map<string, TriggerRow[]> {
  const grouped = new Map<string, TriggerRow[]>();
  for (const row of rows) {
    const key = `${row.schema}.${row.table}`;
    grouped.set(key, [...(grouped.get(key) ?? []), row]);
  }
  return grouped;
}

/** Other syncs' note-truncation triggers on a table mean its bucardo_delta trigger is shared. */
export async function tablesSharingDelta(client: Client, job: Job): Promise<Set<string>> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    `SELECT DISTINCT n.nspname AS schema, c.relname AS table
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT t.tgisinternal AND (t.tgname LIKE 'bucardo\\_note\\_trunc\\_%' OR t.tgname LIKE 'btrunc\\_%') AND NOT t.tgname = ANY($1)`,
    [syncNames(job).map(truncateTriggerName)],
  );
  return new Set(rows.map((r) => `${r.schema}.${r.table}`));
}

/** This job's triggers to drop, by table; a bucardo_delta another sync still uses stays. */
export async function triggersToDrop(client: Client, job: Job): Promise<Map<string, TriggerRow[]>> {
  const present = await listTriggers(client, jobTriggerNames(job));
  const shared = await tablesSharingDelta(client, job);
  return groupByTable(
    present.filter((row) => !(row.trigger === DELTA_TRIGGER && shared.has(`${row.schema}.${row.table}`))),
  );
}

/** One transaction's statements: every trigger of this job on one table. */
export function dropStatements(rows: TriggerRow[]): string[] {
  return rows.map(
    (row) =>
      `DROP TRIGGER IF EXISTS ${quoteIdent(row.trigger)}` + ` ON ${quoteQualified(row.schema, row.table)}`,
  );
}

export interface RoundsResult {
  total: number;
  rounds: number;
  waiting: TableFailure[];
}

/**
 * Drops this job's triggers table by table in rounds of the given policy (retry.drop_triggers, and
 * cutover.finish). A table still busy after the last round is returned with the sessions holding
 * its lock, and the reason given (which names the setting that bounded each wait).
 */
export async function dropTriggersInRounds(
  primary: Client,
  job: Job,
  activity: Activity,
  policy: RoundsPolicy,
  report: (text: string) => void,
  reason: (rounds: number) => string,
): Promise<RoundsResult> {
  let remaining = await triggersToDrop(primary, job);
  const total = remaining.size;
  const progress = new RoundProgress(total, 'done', report);
  const rounds = await runRounds(policy, activity, {
    pending: () => remaining.size > 0,
    pausing: (round, pause) => {
      progress.round = round;
      progress.waiting.clear();
      remaining.forEach((_, key) => progress.waiting.add(key));
      progress.show(` (starts in ${(pause / 1000).toFixed(1)} s)`);
    },
    round: async (round) => {
      progress.round = round;
      // After a pause the tables left show as waiting until their turn comes.
      if (policy.pauseBeforeRound(round) === 0) progress.waiting.clear();
      for (const [key, rows] of remaining) {
        activity.throwIfInterrupted();
        progress.show();
        const outcome = await lockBoundedDdl(primary, dropStatements(rows), {
          timeoutMs: policy.timeoutMs,
          activity,
          deadlockIsLockWait: true,
        });
        if (outcome.done) progress.markReady(key);
        else progress.markWaiting(key);
      }
      remaining = await triggersToDrop(primary, job);
    },
  });
  const waitingTables = [...remaining].map(([key, [row]]) => ({
    key,
    schema: row!.schema,
    table: row!.table,
  }));
  return { total, rounds, waiting: await describeWaiting(primary, waitingTables, reason(rounds)) };
}

export interface TriggerAudit {
  table: string;
  problems: string[];
}

/** Compares each table in scope with the expected triggers; returns the tables that differ. */
export async function auditTriggers(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<{ tables: Relation[]; wrong: TriggerAudit[] }> {
  const job = source instanceof DatabaseContext ? source.job : source;
  // With several syncs each table's expected triggers are those of the sync its relgroup is in.
  const syncOf = syncCount(job) > 1 ? await tableSyncs(source, activity) : undefined;
  return withSession(
    source,
    { role: 'primary' },
    async (client) => {
      const { tables } = await findReplicationObjects(client, job.config.bucardo.replicationObjects);
      const byTable = groupByTable(await listTriggers(client, jobTriggerNames(job)));
      const wrong: TriggerAudit[] = [];
      for (const table of tables) {
        const rows = byTable.get(displayName(table)) ?? [];
        const problems: string[] = [];
        const sync = syncOf ? syncOf.get(displayName(table)) : job.syncName;
        if (sync === undefined) problems.push('not in any sync of the job (run bucardo.install)');
        const expected = expectedTriggers(job, sync ?? job.syncName);
        for (const [name, state] of expected) {
          const row = rows.find((r) => r.trigger === name);
          if (!row) problems.push(`missing ${name}`);
          else if (row.enabled !== state)
            problems.push(`${name} is ${describeEnabled(row.enabled)}, expected ${describeEnabled(state)}`);
        }
        for (const row of rows) if (!expected.has(row.trigger)) problems.push(`unexpected ${row.trigger}`);
        if (problems.length) wrong.push({ table: displayName(table), problems });
      }
      return { tables, wrong };
    },
    activity,
  );
}

/** "schema.table" → the name of the job's sync that holds it, from the relgroups. */
async function tableSyncs(source: Job | DatabaseContext, activity?: Activity): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const [sync, tables] of await tablesBySync(source, activity))
    for (const t of tables) result.set(t, sync);
  return result;
}

function describeEnabled(state: string): string {
  return (
    ({ O: 'enabled', A: 'enabled ALWAYS', R: 'enabled REPLICA', D: 'disabled' } as Record<string, string>)[
      state
    ] ?? state
  );
}
