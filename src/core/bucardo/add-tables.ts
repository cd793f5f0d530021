// Tables that came into scope after the job was installed (created on both sides while replication
// runs: a deploy, a new partition) added to a job that already replicates, without losing a change.
// The order is what makes it safe (docs/how-bucardo-behaves.md §16, §23):
//   1. record the table in its sync's relgroup (no table is touched);
//   2. give it the sync's triggers (`bucardo validate`, each try bounded by the dbconn's lock_timeout,
//      in rounds): from the commit of that DDL on, every change is recorded in its delta table;
//   3. the commit fence on its new change table, before any run may track one of its times;
//   4. copy its rows online with the console's copy (src/core/copy), from snapshots taken after 2;
//   5. reload the daemon, which only now learns the table, and applies what 2 recorded since.
// The running daemon keeps the sync as it loaded it until 5, so it never writes into a table the copy
// is filling. A journal in the job's state dir holds the batch, so a rerun after a failure or a kill
// continues it (each step checks what is already in place).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runBucardo } from './run.js';
import { withClient, type Client } from '../db.js';
import { describeWaiting, lockBoundedDdl, type TableFailure } from '../ddl.js';
import { errorMessage, InterruptedError, OperatorError } from '../errors.js';
import { DEFAULT_PARTITION_POLICY, targetViews, type Job, type PartitionPolicy } from '../job.js';
import { displayName, findReplicationObjects, type Relation } from '../objects.js';
import type { CommandContext } from '../plugin.js';
import { bucardoRelationName, quoteIdent, quoteQualified } from '../quote.js';
import { lockRounds, runRounds } from '../rounds.js';
import { copySync } from '../copy/engine.js';
import { copyRecordFile } from '../copy/state.js';
import { isProcessAlive } from '../process.js';
import { requireCommitFence } from './commit-fence.js';
import { isDaemonRunning, kickSync, reloadDaemon } from './daemon.js';
import { pendingChanges } from '../pending.js';
import { sleep, type Activity } from '../activity.js';
import { metadataDatabaseExists, withMetadata } from './metadata.js';
import { readJobRecords, refuseSharedRecords } from './records.js';
import { jobSyncs, planSyncs, recordedSyncs, recordedTableSyncs, type JobSync } from './syncs.js';
import { expectedTriggers, groupByTable, jobTriggerNames, listTriggers } from './triggers.js';
import { withThousands } from '../numbers.js';

/**
 * The job's policy for new partitions. The schema plugin registers it in its configureJob; the core
 * (the kicker among it) never reads the plugin's settings by name. Without the plugin: neither.
 */
export function partitionSettings(job: Job): PartitionPolicy {
  return job.partitionPolicy ?? DEFAULT_PARTITION_POLICY;
}

/**
 * New leaf partitions of the job's replicated partitioned tables that are missing on the secondary,
 * created there from the primary's definition (CREATE TABLE ... PARTITION OF ... FOR VALUES ...): a
 * partition carries its parent's columns, keys and indexes. Returns the names created.
 */
export async function createMissingPartitions(
  clients: { primary: Client; secondary: Client },
  partitions: UnreplicatedTable[],
  timeoutMs: number,
): Promise<string[]> {
  const created: string[] = [];
  for (const leaf of partitions.filter((p) => p.partitionOf)) {
    const { rows } = await clients.primary.query<{ parent_schema: string; parent: string; bound: string }>(
      `SELECT pn.nspname AS parent_schema, p.relname AS parent, pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_class p ON p.oid = i.inhparent
         JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE c.oid = $1::regclass`,
      [quoteQualified(leaf.schema, leaf.name)],
    );
    const parent = rows[0];
    if (!parent) continue;
    const { rows: present } = await clients.secondary.query<{ ok: boolean }>(
      'SELECT to_regclass($1) IS NOT NULL AS ok',
      [quoteQualified(parent.parent_schema, parent.parent)],
    );
    if (!present[0]!.ok) continue;
    // The bound is PostgreSQL's own text (pg_get_expr), the names quoted here. Bucardo writes into the
    // parent's other partitions meanwhile: the lock wait is bounded, a busy parent is tried next time.
    const outcome = await lockBoundedDdl(
      clients.secondary,
      [
        `CREATE TABLE ${quoteQualified(leaf.schema, leaf.name)} PARTITION OF ${quoteQualified(parent.parent_schema, parent.parent)} ${parent.bound}`,
      ],
      { timeoutMs },
    );
    if (outcome.done) created.push(leaf.table);
  }
  return created;
}

/** A table in scope on the primary that no sync of the job holds, and why it cannot be added, if so. */
export interface UnreplicatedTable {
  table: string;
  schema: string;
  name: string;
  partitionOf?: string;
  /** Why it cannot be added as it is (no primary key, missing on the secondary). */
  blocked?: string;
}

/**
 * The tables in scope on the primary that are not in any of the job's syncs (created since install),
 * each checked for what adding it needs: a primary key, and the table on the secondary.
 */
export async function unreplicatedTables(
  job: Job,
  clients: { primary: Client; secondary: Client; metadata: Client },
  options: { sizes?: boolean } = {},
): Promise<{ missing: UnreplicatedTable[]; scope: Relation[] }> {
  const { tables } = await findReplicationObjects(
    clients.primary,
    job.config.bucardo.replicationObjects,
    options,
  );
  const recorded = await recordedTableSyncs(clients.metadata, job);
  const missing: UnreplicatedTable[] = [];
  for (const table of tables) {
    const key = displayName(table);
    if (recorded.has(key)) continue;
    const { rows } = await clients.secondary.query<{ present: boolean }>(
      'SELECT to_regclass($1) IS NOT NULL AS present',
      [quoteQualified(table.schema, table.name)],
    );
    const blocked = !table.hasPrimaryKey
      ? 'it has no primary key, which Bucardo needs to replicate it: add one (on both sides), or exclude the table'
      : !rows[0]!.present
        ? 'it does not exist on the secondary: create it there first (schema.diff prints the difference; schema.apply creates a table on both sides)'
        : undefined;
    missing.push({
      table: key,
      schema: table.schema,
      name: table.name,
      ...(table.partitionRoot ? { partitionOf: displayName(table.partitionRoot) } : {}),
      ...(blocked ? { blocked } : {}),
    });
  }
  return { missing, scope: tables };
}

/** The batch under way, kept until its tables are replicated: what a rerun continues. */
interface AddTablesJournal {
  batch: string;
  tables: { schema: string; name: string; sync: string }[];
  copied: string[];
}

function journalFile(job: Job): string {
  return path.join(job.paths.stateDir, 'schema.add-tables.json');
}

function readJournal(job: Job): AddTablesJournal | undefined {
  const file = journalFile(job);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as AddTablesJournal;
}

function writeJournal(job: Job, journal: AddTablesJournal): void {
  const file = journalFile(job);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(journal, null, 1)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export interface AddTablesResult {
  /** Tables added by this run (or by the run it continued). */
  added: string[];
  /** Tables in scope that could not be added, with the reason. */
  blocked: UnreplicatedTable[];
  /** Tables still lacking their triggers after every round (locks held), with who holds them. */
  waiting: TableFailure[];
  steps: string[];
  /** The run continued a batch an earlier, interrupted run began. */
  resumed: boolean;
  /** Sequences in scope recorded in the job's first relgroup by this run. */
  sequences: string[];
}

export interface AddTablesOptions {
  /** Only these tables ("schema.name"); default: every table in scope that can be added. */
  only?: string[];
  /** Also the sequences in scope no relgroup holds (the default without `only`). */
  sequences?: boolean;
  /**
   * The job whose records in the metadata database these are, when ctx.job is derived from it: for
   * the way back (reverseJob), the forward job's view of B, which owns the `<name>_back` records.
   */
  recordsOf?: Job;
}

/** Why nothing can be added yet: the job must replicate already (its syncs recorded). */
async function requireReplicating(ctx: CommandContext, command: string, recordsOf?: Job): Promise<void> {
  const { job } = ctx;
  const records = await readJobRecords(recordsOf ? ctx.databases(recordsOf) : ctx.db, ctx.activity);
  if (!records || !(await metadataDatabaseExists(ctx.db, ctx.activity)))
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb}), so there is no sync to add tables to. Run bucardo.install and bucardo.add_triggers: they take every table in scope.`,
    );
  refuseSharedRecords(recordsOf ?? job, records, command);
  const recorded = await withMetadata(ctx.db, (client) => recordedSyncs(client, job), ctx.activity);
  if (recorded.length < jobSyncs(job).length)
    throw new OperatorError(
      `The sync(s) of ${job.name} are not all recorded yet (${recorded.length} of ${jobSyncs(job).length}): bucardo.install and bucardo.add_triggers take every table in scope, new ones included. Run them instead.`,
    );
}

/**
 * Adds the tables in scope that the job does not replicate yet (or continues the batch a killed run
 * left), each in the sync the balancing gives it (bucardo.syncs), with its rows copied online.
 */
export async function addTablesToJob(
  ctx: CommandContext,
  command: string,
  options: AddTablesOptions = {},
): Promise<AddTablesResult> {
  const { job } = ctx;
  await requireReplicating(ctx, command, options.recordsOf);
  // schema.add_tables and the kicker's schema.auto_add_partitions must not work on one batch at once.
  const lock = path.join(job.paths.stateDir, 'schema.add-tables.pid');
  const holder = existsSync(lock) ? Number(readFileSync(lock, 'utf8')) : undefined;
  if (holder && holder !== process.pid && isProcessAlive(holder))
    throw new OperatorError(
      `Another process (pid ${holder}) is adding tables to ${job.name} now (schema.add_tables, schema.apply or the kicker's schema.auto_add_partitions). Wait for it to finish, then run ${command} again.`,
    );
  mkdirSync(path.dirname(lock), { recursive: true, mode: 0o700 });
  writeFileSync(lock, `${process.pid}\n`, { mode: 0o600 });
  try {
    return await addTablesLocked(ctx, options);
  } finally {
    rmSync(lock, { force: true });
  }
}

async function addTablesLocked(ctx: CommandContext, options: AddTablesOptions): Promise<AddTablesResult> {
  const { job } = ctx;
  const steps: string[] = [];
  let journal = readJournal(job);
  const resumed = journal !== undefined;
  const blocked: UnreplicatedTable[] = [];
  const sequences =
    (options.sequences ?? !options.only) ? await newSequences(ctx) : { addable: [], blocked: [] };
  blocked.push(...sequences.blocked);
  if (journal) steps.push(`continued the batch of ${journal.tables.length} table(s) an earlier run began`);
  else {
    const planned = await planNewTables(ctx, options);
    blocked.push(...planned.blocked);
    if (planned.tables.length === 0) {
      if (sequences.addable.length === 0)
        return { added: [], blocked, waiting: [], steps, resumed, sequences: [] };
      // A sequence needs no trigger and no copy: every run of the sync sets it on the targets.
      steps.push(...(await recordSequences(ctx, sequences.addable)));
      if (isDaemonRunning(job)) {
        await reloadDaemon(job, ctx);
        steps.push('reloaded the daemon: its sync(s) carry the new sequence(s) from now on');
      }
      return { added: [], blocked, waiting: [], steps, resumed, sequences: sequences.addable };
    }
    journal = { batch: Date.now().toString(36), tables: planned.tables, copied: [] };
    writeJournal(job, journal);
  }
  const batch = journal;
  const syncs = jobSyncs(job);
  const syncOf = (name: string) => syncs.find((s) => s.name === name)!;

  steps.push(...(await recordInRelgroups(ctx, batch)));
  const waiting = await addTriggersInRounds(ctx, batch, syncs);
  if (waiting.length) return { added: [], blocked, waiting, steps, resumed, sequences: [] };
  steps.push(
    `${batch.tables.length} table(s) carry the sync's triggers: from here on every change is recorded`,
  );
  const fenced = await requireCommitFence(job, ctx);
  if (fenced) steps.push(fenced);

  // Every target of a fan-out job gets the rows, one after the other, each with a copy record of its
  // own (src/core/copy/state.ts): the daemon applies the changes since the triggers to all of them.
  const views = targetViews(job);
  const copiedKey = (view: Job, t: { schema: string; name: string }) =>
    job.config.fanOut ? `${view.target}:${key(t)}` : key(t);
  for (const sync of [...new Set(batch.tables.map((t) => t.sync))].map(syncOf)) {
    for (const view of views) {
      const tables = batch.tables.filter(
        (t) => t.sync === sync.name && !batch.copied.includes(copiedKey(view, t)),
      );
      if (tables.length === 0) continue;
      const where = job.config.fanOut ? ` on target ${view.target}` : '';
      ctx.progress(`copying the rows of ${tables.length} new table(s) of ${sync.name}${where}`);
      const run = await copySync(view === job ? ctx : ctx.forJob(view), sync.name, sync.relgroup, {
        record: copyRecordName(batch, sync),
        tables,
      });
      const after = await run.afterTables;
      after.forEach((line) => ctx.log(line));
      batch.copied.push(...tables.map((t) => copiedKey(view, t)));
      writeJournal(job, batch);
      steps.push(
        `copied ${withThousands(run.result.rows)} row(s) of ${tables.length} table(s) into ${sync.name}'s new tables${where} online`,
      );
    }
  }
  if (sequences.addable.length) steps.push(...(await recordSequences(ctx, sequences.addable)));
  if (isDaemonRunning(job)) {
    ctx.progress('reloading the daemon: it learns the new tables and applies what changed during the copy');
    await reloadDaemon(job, ctx);
    steps.push('reloaded the daemon and kicked the sync(s): the new tables replicate from now on');
    steps.push(await kickUntilApplied(ctx, batch.tables.map(key)));
  } else steps.push('the daemon is not running: bucardo.start gives it the new tables with the rest');
  for (const sync of syncs)
    for (const view of views) rmSync(copyRecordFile(view, copyRecordName(batch, sync)), { force: true });
  rmSync(journalFile(job), { force: true });
  return {
    added: batch.tables.map(key),
    blocked,
    waiting: [],
    steps,
    resumed,
    sequences: sequences.addable,
  };
}

/**
 * The sequences in scope on the primary that no relgroup of the job holds (created since install),
 * each checked on every target: the daemon refuses a sync whose sequence a target lacks.
 */
async function newSequences(
  ctx: CommandContext,
): Promise<{ addable: string[]; blocked: UnreplicatedTable[] }> {
  const { job, activity } = ctx;
  const { sequences } = await withClient(job, { role: 'primary', activity }, (primary) =>
    findReplicationObjects(primary, job.config.bucardo.replicationObjects, { sizes: false }),
  );
  if (sequences.length === 0) return { addable: [], blocked: [] };
  const recorded = await withMetadata(job, (metadata) => recordedSequences(metadata, job), activity);
  const unrecorded = sequences.filter((s) => !recorded.has(displayName(s)));
  const blocked = new Map<string, UnreplicatedTable>();
  for (const view of targetViews(job)) {
    await withClient(view, { role: 'secondary', activity }, async (secondary) => {
      for (const sequence of unrecorded) {
        const { rows } = await secondary.query<{ present: boolean }>(
          'SELECT to_regclass($1) IS NOT NULL AS present',
          [quoteQualified(sequence.schema, sequence.name)],
        );
        const name = displayName(sequence);
        if (!rows[0]!.present && !blocked.has(name))
          blocked.set(name, {
            table: name,
            schema: sequence.schema,
            name: sequence.name,
            blocked: `the sequence does not exist on ${job.config.fanOut ? `target ${view.target}` : 'the secondary'}: create it there first (schema.diff prints the statement), then run schema.add_tables again`,
          });
      }
    });
  }
  return {
    addable: unrecorded.map(displayName).filter((name) => !blocked.has(name)),
    blocked: [...blocked.values()],
  };
}

/** The sequences ("schema.name") the job's relgroups hold. */
export async function recordedSequences(metadata: Client, job: Job): Promise<Set<string>> {
  const { rows } = await metadata.query<{ name: string }>(
    `SELECT g.schemaname || '.' || g.tablename AS name FROM bucardo.herdmap h
       JOIN bucardo.goat g ON g.id = h.goat WHERE h.herd = ANY($1) AND g.reltype = 'sequence'`,
    [jobSyncs(job).map((s) => s.relgroup)],
  );
  return new Set(rows.map((row) => row.name));
}

/** `bucardo add sequence` into the first sync's relgroup, as bucardo.install records sequences. */
async function recordSequences(ctx: CommandContext, sequences: string[]): Promise<string[]> {
  const { job, activity } = ctx;
  const relgroup = jobSyncs(job)[0]!.relgroup;
  await runBucardo(
    job,
    [
      'add',
      'sequence',
      ...sequences.map((s) => bucardoRelationName(s.slice(0, s.indexOf('.')), s.slice(s.indexOf('.') + 1))),
      `db=${job.bucardoDbName.primary}`,
      `relgroup=${relgroup}`,
    ],
    { activity },
  );
  return [`recorded the sequence(s) ${sequences.join(', ')} in relgroup ${relgroup}`];
}

const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;

/** How long a command waits for the daemon to apply what was recorded before its reload. */
const APPLY_WAIT_MS = 60_000;

/**
 * After a reload: kicks the job's syncs every 2 s until the given tables (every table by default) have
 * nothing pending. A kick that reaches a sync before its new worker is up is lost
 * (docs/how-bucardo-behaves.md §6), and with per-commit kick triggers nothing else kicks until the
 * application writes again: what changed before the reload would wait for that.
 */
export async function kickUntilApplied(ctx: CommandContext, tables?: string[]): Promise<string> {
  const { job, activity } = ctx;
  const started = Date.now();
  return withClient(job, { role: 'primary', activity }, async (primary) => {
    // Changes recorded from now on are the application's new ones, kicked by their own commits (or the
    // kicker): only the older ones are waited for, so a busy table does not keep this waiting.
    const { rows } = await primary.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const since = rows[0]!.now.getTime();
    for (;;) {
      const old = (await pendingChanges(primary, job.dbgroupName)).filter(
        (p) => (!tables || tables.includes(p.table)) && p.oldest && p.oldest.getTime() < since,
      );
      const total = old.reduce((sum, p) => sum + p.changes, 0);
      if (total === 0)
        return `the daemon applied what was recorded before the reload (${((Date.now() - started) / 1000).toFixed(1)} s)`;
      if (Date.now() - started > APPLY_WAIT_MS)
        return `changes recorded before the reload still pending after ${APPLY_WAIT_MS / 1000} s (${old.map((p) => p.table).join(', ')}): bucardo.status shows them draining`;
      ctx.progress(`changes recorded before the reload still pending (${total}); kicking the sync(s)`);
      await kickSync(job);
      await sleep(2000, activity.signal);
    }
  });
}

const copyRecordName = (batch: AddTablesJournal, sync: JobSync) => `schema-add-${batch.batch}.${sync.name}`;

/** The tables to add, each with its sync: the balancing of bucardo.syncs keeps the recorded ones where they are. */
async function planNewTables(
  ctx: CommandContext,
  options: AddTablesOptions,
): Promise<{ tables: AddTablesJournal['tables']; blocked: UnreplicatedTable[] }> {
  const { job, activity } = ctx;
  return withClient(job, { role: 'primary', activity }, (primary) =>
    withMetadata(
      job,
      async (metadata) => {
        const { missing, scope } = await unreplicatedOnEveryTarget(job, { primary, metadata }, activity);
        const wanted = missing.filter((t) => !options.only || options.only.includes(t.table));
        const addable = wanted.filter((t) => !t.blocked);
        const blocked = wanted.filter((t) => t.blocked);
        if (addable.length === 0) return { tables: [], blocked };
        const syncs = jobSyncs(job);
        const syncFor = new Map<string, string>();
        if (syncs.length === 1) addable.forEach((t) => syncFor.set(t.table, syncs[0]!.name));
        else {
          // Only the addable tables beside the recorded ones: a blocked table must not pull a group.
          const recorded = await recordedTableSyncs(metadata, job);
          const considered = scope.filter(
            (r) => recorded.has(displayName(r)) || addable.some((t) => t.table === displayName(r)),
          );
          const plan = await planSyncs(job, metadata, primary, considered);
          for (const [sync, tables] of plan.additions) for (const t of tables) syncFor.set(t, sync.name);
        }
        return {
          tables: addable.map((t) => ({ schema: t.schema, name: t.name, sync: syncFor.get(t.table)! })),
          blocked,
        };
      },
      activity,
    ),
  );
}

/**
 * unreplicatedTables on each target of the job (one, or every entry of databases.secondaries): a
 * table is blocked when it is on any target, with that target named, since the one sync applies each
 * change to every target at once.
 */
export async function unreplicatedOnEveryTarget(
  job: Job,
  clients: { primary: Client; metadata: Client },
  activity?: Activity,
): Promise<{ missing: UnreplicatedTable[]; scope: Relation[] }> {
  let found: { missing: UnreplicatedTable[]; scope: Relation[] } | undefined;
  for (const view of targetViews(job)) {
    const onView = await withClient(
      view,
      { role: 'secondary', ...(activity ? { activity } : {}) },
      (secondary) => unreplicatedTables(view, { ...clients, secondary }),
    );
    const named = (t: UnreplicatedTable): UnreplicatedTable =>
      t.blocked && job.config.fanOut ? { ...t, blocked: `on target ${view.target}: ${t.blocked}` } : t;
    if (!found) found = { missing: onView.missing.map(named), scope: onView.scope };
    else
      found.missing = found.missing.map((t) => {
        const there = onView.missing.find((o) => o.table === t.table);
        return !t.blocked && there?.blocked ? named(there) : t;
      });
  }
  return found!;
}

/** `bucardo add table` for the batch's tables not in their relgroup yet: no table is touched. */
async function recordInRelgroups(ctx: CommandContext, batch: AddTablesJournal): Promise<string[]> {
  const { job, activity } = ctx;
  const recorded = await withMetadata(job, (client) => recordedTableSyncs(client, job), activity);
  const steps: string[] = [];
  for (const sync of jobSyncs(job)) {
    const tables = batch.tables.filter((t) => t.sync === sync.name && !recorded.has(key(t)));
    if (tables.length === 0) continue;
    ctx.progress(`recording ${tables.length} table(s) in relgroup ${sync.relgroup}`);
    await runBucardo(
      job,
      [
        'add',
        'table',
        ...tables.map((t) => bucardoRelationName(t.schema, t.name)),
        `db=${job.bucardoDbName.primary}`,
        `relgroup=${sync.relgroup}`,
      ],
      { activity },
    );
    steps.push(`recorded ${tables.map(key).join(', ')} in relgroup ${sync.relgroup}`);
  }
  return steps;
}

/**
 * `bucardo validate` of each sync whose new tables lack triggers, in rounds: Bucardo's validate_sync
 * creates them on its own connection to the primary, whose lock_timeout (bucardo.lock_timeout, in the
 * recorded dbconn, docs/how-bucardo-behaves.md §8) bounds every lock wait; a busy table makes the whole
 * try roll back, and the next round tries again. On a cascade middle hop the new triggers then fire
 * ALWAYS (§9), set under the same bound. Returns the tables still waiting after the last round.
 */
async function addTriggersInRounds(
  ctx: CommandContext,
  batch: AddTablesJournal,
  syncs: JobSync[],
): Promise<TableFailure[]> {
  const { job, activity } = ctx;
  const { policy, setting } = lockRounds(job);
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (primary) => {
    let lacking = await tablesLackingTriggers(primary, job, batch);
    const failures = new Map<string, TableFailure>();
    await runRounds(policy, activity, {
      pending: () => lacking.length > 0,
      pausing: (round, pause) => ctx.progress(`round ${round} of trigger installation in ${pause / 1000} s`),
      round: async (round) => {
        for (const sync of syncs.filter((s) => lacking.some((t) => t.sync === s.name && t.missing))) {
          ctx.progress(`round ${round}: validating sync ${sync.name} (creates the new tables' triggers)`);
          try {
            await runBucardo(job, ['validate', sync.name], { activity, safeToStop: false });
          } catch (error) {
            if (activity.interrupted) throw new InterruptedError();
            if (!/lock timeout/i.test(errorMessage(error))) throw error;
            // Bucardo's validate waits on its own connection, bounded by the lock_timeout recorded in
            // the primary's dbconn; who held the lock is looked up now, for the operator.
            const busy = lacking.filter((l) => l.sync === sync.name);
            const waiting = await describeWaiting(
              primary,
              busy.map((t) => ({ key: key(t), schema: t.schema, table: t.name })),
              `its triggers could not be created within bucardo.lock_timeout (${job.config.bucardo.lockTimeoutMs} ms)`,
            );
            for (const failure of waiting) failures.set(failure.table, failure);
          }
        }
        for (const t of (await tablesLackingTriggers(primary, job, batch)).filter((l) => !l.missing)) {
          const clauses = t.modes.map(
            (m) => `${m.state === 'A' ? 'ENABLE ALWAYS' : 'ENABLE'} TRIGGER ${quoteIdent(m.trigger)}`,
          );
          const outcome = await lockBoundedDdl(
            primary,
            [`ALTER TABLE ${quoteQualified(t.schema, t.name)} ${clauses.join(', ')}`],
            {
              timeoutMs: policy.timeoutMs,
              activity,
              deadlockIsLockWait: true,
              target: { schema: t.schema, table: t.name },
            },
          );
          if (!outcome.done)
            failures.set(key(t), {
              table: key(t),
              error: `trigger mode not set within ${setting} (${policy.timeoutMs} ms)`,
              blockers: outcome.blockers,
            });
        }
        lacking = await tablesLackingTriggers(primary, job, batch);
        for (const failed of [...failures.keys()])
          if (!lacking.some((t) => key(t) === failed)) failures.delete(failed);
      },
    });
    return lacking.map(
      (t) => failures.get(key(t)) ?? { table: key(t), error: 'triggers not in place', blockers: [] },
    );
  });
}

interface TriggerNeed {
  schema: string;
  name: string;
  sync: string;
  /** A trigger is missing (validate creates it); else only modes are wrong. */
  missing: boolean;
  modes: { trigger: string; state: string }[];
}

async function tablesLackingTriggers(
  primary: Client,
  job: Job,
  batch: AddTablesJournal,
): Promise<TriggerNeed[]> {
  const present = groupByTable(await listTriggers(primary, jobTriggerNames(job)));
  const needs: TriggerNeed[] = [];
  for (const t of batch.tables) {
    const rows = present.get(key(t)) ?? [];
    const expected = expectedTriggers(job, t.sync);
    const missing = [...expected.keys()].some((name) => !rows.some((row) => row.trigger === name));
    const modes = rows
      .filter((row) => expected.has(row.trigger) && expected.get(row.trigger) !== row.enabled)
      .map((row) => ({ trigger: row.trigger, state: expected.get(row.trigger)! }));
    if (missing || modes.length) needs.push({ ...t, missing, modes });
  }
  return needs;
}
