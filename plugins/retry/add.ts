// retry.add_triggers: this job's triggers on every table in scope without ever blocking production
// for longer than retry.timeout. The sync is recorded first without touching a table (so no trigger
// can ever exist outside a recorded sync), then rounds of the per-table validate_sync add triggers
// table by table, each table committed on its own, skipping tables it cannot lock in time.
import { withClient, type Client } from '../../src/core/db.js';
import { describeWaiting, lockBoundedDdl, type TableFailure } from '../../src/core/ddl.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';
import { retryPolicy, RoundProgress, runRounds, type RoundsPolicy } from '../../src/core/rounds.js';
import { isDaemonRunning, reloadDaemon } from '../../src/core/bucardo/daemon.js';
import {
  metadataDatabaseExists,
  recordedDatabases,
  relgroupMembers,
  withMetadata,
} from '../../src/core/bucardo/metadata.js';
import { validateTriggers } from '../../src/core/bucardo/sync.js';
import { formatRoundEnd } from './format.js';
import { installedDefinition } from './function-store.js';
import { isPatched } from './patch.js';
import { ensureSync } from './sync-record.js';
import { triggerStates, type TriggerStates } from './table-state.js';
import { validateRound } from './validate-round.js';
import { jobSyncs, recordedSyncs, syncNames } from '../../src/core/bucardo/syncs.js';

export interface RetryRunData {
  tables: number;
  /** Tables already as wanted before this run. */
  alreadyDone: number;
  rounds: number;
  /** Tables still waiting after the last round, with who holds their locks. */
  waiting: TableFailure[];
  steps: string[];
  elapsedMs: number;
}

async function requirePrepared(job: Job, ctx: CommandContext): Promise<void> {
  const recorded =
    (await metadataDatabaseExists(job, ctx.activity)) &&
    (await withMetadata(job, recordedDatabases, ctx.activity)).some(
      (db) => db.name === job.bucardoDbName.primary,
    );
  if (!recorded)
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb} with the primary recorded). Run bucardo.install, then retry.install, then retry.add_triggers.`,
    );
  const definition = await withMetadata(job, installedDefinition, ctx.activity);
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
  const members = await withMetadata(
    job,
    async (client) =>
      (await Promise.all(jobSyncs(job).map((s) => relgroupMembers(client, s.relgroup)))).flat(),
    ctx.activity,
  );
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
  const policy = retryPolicy(job);
  const { settings } = policy;
  await requirePrepared(job, ctx);
  return withClient(job, { role: 'primary', login: 'schema_owner', activity }, async (primary) => {
    let states = await triggerStates(primary, job);
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
          states = await triggerStates(primary, job);
        }
        if (states.needMode.length) {
          await applyModes(primary, states, ctx, policy, progress);
          states = await triggerStates(primary, job);
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
  const recorded = await withMetadata(ctx.job, (client) => recordedSyncs(client, ctx.job));
  return [
    { name: `sync ${names.join(', ')} is recorded in Bucardo`, pass: recorded.length === names.length },
    ...(await validateTriggers(ctx)),
  ];
}
