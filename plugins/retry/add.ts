// retry.add_triggers: this job's triggers on every table in scope without ever blocking production
// for longer than retry.timeout. The sync is recorded first without touching a table (so no trigger
// can ever exist outside a recorded sync), then rounds of the per-table validate_sync add triggers
// table by table, each table committed on its own, skipping tables it cannot lock in time.
import { requireCommitFence } from '../../src/core/bucardo/commit-fence.js';
import { runBucardo } from '../../src/core/bucardo/run.js';
import { isDaemonRunning, reloadDaemon } from '../../src/core/bucardo/daemon.js';
import {
  metadataDatabaseExists,
  recordedDatabases,
  relgroupMembers,
  syncRow,
  type SyncRow,
} from '../../src/core/bucardo/metadata.js';
import {
  addSyncArguments,
  copyOverwriteRisk,
  explainSyncFailure,
  triggerChecks,
} from '../../src/core/bucardo/sync.js';
import { readJobRecords, ensureDbgroup, refuseSharedRecords } from '../../src/core/bucardo/records.js';
import {
  jobSyncs,
  type JobSync,
  recordedSyncs,
  syncCount,
  syncNames,
  tablesBySync,
} from '../../src/core/bucardo/syncs.js';
import {
  expectedTriggers,
  groupByTable,
  jobTriggerNames,
  listTriggers,
} from '../../src/core/bucardo/triggers.js';
import { confirmOrRefuse, type DatabaseContext } from '../../src/core/context.js';
import { type Client, withClient } from '../../src/core/db.js';
import { describeWaiting, lockBoundedDdl } from '../../src/core/ddl.js';
import { errorMessage, InterruptedError, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { displayName, findReplicationObjects } from '../../src/core/objects.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';
import { RoundProgress, type RoundsPolicy, runRounds } from '../../src/core/rounds.js';
import { formatRoundEnd, type RetryRunData } from './format.js';
import { retryPolicy, type RetrySettings } from './settings.js';
import { APPLICATION_PREFIX, installedDefinition, isPatched, NOTICE_PREFIX } from './validate-sync.js';

async function requirePrepared(job: Job, ctx: CommandContext): Promise<void> {
  const recorded =
    (await metadataDatabaseExists(ctx.db, ctx.activity)) &&
    (await recordedDatabases(await ctx.db.metadata())).some((db) => db.name === job.bucardoDbName.primary);
  if (!recorded)
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb} with the primary recorded). Run bucardo.install, then retry.install, then retry.add_triggers.`,
    );
  const definition = await installedDefinition(await ctx.db.metadata());
  if (!isPatched(definition)) {
    throw new OperatorError(
      `retry.install has not been run for the metadata database ${job.metadataDb}: its validate_sync is Bucardo's stock one, which locks every table in one transaction. Run retry.install, then retry.add_triggers again.`,
    );
  }
}

async function requireRecordedScope(job: Job, states: TriggerStates, ctx: CommandContext): Promise<void> {
  if (states.tables.length === 0) {
    throw new OperatorError(
      `No table on the primary matches bucardo.replication_objects, so there is nothing to put triggers on. Check namespace_include / table_include (names are case-sensitive) and databases.primary.dbname.`,
    );
  }
  const metadata = await ctx.db.metadata();
  const members = (await Promise.all(jobSyncs(job).map((s) => relgroupMembers(metadata, s.relgroup)))).flat();
  const recorded = new Set(members.filter((m) => m.reltype === 'table').map((m) => `${m.schema}.${m.name}`));
  const missing = states.tables.filter((t) => !recorded.has(t.key)).map((t) => t.key);
  if (missing.length) {
    throw new OperatorError(
      `${missing.length} table(s) in scope are not recorded in Bucardo's relgroup ${jobSyncs(job)
        .map((s) => s.relgroup)
        .join(
          ', ',
        )} (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}): they came into scope after bucardo.install. Run bucardo.install again (it records only what is missing), then retry.add_triggers.`,
    );
  }
}

/** ENABLE [ALWAYS] TRIGGER for tables whose triggers fire in the wrong mode (bucardo.add_triggers' policy). */
async function applyModes(
  primary: Client,
  states: TriggerStates,
  ctx: CommandContext,
  policy: RoundsPolicy,
  progress: RoundProgress,
): Promise<void> {
  for (const change of states.needMode) {
    ctx.activity.throwIfInterrupted();
    const clauses = change.triggers.map(
      (t) => `${t.state === 'A' ? 'ENABLE ALWAYS' : 'ENABLE'} TRIGGER ${quoteIdent(t.trigger)}`,
    );
    const outcome = await lockBoundedDdl(
      primary,
      [`ALTER TABLE ${quoteQualified(change.schema, change.table)} ${clauses.join(', ')}`],
      { timeoutMs: policy.timeoutMs, activity: ctx.activity, deadlockIsLockWait: true },
    );
    if (outcome.done) progress.markReady(change.key);
    else progress.markWaiting(change.key);
  }
}

const pendingCount = (states: TriggerStates) => states.needTriggers.length + states.needMode.length;

export async function addTriggers(ctx: CommandContext): Promise<CommandOutcome<RetryRunData>> {
  const { job, activity } = ctx;
  const started = Date.now();
  const policy = retryPolicy(job.config);
  const { settings } = policy;
  const records = await readJobRecords(ctx.db, activity);
  await requirePrepared(job, ctx);
  if (records) refuseSharedRecords(job, records, 'retry.add_triggers');
  // A session of its own: applyModes runs lock-bounded DDL transactions (SET LOCAL lock_timeout) on it.
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (primary) => {
    let states = await triggerStates(primary, ctx.db);
    await requireRecordedScope(job, states, ctx);
    const steps = await ensureSync(job, ctx);
    const total = states.tables.length;
    const alreadyDone = states.ready.length;
    if (pendingCount(states) === 0 && steps.length === 0) {
      return {
        data: { tables: total, alreadyDone, rounds: 0, waiting: [], steps, elapsedMs: Date.now() - started },
        message: `Nothing to do: all ${total} tables already carry this job's triggers.`,
      };
    }
    const progress = new RoundProgress(total, 'ready', ctx.progress);
    const inScope = new Set(states.tables.map((t) => t.key));
    const startRound = (round: number) => {
      progress.round = round;
      progress.reset(
        states.ready.map((t) => t.key),
        round > 1 ? [...states.needTriggers, ...states.needMode].map((t) => t.key) : [],
      );
    };
    await runRounds(policy, activity, {
      pending: () => pendingCount(states) > 0,
      pausing: (round, pause) => {
        startRound(round);
        progress.show(` (starts in ${(pause / 1000).toFixed(1)} s)`);
      },
      round: async (round) => {
        startRound(round);
        progress.show();
        if (states.needTriggers.length) {
          // Only the syncs with tables left to do (bucardo.syncs), each in its own validate_sync.
          const syncs = syncNames(job).filter((name) => states.needTriggers.some((t) => t.sync === name));
          await validateRound(
            job,
            ctx,
            settings,
            (status, key) => {
              if (!inScope.has(key)) return;
              if (status === 'ready') progress.markReady(key);
              else if (status === 'waiting') progress.markWaiting(key);
            },
            syncs,
          );
          states = await triggerStates(primary, ctx.db);
        }
        if (states.needMode.length) {
          await applyModes(primary, states, ctx, policy, progress);
          states = await triggerStates(primary, ctx.db);
        }
        if (pendingCount(states) > 0 && round < settings.attempts) {
          // Named after every round, not only at the end: the operator can act on a blocker while we wait.
          const waiting = await describeWaiting(
            primary,
            [...states.needTriggers, ...states.needMode],
            `could not be locked within retry.timeout (${settings.timeoutMs} ms)`,
          );
          ctx.log(
            formatRoundEnd(
              { number: round, of: settings.attempts, ready: states.ready.length, total },
              waiting,
            ).join('\n'),
          );
        }
      },
    });
    const rounds = progress.round;
    if (rounds > 0)
      steps.push(
        `${total - alreadyDone - pendingCount(states)} table(s) got their triggers in ${rounds} round(s), ${alreadyDone} already had them`,
      );
    if (pendingCount(states) > 0) {
      const waiting = await describeWaiting(
        primary,
        [...states.needTriggers, ...states.needMode],
        `could not be locked within retry.timeout (${settings.timeoutMs} ms) in ${rounds} round(s)`,
      );
      return {
        ok: false,
        data: { tables: total, alreadyDone, rounds, waiting, steps, elapsedMs: Date.now() - started },
        message: `${waiting.length} of ${total} table(s) still lack their triggers: another session held their lock through every round (listed above with who holds it). Every other table is done, inside the recorded sync. Once those locks are released, run retry.add_triggers again: it continues from here.${isDaemonRunning(job) ? ' The running daemon was not reloaded: it would try to lock those tables itself.' : ''}`,
      };
    }
    // At once, while the new change tables are young: no sync run may mark changes applied before it.
    const fenced = await requireCommitFence(job, ctx);
    if (fenced) steps.push(fenced);
    if (isDaemonRunning(job)) {
      ctx.progress('reloading the running daemon so it picks up the sync');
      await reloadDaemon(job, ctx);
      steps.push('reloaded the running daemon and kicked the sync');
    }
    return {
      data: { tables: total, alreadyDone, rounds, waiting: [], steps, elapsedMs: Date.now() - started },
      message: `All ${total} tables carry this job's triggers.`,
    };
  });
}

export async function validateAddTriggers(ctx: CommandContext): Promise<Check[]> {
  const names = syncNames(ctx.job);
  const recorded = await recordedSyncs(await ctx.db.metadata(), ctx.job);
  return [
    { name: `sync ${names.join(', ')} is recorded in Bucardo`, pass: recorded.length === names.length },
    ...(await triggerChecks(ctx.db, ctx.activity)),
  ];
}

// Recording the sync for retry.add_triggers: the same `bucardo add sync` as bucardo.add_triggers, but
// in defer mode (validate-sync.ts), so the sync row is committed before any table gets a trigger.
/** Session options for a bucardo call that must record or change the sync without touching any table. */
function deferEnvironment(): Record<string, string> {
  return {
    PGOPTIONS: [process.env['PGOPTIONS'], '-c bucardo_console.retry_mode=defer'].filter(Boolean).join(' '),
  };
}

/** Records the job's syncs (or switches their kick triggers) in defer mode: no table is locked here. */
export async function ensureSync(job: Job, ctx: CommandContext): Promise<string[]> {
  const steps: string[] = [];
  const syncs = jobSyncs(job);
  const metadata = await ctx.db.metadata();
  const rows = await Promise.all(syncs.map((s) => syncRow(metadata, s.name)));
  try {
    if (rows.some((row) => !row)) {
      // copy_data always or parallel empties the secondary's tables: asked before the sync exists.
      const risk = await copyOverwriteRisk(job, ctx, 'retry.add_triggers');
      if (risk) steps.push(await confirmOrRefuse(ctx, risk, 'retry.add_triggers'));
    }
    if (rows.some((row) => !row)) {
      const dbgroup = await ensureDbgroup(job, ctx.activity, ctx.db);
      if (dbgroup) steps.push(dbgroup);
    }
    for (const [i, sync] of syncs.entries()) steps.push(...(await ensureOneSync(job, ctx, sync, rows[i])));
  } catch (error) {
    throw explainSyncFailure(error, job);
  }
  return steps;
}

async function ensureOneSync(
  job: Job,
  ctx: CommandContext,
  sync: JobSync,
  row: SyncRow | undefined,
): Promise<string[]> {
  const asynchronous = job.config.bucardo.asynchronousKicking;
  const options = { activity: ctx.activity, safeToStop: false, extraEnv: deferEnvironment() };
  if (!row) {
    ctx.progress(`recording sync ${sync.name} (no table is touched yet)`);
    await runBucardo(job, addSyncArguments(job, sync), options);
    const kicking = asynchronous ? 'no kick triggers: asynchronous kicking' : 'per-commit kick triggers';
    return [`recorded sync ${sync.name} (copy_data ${job.config.bucardo.copyData}, ${kicking})`];
  }
  if (row.autokick === asynchronous) {
    ctx.progress(`switching the kick triggers of ${sync.name} ${asynchronous ? 'off' : 'on'}`);
    await runBucardo(job, ['update', 'sync', sync.name, `autokick=${asynchronous ? 0 : 1}`], options);
    return [
      `sync ${sync.name}: kick triggers ${asynchronous ? 'to be removed (asynchronous kicking)' : 'to be added'}, table by table`,
    ];
  }
  return [];
}

// Where each table in scope stands with this job's triggers, read from pg_trigger on the primary:
// the ground truth every round starts from (a rerun picks up exactly where the last one stopped).
export interface TableRef {
  key: string;
  schema: string;
  table: string;
  /** The job's sync the table belongs to (bucardo.syncs). */
  sync?: string;
}

/** A table whose triggers exist but fire in the wrong mode (ENABLE ALWAYS on a cascade middle hop). */
export interface ModeChange extends TableRef {
  triggers: { trigger: string; state: string }[];
}

export interface TriggerStates {
  tables: TableRef[];
  ready: TableRef[];
  /** Missing a trigger, or carrying one the sync no longer wants (a kick trigger under asynchronous kicking). */
  needTriggers: TableRef[];
  needMode: ModeChange[];
}

/** Read on the primary session given (the command's own, schema owner); the relgroups on `db`'s metadata. */
export async function triggerStates(client: Client, db: DatabaseContext): Promise<TriggerStates> {
  const { job } = db;
  // With several syncs (bucardo.syncs) a table's kick and note-truncation triggers are its own sync's.
  const syncOf = new Map<string, string>();
  if (syncCount(job) > 1)
    for (const [sync, tables] of await tablesBySync(db)) for (const t of tables) syncOf.set(t, sync);
  const { tables: relations } = await findReplicationObjects(client, job.config.bucardo.replicationObjects);
  const present = groupByTable(await listTriggers(client, jobTriggerNames(job)));
  const states: TriggerStates = { tables: [], ready: [], needTriggers: [], needMode: [] };
  for (const relation of relations) {
    const key = displayName(relation);
    const ref = { key, schema: relation.schema, table: relation.name, sync: syncOf.get(key) ?? job.syncName };
    states.tables.push(ref);
    const rows = present.get(ref.key) ?? [];
    const expected = expectedTriggers(job, syncOf.get(ref.key) ?? job.syncName);
    const missing = [...expected.keys()].some((name) => !rows.some((row) => row.trigger === name));
    const unexpected = rows.some((row) => !expected.has(row.trigger));
    const wrongMode = rows.filter(
      (row) => expected.has(row.trigger) && expected.get(row.trigger) !== row.enabled,
    );
    if (missing || unexpected) states.needTriggers.push(ref);
    else if (wrongMode.length)
      states.needMode.push({
        ...ref,
        triggers: wrongMode.map((row) => ({ trigger: row.trigger, state: expected.get(row.trigger)! })),
      });
    else states.ready.push(ref);
  }
  return states;
}

// One round of the per-table validate_sync (see validate-sync.ts): called over SQL in the metadata database
// with this connection's session settings asking for per-table mode, reporting each table as it goes.
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
    // A session of its own: the cancel comes on Ctrl-C, while the command's sessions are being cancelled.
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
  // A session of its own: a notice listener and session settings (set_config(..., false)) live on it.
  await withClient(job, { role: 'bucardo', activity: ctx.activity }, async (client) => {
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
      const { rows } = await client.query<{ result: string }>('SELECT bucardo.validate_sync($1) AS result', [
        syncName,
      ]);
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
  });
}
