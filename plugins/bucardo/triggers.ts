// Bucardo's triggers on the primary: what a job should carry, dropping them table by table under a
// lock timeout, and the trigger policy (cascade middle hops fire ALWAYS).
import { withClient, type Client } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import type { Activity } from '../../src/core/activity.js';
import type { Job } from '../../src/core/job.js';
import { displayName, findReplicationObjects, type Relation } from '../../src/core/objects.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';
import { DELTA_TRIGGER, kickTriggerName, truncateTriggerName } from './names.js';

export interface TriggerRow { schema: string; table: string; trigger: string; enabled: string }

/** The triggers a table of this job carries, and the tgenabled state each should have. */
export function expectedTriggers(job: Job): Map<string, string> {
  // On a cascade middle hop (this job's primary is B of A→B→C), rows arrive from the A→B sync with
  // session_replication_role = replica; only ALWAYS triggers fire then, so B's changes reach C.
  const state = job.config.databases.primary.cascade ? 'A' : 'O';
  const expected = new Map<string, string>([[DELTA_TRIGGER, state], [truncateTriggerName(job.syncName), state]]);
  if (!job.config.bucardo.asynchronousKicking) expected.set(kickTriggerName(job.syncName), state);
  return expected;
}

/** Every trigger name this job may have created (the kick trigger whatever the kicking mode). */
export function jobTriggerNames(job: Job): string[] {
  return [DELTA_TRIGGER, truncateTriggerName(job.syncName), kickTriggerName(job.syncName)];
}

export async function listTriggers(client: Client, names: string[]): Promise<TriggerRow[]> {
  const { rows } = await client.query<TriggerRow>(
    `SELECT n.nspname AS schema, c.relname AS table, t.tgname AS trigger, t.tgenabled AS enabled
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT t.tgisinternal AND n.nspname <> 'bucardo' AND t.tgname = ANY($1)
      ORDER BY 1, 2, 3`, [names]);
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
      WHERE NOT t.tgisinternal AND (t.tgname LIKE 'bucardo\\_note\\_trunc\\_%' OR t.tgname LIKE 'btrunc\\_%') AND t.tgname <> $1`,
    [truncateTriggerName(job.syncName)]);
  return new Set(rows.map((r) => `${r.schema}.${r.table}`));
}

export interface LockBlocker { pid: number; user: string; application: string; seconds: number; query: string }

export interface TableFailure { table: string; error: string; blockers: LockBlocker[] }

/** Who holds a lock on the table that a DDL statement would wait for. */
export async function lockHolders(client: Client, schema: string, table: string): Promise<LockBlocker[]> {
  const { rows } = await client.query<LockBlocker>(
    `SELECT DISTINCT a.pid, a.usename AS user, a.application_name AS application,
            round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start)))::int AS seconds, left(a.query, 200) AS query
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
        AND l.relation = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)
        -- DROP TRIGGER (ACCESS EXCLUSIVE) waits even for plain readers, so every mode counts.
        `,
    [schema, table]);
  return rows;
}

export interface DropReport { dropped: string[]; failed: TableFailure[] }

/** This job's triggers to drop, by table; a bucardo_delta another sync still uses stays. */
export async function triggersToDrop(client: Client, job: Job): Promise<Map<string, TriggerRow[]>> {
  const present = await listTriggers(client, jobTriggerNames(job));
  const shared = await tablesSharingDelta(client, job);
  return groupByTable(present.filter((row) => !(row.trigger === DELTA_TRIGGER && shared.has(`${row.schema}.${row.table}`))));
}

/**
 * Drops this job's triggers one table per transaction, each under lock_timeout: DROP TRIGGER takes
 * an ACCESS EXCLUSIVE lock, and a wait in the lock queue would block every later query on the table.
 */
export async function dropJobTriggers(job: Job, activity: Activity, progress: (text: string) => void): Promise<DropReport> {
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (client) => {
    const byTable = await triggersToDrop(client, job);
    const report: DropReport = { dropped: [], failed: [] };
    let done = 0;
    for (const [key, rows] of byTable) {
      activity.throwIfInterrupted();
      progress(`dropping triggers: ${done}/${byTable.size} tables, now ${key}`);
      const { schema, table } = rows[0]!;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${Number(job.config.bucardo.lockTimeoutMs)}`);
        for (const row of rows) await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(row.trigger)} ON ${quoteQualified(schema, table)}`);
        await client.query('COMMIT');
        report.dropped.push(key);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (activity.interrupted) throw error;
        report.failed.push({ table: key, error: errorMessage(error), blockers: await lockHolders(client, schema, table).catch(() => []) });
      }
      done += 1;
    }
    return report;
  });
}

/** Sets each trigger's enabled state to the expected one (ALWAYS on a cascade middle hop), per table under lock_timeout. */
export async function applyTriggerPolicy(job: Job, activity: Activity, progress: (text: string) => void): Promise<{ changed: string[]; failed: TableFailure[] }> {
  const expected = expectedTriggers(job);
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (client) => {
    const byTable = groupByTable((await listTriggers(client, [...expected.keys()])).filter((row) => expected.get(row.trigger) !== row.enabled));
    const changed: string[] = [];
    const failed: TableFailure[] = [];
    for (const [key, tableRows] of byTable) {
      activity.throwIfInterrupted();
      progress(`setting trigger modes on ${key}`);
      const { schema, table } = tableRows[0]!;
      const clauses = tableRows.map((row) => `${expected.get(row.trigger) === 'A' ? 'ENABLE ALWAYS' : 'ENABLE'} TRIGGER ${quoteIdent(row.trigger)}`);
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${Number(job.config.bucardo.lockTimeoutMs)}`);
        await client.query(`ALTER TABLE ${quoteQualified(schema, table)} ${clauses.join(', ')}`);
        await client.query('COMMIT');
        changed.push(key);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (activity.interrupted) throw error;
        failed.push({ table: key, error: errorMessage(error), blockers: await lockHolders(client, schema, table).catch(() => []) });
      }
    }
    return { changed, failed };
  });
}

export interface TriggerAudit { table: string; problems: string[] }

/** Compares each table in scope with the expected triggers; returns the tables that differ. */
export async function auditTriggers(job: Job, activity?: Activity): Promise<{ tables: Relation[]; wrong: TriggerAudit[] }> {
  const expected = expectedTriggers(job);
  return withClient(job, { role: 'primary', activity }, async (client) => {
    const { tables } = await findReplicationObjects(client, job.config.bucardo.replicationObjects);
    const byTable = groupByTable(await listTriggers(client, jobTriggerNames(job)));
    const wrong: TriggerAudit[] = [];
    for (const table of tables) {
      const rows = byTable.get(displayName(table)) ?? [];
      const problems: string[] = [];
      for (const [name, state] of expected) {
        const row = rows.find((r) => r.trigger === name);
        if (!row) problems.push(`missing ${name}`);
        else if (row.enabled !== state) problems.push(`${name} is ${describeEnabled(row.enabled)}, expected ${describeEnabled(state)}`);
      }
      for (const row of rows) if (!expected.has(row.trigger)) problems.push(`unexpected ${row.trigger}`);
      if (problems.length) wrong.push({ table: displayName(table), problems });
    }
    return { tables, wrong };
  });
}

function describeEnabled(state: string): string {
  return ({ O: 'enabled', A: 'enabled ALWAYS', R: 'enabled REPLICA', D: 'disabled' } as Record<string, string>)[state] ?? state;
}

export function formatFailures(failures: TableFailure[]): string[] {
  const lines: string[] = [];
  for (const failure of failures) {
    lines.push(`  ${failure.table}: ${failure.error}`);
    for (const b of failure.blockers) lines.push(`    lock held by pid ${b.pid} (${b.user}, ${b.application || 'no application name'}, ${b.seconds} s): ${b.query}`);
  }
  return lines;
}
