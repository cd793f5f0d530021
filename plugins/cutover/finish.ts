// cutover.finish: the guided switch to the secondary; cutover.rollback: the same switch back to the
// primary over the way back (way-back.ts), run as the B→A job (src/core/bucardo/reverse.ts).
//   readiness check (a recent passing verify among it) → operator stops writes and confirms →
//   backlog drained → sequences advanced past the primary's → final check → replication stopped →
//   sync and triggers removed.
// Everything from the confirmation on is the write pause. Its length must not grow with the
// database, so the final check does not read every row again: it re-compares only the keys Bucardo
// recorded as changed since the last verify's horizon, plus row counts and sequences (final-check.ts;
// why that is enough: capture.ts and docs/cutover.md). Each step of the pause is timed and printed.
// Each finished step is recorded in the metadata database (cutover.finish_progress); a rerun after
// any interruption continues from there. Up to the final verify nothing is irreversible: if writes
// reach the primary after the confirmation (Bucardo's change capture shows them), the recorded
// steps are forgotten and the switch starts over. Stopping replication is the point of no return.
// With the way back, the reverse sync is created before the confirmation (the pause does not grow)
// and the daemon starts again after the switch, running only it.
import { sleep } from '../../src/core/activity.js';
import { runBucardo } from '../../src/core/bucardo/run.js';
import { dropTriggersInRounds, jobTriggerNames, listTriggers } from '../../src/core/bucardo/triggers.js';
import { withClient, type Client } from '../../src/core/db.js';
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import { dropBucardoSchema } from '../../src/core/bucardo/schema.js';
import type { Job } from '../../src/core/job.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import {
  daemonPid,
  kickSync,
  stopDaemon,
  stopSyncWorkers,
  syncLoaded,
} from '../../src/core/bucardo/daemon.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { metadataDatabaseExists, syncRow, withMetadata } from '../../src/core/bucardo/metadata.js';
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { collectReadiness, type ReadinessItem } from './check.js';
import {
  inFlightKeys,
  lastVerifyRun,
  markStep,
  readProgress,
  resetProgress,
  withRecords,
  type FinishProgress,
  type FinishStep,
} from './records.js';
import { holdIntact, releaseHold, type ChangeHorizon } from './compare/capture.js';
import { runFinalCheck, type FinalCheck } from './compare/final-check.js';
import { advanceSequences, compareSequences } from './compare/sequences.js';
import { cutoverSettings } from './settings.js';
import { recordVerify } from './verify.js';
import { runVerify } from './compare/engine.js';
import { backlog, describeWriters, describeWrites, openWriters, writesSince } from './writes.js';
import { setUpWayBack, startSyncsFromSecondary, wayBackExists } from './way-back.js';
import { chooseTarget, followExists, otherTargets, setUpFollow, switchedTarget } from './follow.js';
import { followJob } from '../../src/core/bucardo/follow.js';
import { FIXED_ROUNDS, lockRounds } from '../../src/core/rounds.js';
import { WriteStop } from './write-stop.js';

export interface FinishData {
  steps: string[];
  progress: FinishProgress;
  finished: boolean;
  readiness?: ReadinessItem[];
  verdict?: string;
  failed?: TableFailure[];
  /** The write pause: each step after the confirmation, timed (only the steps this run did). */
  pause: PauseReport;
  /** What the final check compared (absent when it was done in an earlier run, or fell back to a full verify). */
  finalCheck?: FinalCheck;
}

export interface PauseReport {
  steps: { step: string; seconds: number }[];
  /** From the confirmation to "writes may go to the secondary" (primary's clock), once finished. */
  seconds?: number;
}

class Steps {
  readonly lines: string[] = [];
  readonly pause: PauseReport = { steps: [] };
  constructor(private readonly ctx: CommandContext) {}
  say(line: string): void {
    this.lines.push(line);
    this.ctx.log(`  - ${line}`);
  }
  /** Runs one step of the write pause and records how long it took. */
  async timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await fn();
    } finally {
      this.pause.steps.push({ step, seconds: Math.round((Date.now() - started) / 100) / 10 });
    }
  }
  lastSeconds(): string {
    return `${this.pause.steps.at(-1)?.seconds ?? 0} s`;
  }
}

/** Runs of cutover.finish whose record tables are known to exist: later records skip that check. */
const recordsReady = new WeakSet<CommandContext>();

async function record<T>(job: Job, ctx: CommandContext, fn: (client: Client) => Promise<T>): Promise<T> {
  // Every step is recorded, several inside the write pause: after the first, on the command's shared
  // session (no look-up of the metadata database, no CREATE ... IF NOT EXISTS, no new connection).
  if (recordsReady.has(ctx)) return fn(await ctx.databases(job).metadata());
  const result = await withRecords(job, ctx.activity, async (client) => ({ value: await fn(client) }));
  if (result !== undefined) recordsReady.add(ctx);
  if (result === undefined)
    throw new OperatorError(
      `The metadata database ${job.metadataDb} of ${job.name} has gone: cutover.finish keeps its progress there. If bucardo.uninstall was run, replication is already gone; otherwise check databases.bucardo in the config.`,
    );
  return result.value;
}

async function primaryNow(job: Job, ctx: CommandContext): Promise<string> {
  const client = await ctx.databases(job).primary();
  return (
    await client.query<{ now: string }>(
      // ISO in UTC: the primary's DateStyle may print 02/12 day first, and the metadata server would read it month
      // first.
      `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS now`,
    )
  ).rows[0]!.now;
}

async function mark(
  job: Job,
  ctx: CommandContext,
  progress: FinishProgress,
  step: FinishStep,
  at?: string,
): Promise<void> {
  progress[step] = await record(job, ctx, (client) => markStep(client, job, step, at));
}

/** Writes since the confirmation, plus (once drained) anything pending again: either means writes did not stop. */
async function writesAfterConfirmation(
  job: Job,
  ctx: CommandContext,
  progress: FinishProgress,
): Promise<string | undefined> {
  // The command's shared session: asked several times inside the write pause.
  const client = await ctx.databases(job).primary();
  const writes = await writesSince(client, job.dbgroupName, progress.confirmed!);
  if (writes.length)
    return `${writes.reduce((sum, w) => sum + w.changes, 0)} change(s) by transactions started after ${progress.confirmed} (${describeWrites(writes)})`;
  const pending = progress.drained ? await backlog(client, job.dbgroupName) : 0;
  return pending ? `${pending} change(s) committed after the backlog was drained` : undefined;
}

async function drain(job: Job, ctx: CommandContext): Promise<number> {
  const settings = cutoverSettings(job.config);
  if (!daemonPid(job))
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} is not running, so the last changes cannot reach the secondary. Keep writes stopped, start it with bucardo.start, then run cutover.finish again.`,
    );
  const started = Date.now();
  let lastKick = 0;
  // One connection for the whole wait (closed by withClient whatever happens), not one per look.
  return withClient(job, { role: 'primary', activity: ctx.activity }, async (client) => {
    for (;;) {
      const pending = await backlog(client, job.dbgroupName);
      if (pending === 0) return Math.round((Date.now() - started) / 100) / 10;
      if (Date.now() - started > settings.drainTimeoutSeconds * 1000) {
        throw new OperatorError(
          `${pending} change(s) are still pending replication after ${settings.drainTimeoutSeconds} s (cutover.drain_timeout). Replication may be failing: look at bucardo.status and ${job.paths.logFile}. Keep writes stopped and run cutover.finish again to keep waiting; nothing after the confirmation has been done yet.`,
        );
      }
      if (Date.now() - lastKick > 5000) {
        // A kick costs one sync run; asking every few seconds is plenty while waiting.
        await kickSync(job);
        lastKick = Date.now();
      }
      ctx.progress(
        `waiting for replication to apply ${pending} pending change(s) (${Math.round((Date.now() - started) / 1000)} s)`,
      );
      await sleep(500, ctx.activity.signal);
    }
  });
}

interface TriggerRemoval {
  failed: TableFailure[];
  /** the bound each lock wait had, for the message */ limit: string;
}

async function removeTriggers(job: Job, ctx: CommandContext, steps: Steps): Promise<TriggerRemoval> {
  for (const name of syncNames(job)) {
    const sync = await withMetadata(job, (client) => syncRow(client, name), ctx.activity);
    if (!sync) continue;
    // Without the sync nothing (a daemon start, a validate) would put the triggers back.
    await runBucardo(job, ['remove', 'sync', name], { activity: ctx.activity });
    steps.say(`removed sync ${name} from Bucardo`);
  }
  const { policy, setting, retry } = lockRounds(job);
  const result = await withClient(
    job,
    { role: 'primary', login: 'schema_owner', activity: ctx.activity },
    (primary) =>
      dropTriggersInRounds(
        primary,
        job,
        ctx.activity,
        policy,
        ctx.progress,
        (rounds) => `could not be locked within ${setting} (${policy.timeoutMs} ms) in ${rounds} round(s)`,
      ),
  );
  const dropped = result.total - result.waiting.length;
  if (retry) {
    steps.say(
      `dropped this job's triggers on ${dropped} of ${result.total} table(s) in ${result.rounds} round(s) (the retry plugin's rounds: each lock wait at most retry.timeout)`,
    );
    return { failed: result.waiting, limit: `retry.timeout in each of ${result.rounds} round(s)` };
  }
  steps.say(
    `dropped this job's triggers on ${dropped} table(s) (each lock wait at most bucardo.lock_timeout, ${FIXED_ROUNDS} rounds)`,
  );
  return { failed: result.waiting, limit: `bucardo.lock_timeout in each of ${FIXED_ROUNDS} rounds` };
}

/**
 * The final check may compare only the keys changed since the last verify when that verify recorded
 * a horizon and Bucardo's change records have been kept whole since (capture.ts). A verify that
 * passed with keys in flight counts: those keys changed since its horizon, and the final check also
 * compares the ones it listed by name.
 */
async function changeCheckPossible(
  job: Job,
  ctx: CommandContext,
): Promise<{ horizon: ChangeHorizon; inFlight: Map<string, Record<string, string>[]> } | { why: string }> {
  const last = await record(job, ctx, (client) => lastVerifyRun(client, job));
  if (!last?.passed) return { why: 'no passing verify recorded' };
  if (!last.horizon)
    return { why: 'the last verify recorded no horizon (no change capture on the primary when it ran)' };
  const horizon = last.horizon;
  const hold = await withClient(job, { role: 'primary', activity: ctx.activity }, (client) =>
    holdIntact(client, job, horizon),
  );
  if (!hold.intact)
    return { why: `the change records since the last verify may be incomplete: ${hold.detail}` };
  const inFlight = last.clean ? new Map() : await record(job, ctx, (client) => inFlightKeys(client, last.id));
  return { horizon, inFlight };
}

async function secondaryAcceptsWrites(
  job: Job,
  ctx?: CommandContext,
): Promise<{ pass: boolean; detail: string }> {
  return withClient(
    job,
    { role: 'secondary', ...(ctx ? { activity: ctx.activity } : {}) },
    async (client) => {
      const { rows } = await client.query<{ recovery: boolean; read_only: string }>(
        "SELECT pg_is_in_recovery() AS recovery, current_setting('default_transaction_read_only') AS read_only",
      );
      const { recovery, read_only: readOnly } = rows[0]!;
      if (recovery)
        return {
          pass: false,
          detail: 'the secondary is a standby in recovery: it cannot take writes until promoted',
        };
      if (readOnly === 'on')
        return {
          pass: false,
          detail:
            'default_transaction_read_only is on for the secondary database: turn it off before pointing writes at it',
        };
      return { pass: true, detail: 'not in recovery, not read-only' };
    },
  );
}

/** The words of one direction: where writes stop, where they go, and the command that does it. */
interface Direction {
  command: 'cutover.finish' | 'cutover.rollback';
  from: string;
  to: string;
}
const FORWARD: Direction = { command: 'cutover.finish', from: 'the primary', to: 'the secondary' };
const BACKWARD: Direction = { command: 'cutover.rollback', from: 'the secondary (B)', to: 'the primary (A)' };

export async function finish(ctx: CommandContext): Promise<CommandOutcome<FinishData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // A fan-out job switches to the target --target names (follow.ts): every step below acts on it.
  const target = await chooseTarget(ctx);
  const writeStop = await WriteStop.prepare(ctx, target, reverseJob(target), 'finish');
  return WriteStop.around(writeStop, () => switchOver(ctx, target, FORWARD, writeStop));
}

/** cutover.rollback: only after the forward cutover finished with the way back set up. */
export async function rollback(ctx: CommandContext): Promise<CommandOutcome<FinishData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // A fan-out job rolls back from the target its cutover switched to.
  const job = await switchedTarget(ctx);
  const forward = (await metadataDatabaseExists(job, ctx.activity))
    ? await withRecords(job, ctx.activity, (client) => readProgress(client, job))
    : undefined;
  const reverse = reverseJob(job);
  const back = forward?.finished
    ? await withRecords(reverse, ctx.activity, (client) => readProgress(client, reverse))
    : undefined;
  if (!forward?.finished || (!back?.confirmed && !(await wayBackExists(job, ctx.activity))))
    throw new OperatorError(
      forward?.finished
        ? `There is no way back for ${job.name}: cutover.finish ran without --way-back (or cutover.release removed it), so nothing carried the secondary's writes to the primary since the switch. Nothing was changed; the primary lacks those writes, so returning to it needs a new migration from the secondary.`
        : `cutover.rollback returns writes to the primary after cutover.finish --way-back switched them to the secondary, and the cutover of ${job.name} has not finished. Nothing was changed; to call a cutover off before its end, let writes resume on the primary.`,
    );
  const writeStop = await WriteStop.prepare(ctx, reverse, job, 'rollback');
  return WriteStop.around(writeStop, () => switchOver(ctx, reverse, BACKWARD, writeStop));
}

async function switchOver(
  ctx: CommandContext,
  job: Job,
  words: Direction,
  writeStop: WriteStop,
): Promise<CommandOutcome<FinishData>> {
  const forward = words === FORWARD;
  if (!(await metadataDatabaseExists(job, ctx.activity)))
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb}), so there is no replication to finish. Set it up with bucardo.install, bucardo.add_triggers and bucardo.start.`,
    );
  const settings = cutoverSettings(job.config);
  const steps = new Steps(ctx);
  let progress = await record(job, ctx, (client) => readProgress(client, job));
  let finalCheck: FinalCheck | undefined;
  const data = (extra: Partial<FinishData> = {}): FinishData => ({
    steps: steps.lines,
    progress,
    finished: Boolean(progress.finished),
    pause: steps.pause,
    ...(finalCheck ? { finalCheck } : {}),
    ...extra,
  });

  if (progress.finished) {
    return {
      data: data(),
      message: forward
        ? `The cutover of ${job.name} already finished at ${progress.finished}: replication to the secondary is stopped and its triggers are gone. The secondary takes the writes.`
        : `The rollback of ${ctx.job.name} already finished at ${progress.finished}: the way back is stopped and its triggers are gone. The primary (A) takes the writes.`,
    };
  }

  // The way back is created before the confirmation, so that its trigger installation is not part
  // of the write pause. A rerun continues it (wayBackExists), with or without the flag.
  const wayBack =
    forward && (ctx.options.flag('way-back') || settings.wayBack || (await wayBackExists(job, ctx.activity)));
  if (wayBack) for (const line of await setUpWayBack(job, ctx)) steps.say(line);
  // The other targets of a fan-out job (cutover.others: follow): B's triggers for them are in place
  // before the pause too, and they must hold exactly what B holds at the switch (checked below).
  const follow = forward ? followJob(job) : undefined;
  const following = follow !== undefined && settings.others === 'follow';
  if (following) for (const line of await setUpFollow(job, follow, ctx)) steps.say(line);
  const followers = following ? otherTargets(job) : [];

  if (progress.replication_stopped) {
    steps.say(
      `continuing: replication was stopped at ${progress.replication_stopped}; what is left is removing its triggers`,
    );
  } else if (progress.confirmed) {
    const writes = await writesAfterConfirmation(job, ctx, progress);
    if (writes) {
      await record(job, ctx, (client) => resetProgress(client, job));
      progress = {};
      steps.say(`the earlier run's confirmation no longer holds: ${writes}. Starting over`);
    } else {
      steps.say(
        `continuing the run that began at ${progress.confirmed}: nothing was written to the replicated tables since writes stopped`,
      );
    }
  }

  // Read before the confirmation when there is one to come: everything after it is the write pause.
  const scope = await withClient(job, { role: 'primary', activity: ctx.activity }, (client) =>
    findReplicationObjects(client, job.config.bucardo.replicationObjects),
  );
  if (!progress.confirmed) {
    ctx.progress('checking readiness');
    const readiness = await collectReadiness(job, ctx.activity);
    if (!readiness.ready) {
      const failing = readiness.items.filter((i) => !i.pass);
      for (const item of failing)
        ctx.log(`  FAIL ${item.item}: ${item.detail}${item.fix ? `\n       fix: ${item.fix}` : ''}`);
      return {
        ok: false,
        data: data({ readiness: readiness.items }),
        message: `Not ready for cutover: ${failing.length} check(s) fail (listed above; cutover.check shows them all). Nothing was changed.`,
      };
    }
    steps.say(`readiness: all ${readiness.items.length} checks pass`);
    // With a pooler the tool stops the writes itself (writeStop.stopWrites below).
    if (!writeStop.pausesWrites && !ctx.options.flag('writes-stopped')) {
      if (!ctx.prompt.interactive) {
        throw new OperatorError(
          `${words.command} switches production to ${words.to}, and that is only safe once nothing writes to ${words.from} any more. Stop every writer (application, jobs, cron) first; in list mode, say you did with the argument: -l "${words.command} --writes-stopped". Nothing was changed.`,
        );
      }
      ctx.log(
        `  Stop every write to ${words.from} now (application servers, background jobs, cron); reads may go on.`,
      );
      const stopped = await ctx.prompt.confirm(`Have all writes to ${words.from} stopped?`, false);
      if (!stopped)
        return {
          ok: false,
          data: data(),
          message: `${forward ? 'Cutover' : 'Rollback'} not started: writes to ${words.from} have not stopped. Nothing was changed; run ${words.command} again once they have.`,
        };
    }
    await writeStop.stopWrites((line) => steps.say(line));
    const at = await primaryNow(job, ctx);
    await mark(job, ctx, progress, 'confirmed', at);
    steps.say(`writes to ${words.from} stopped (confirmed at ${at}, ${words.from}'s clock)`);
  } else if (!progress.replication_stopped) {
    await writeStop.stopWrites((line) => steps.say(line));
  }

  if (!progress.drained) {
    ctx.progress('kicking replication and waiting for the backlog to drain');
    const seconds = await steps.timed('drain', () => drain(job, ctx));
    await mark(job, ctx, progress, 'drained');
    steps.say(`replication caught up: nothing pending (waited ${seconds} s)`);
  }

  const advance = () =>
    withClient(job, { role: 'primary', activity: ctx.activity }, (primary) =>
      withClient(job, { role: 'secondary', activity: ctx.activity }, (secondary) =>
        advanceSequences(primary, secondary, scope.sequences, settings.sequenceMargin),
      ),
    );
  const advanceFollowers = async () => {
    for (const other of followers)
      await withClient(job, { role: 'primary', activity: ctx.activity }, (primary) =>
        withClient(other, { role: 'secondary', activity: ctx.activity }, (secondary) =>
          advanceSequences(primary, secondary, scope.sequences, settings.sequenceMargin),
        ),
      );
  };
  if (!progress.sequences) {
    ctx.progress("advancing the secondary's sequences");
    const changes = await steps.timed('sequences', advance);
    if (followers.length) await steps.timed('sequences of the followers', advanceFollowers);
    await mark(job, ctx, progress, 'sequences');
    steps.say(
      `sequences: ${changes.length} of ${scope.sequences.length} set on the secondary to ${settings.sequenceMargin} increment(s) past the primary's${
        changes.length
          ? ` (${changes
              .slice(0, 5)
              .map((c) => `${c.sequence} ${c.from} → ${c.to}`)
              .join(', ')}${changes.length > 5 ? ', ...' : ''})`
          : ''
      } (${steps.lastSeconds()})`,
    );
  }

  if (!progress.verified) {
    // The chosen target, then each target that will follow it: all must hold what the primary holds.
    for (const target of [job, ...followers]) {
      const label =
        target === job
          ? job.config.fanOut
            ? ` (target ${job.target})`
            : ''
          : ` (follower ${target.target})`;
      const quick = ctx.options.flag('full-verify')
        ? { why: 'asked for with --full-verify' }
        : await changeCheckPossible(target, ctx);
      if ('horizon' in quick) {
        const check = await steps.timed(`final check${label}`, () =>
          runFinalCheck(target, quick.horizon, {
            settings,
            verifyInFlight: quick.inFlight,
            activity: ctx.activity,
            progress: (text) => ctx.progress(`final check: ${text}`),
          }),
        );
        finalCheck = check;
        if (!check.passed) {
          return {
            ok: false,
            data: data({ verdict: check.verdict }),
            message: `The final check${label} failed: ${check.verdict} Replication is still running and nothing is switched. Find and repair the differences (cutover.verify names them, cutover.repair re-applies them), then run cutover.finish again with writes still stopped; or let writes resume on the primary to call the cutover off.`,
          };
        }
        steps.say(
          `final check${label}: ${check.verdict} Changes since ${check.from ?? 'the hold began'} (${quick.horizon.reason}); ${steps.lastSeconds()}`,
        );
      } else {
        steps.say(`final check${label}: a full strict verify (${quick.why})`);
        const verify = await steps.timed(`final verify (full)${label}`, () =>
          runVerify(target, {
            settings,
            strict: true,
            activity: ctx.activity,
            progress: (text) => ctx.progress(`final verify: ${text}`),
          }),
        );
        await recordVerify(target, verify, ctx.activity);
        if (!verify.passed) {
          return {
            ok: false,
            data: data({ verdict: verify.verdict }),
            message: `The final verify${label} failed: ${verify.verdict} Replication is still running and nothing is switched. Repair the differences (cutover.verify lists them with their keys) and run cutover.finish again with writes still stopped, or let writes resume on the primary to call the cutover off.`,
          };
        }
        steps.say(`final verify${label}: ${verify.verdict} (${steps.lastSeconds()})`);
      }
    }
    await mark(job, ctx, progress, 'verified');
  }

  if (!progress.replication_stopped) {
    const { writes, writers } = await steps.timed('late-write checks', async () => {
      const late = await writesAfterConfirmation(job, ctx, progress);
      // The last moment a late commit can still be carried across: after the stop it would be lost.
      return {
        writes: late,
        writers: late ? [] : await openWriters(await ctx.databases(job).primary(), scope.tables),
      };
    });
    if (writes) {
      await record(job, ctx, (client) => resetProgress(client, job));
      throw new OperatorError(
        `Writes reached the primary after you confirmed they had stopped: ${writes}. The cutover was called off before anything irreversible: replication is still running. Stop every writer, then run cutover.finish again (it starts over).`,
      );
    }
    if (writers.length) {
      throw new OperatorError(
        `${writers.length} transaction(s) on the primary are open and may change a replicated table: ${describeWriters(writers)}. If one commits after replication stops, its changes never reach the secondary, so replication was not stopped. End them (commit or roll back; pg_terminate_backend(pid) for a session, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one), then run cutover.finish again. Replication is still running: after a rollback the run continues; a commit is carried across, and if it is not across yet when you rerun, the cutover starts over with a new confirmation.`,
      );
    }
    if (writeStop.switches)
      await steps.timed('switch', () => writeStop.switchWrites((line) => steps.say(line)));
    // For good, but without waiting for the daemon's own exit (its cleanup sleeps): below, after RESUME.
    const stopped = await steps.timed('stop replication', () => stopSyncWorkers(job, ctx));
    await mark(job, ctx, progress, 'replication_stopped');
    steps.say(`replication stopped: ${stopped.steps.join('; ')} (${steps.lastSeconds()})`);
    // A last sync run may have copied a sequence value over the margin; setting it again is harmless.
    const again = await advance();
    if (again.length)
      steps.say(
        `sequences set again after the last sync run: ${again.map((c) => `${c.sequence} → ${c.to}`).join(', ')}`,
      );
  }

  if (!progress.triggers_removed) {
    const writes = await writesAfterConfirmation(job, ctx, progress);
    if (writes) {
      // Replication is stopped: these changes are on the primary only. Start over once they are carried across.
      await record(job, ctx, (client) => resetProgress(client, job));
      throw new OperatorError(
        `Writes reached the primary after you confirmed they had stopped: ${writes}. Replication is already stopped, so these rows are NOT on the secondary; the triggers were kept, so they are recorded. Stop every writer, start replication again with bucardo.start so it carries them across, then run cutover.finish again (it starts over).`,
      );
    }
    // Replication is stopped for good: the application may go on, on the new side, while the triggers go.
    await writeStop.resumeWrites((line) => steps.say(line));
    // The daemon's exit after the syncs stopped in this run, or one still up after an earlier run.
    if (daemonPid(job) !== undefined || steps.pause.steps.some((p) => p.step === 'stop replication')) {
      const daemon = await steps.timed('stop the daemon', () => stopDaemon(job, ctx));
      steps.say(`the daemon stopped: ${daemon.steps.join('; ')} (${steps.lastSeconds()})`);
    }
    const { failed, limit } = await steps.timed('remove triggers', () => removeTriggers(job, ctx, steps));
    if (failed.length) {
      ctx.log(formatFailures(failed).join('\n'));
      return {
        ok: false,
        data: data({ failed }),
        message: `${failed.length} table(s) still carry this job's triggers: each stayed locked longer than ${limit} (listed above, with the sessions holding locks that were found). Replication is stopped: end those sessions or wait for them, then run cutover.finish again to retry.`,
      };
    }
    await mark(job, ctx, progress, 'triggers_removed');
  }

  await writeStop.resumeWrites((line) => steps.say(line));
  const writable = await secondaryAcceptsWrites(job, ctx);
  await mark(job, ctx, progress, 'finished');
  const secondary = job.config.databases.secondary;
  steps.say(
    writable.pass ? `the secondary accepts writes (${writable.detail})` : `WARNING: ${writable.detail}`,
  );
  steps.pause.seconds = await withClient(
    job,
    { role: 'primary', activity: ctx.activity },
    async (client) =>
      Math.round(
        Number(
          (
            await client.query<{ s: string }>(
              'SELECT extract(epoch FROM now() - $1::timestamptz)::text AS s',
              [progress.confirmed],
            )
          ).rows[0]!.s,
        ) * 10,
      ) / 10,
  );
  const timedSteps = steps.pause.steps.map((p) => `${p.step} ${p.seconds} s`);
  // What no step accounts for: recording each step, connections, the checks between steps (or the time between runs).
  const other =
    Math.round((steps.pause.seconds - steps.pause.steps.reduce((sum, p) => sum + p.seconds, 0)) * 10) / 10;
  if (timedSteps.length) timedSteps.push(`the rest ${other} s`);
  steps.say(
    `write pause: ${steps.pause.seconds} s from the confirmation to now (${timedSteps.join(', ') || 'steps done in earlier runs'})`,
  );
  // The change records kept for the final check are no use any more.
  await withClient(job, { role: 'primary', activity: ctx.activity }, (client) =>
    releaseHold(client, job.syncName),
  ).catch(() => undefined);
  steps.say(`writes may go to ${words.to}`);
  // After the pause: B's triggers record every write from now on, whenever the daemon is up.
  const fromB = [...(wayBack ? [reverseJob(job)] : []), ...(following ? [follow] : [])];
  if (fromB.length) for (const line of await startSyncsFromSecondary(job, fromB, ctx)) steps.say(line);
  if (forward && follow && !following)
    steps.say(
      `cutover.others is stop: ${otherTargets(job)
        .map((t) => t.target)
        .join(', ')} keep what they held at the switch and get nothing more`,
    );
  else if (following)
    steps.say(
      `${followers.map((t) => t.target).join(', ')} follow${followers.length === 1 ? 's' : ''} ${job.target}: sync ${follow.syncName} carries its writes to them`,
    );
  if (!forward) {
    // The way back was the last sync from B: the schema Bucardo made there goes too (kept while any
    // Bucardo trigger, a fan-out's followers' for one, still uses it).
    const schema = await withClient(
      job,
      { role: 'primary', login: 'schema_owner', activity: ctx.activity },
      (client) => dropBucardoSchema(client, job, 'the secondary'),
    ).catch((error: unknown) => `the bucardo schema on the secondary was left: ${errorMessage(error)}`);
    steps.say(schema);
    const primary = job.config.databases.secondary;
    return {
      data: data(),
      message: `Rollback finished: the way back is stopped, its triggers are gone from the secondary, and the primary (${primary.dbname} on ${primary.host}:${primary.port}) holds every write the secondary took. Point the writers back at it, and lift whatever kept the application from writing to it.`,
    };
  }
  if (wayBack) {
    const secondary = job.config.databases.secondary;
    return {
      data: data(),
      message: `Cutover finished: the secondary (${secondary.dbname} on ${secondary.host}:${secondary.port}) holds the primary's data; point the writers at it. The way back runs: sync ${reverseJob(job).syncName} carries the secondary's writes to the primary, which the application must not write to (docs/cutover.md). cutover.rollback returns to the primary; cutover.release removes the way back.`,
    };
  }
  return {
    data: data(),
    message: `Cutover finished: replication is stopped, its triggers are gone, and the secondary (${secondary.dbname} on ${secondary.host}:${secondary.port}) holds the primary's data. Point the writers at it. Bucardo's metadata and the bucardo schema on the primary remain until bucardo.uninstall.`,
  };
}

export async function validateFinish(ctx: CommandContext): Promise<Check[]> {
  return validateSwitch(await switchedTarget(ctx), true);
}

export async function validateRollback(ctx: CommandContext): Promise<Check[]> {
  return validateSwitch(reverseJob(await switchedTarget(ctx)), false);
}

async function validateSwitch(job: Job, forward: boolean): Promise<Check[]> {
  const words = forward ? FORWARD : BACKWARD;
  const wayBack = forward && (await wayBackExists(job));
  const progress = await withRecords(job, undefined, (client) => readProgress(client, job));
  const triggers = await withClient(job, { role: 'primary' }, (client) =>
    listTriggers(client, jobTriggerNames(job)),
  );
  const scope = await withClient(job, { role: 'primary' }, (client) =>
    findReplicationObjects(client, job.config.bucardo.replicationObjects),
  );
  const sequences = await withClient(job, { role: 'primary' }, (primary) =>
    withClient(job, { role: 'secondary' }, (secondary) =>
      compareSequences(primary, secondary, scope.sequences),
    ),
  );
  const behind = sequences.filter((q) => q.status !== 'ahead' && q.status !== 'match');
  const writable = await secondaryAcceptsWrites(job);
  const pid = daemonPid(job);
  const reverse = reverseJob(job);
  // A fan-out job's followers: the daemon runs their sync after the switch (cutover.others: follow).
  const follow = forward ? followJob(job) : undefined;
  const following = follow !== undefined && (await followExists(job));
  return [
    {
      name: `${forward ? 'cutover' : 'rollback'} recorded as finished`,
      pass: Boolean(progress?.finished),
      detail: progress?.finished ?? 'not finished',
    },
    wayBack
      ? {
          name: `the daemon runs the way back (sync ${reverse.syncName})`,
          pass: pid !== undefined && syncLoaded(reverse),
          detail: pid ? `pid ${pid}${syncLoaded(reverse) ? '' : ', sync not loaded'}` : 'no daemon',
        }
      : following
        ? {
            name: `the daemon runs the followers' sync ${follow.syncName}`,
            pass: pid !== undefined && syncLoaded(follow),
            detail: pid ? `pid ${pid}${syncLoaded(follow) ? '' : ', sync not loaded'}` : 'no daemon',
          }
        : {
            name: 'no Bucardo daemon running for this job',
            pass: pid === undefined,
            ...(pid ? { detail: `pid ${pid}` } : {}),
          },
    {
      name: `no trigger of this ${forward ? 'job' : 'way back'} left on ${words.from}`,
      pass: triggers.length === 0,
      ...(triggers.length
        ? {
            detail: triggers
              .slice(0, 5)
              .map((t) => `${t.schema}.${t.table}:${t.trigger}`)
              .join(', '),
          }
        : {}),
    },
    {
      name: `every sequence on ${words.to} at or past ${words.from}'s`,
      pass: behind.length === 0,
      detail: behind.length
        ? behind.map((q) => `${q.sequence} ${q.status}`).join(', ')
        : `${sequences.length} sequence(s)`,
    },
    { name: `${words.to} accepts writes`, pass: writable.pass, detail: writable.detail },
  ];
}
