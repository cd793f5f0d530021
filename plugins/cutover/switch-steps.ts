// The steps of a switch (cutover.finish, cutover.rollback), each a function of the run (switch.ts).
// The tables that put them in order, with the points of the recorded progress each belongs to, are in
// finish.ts and rollback.ts; the runner in steps.ts. A step says what it did with run.say and ends
// the table early by returning { stop: outcome }; a refusal is an OperatorError.
import { sleep } from '../../src/core/activity.js';
import { runBucardo } from '../../src/core/bucardo/run.js';
import { dropTriggersInRounds } from '../../src/core/bucardo/triggers.js';
import { withClient } from '../../src/core/db.js';
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import { dropBucardoSchema } from '../../src/core/bucardo/schema.js';
import type { Job } from '../../src/core/job.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import { replaceTable } from '../../src/core/copy/engine.js';
import { quoteQualified } from '../../src/core/quote.js';
import type { Client } from '../../src/core/db.js';
import { daemonPid, kickSyncOn, stopDaemon, stopSyncWorkers } from '../../src/core/bucardo/daemon.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { syncRow } from '../../src/core/bucardo/metadata.js';
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { FIXED_ROUNDS, lockRounds } from '../../src/core/rounds.js';
import { collectReadiness } from './check.js';
import {
  holdIntact,
  releaseHold,
  type ChangeHorizon,
  runFinalCheck,
  openSides,
  advanceSequences,
  type SequenceChange,
  runVerify,
  runPreCheck,
} from './compare/index.js';
import { inFlightKeys, lastPreCheck, lastVerifyRun, resetProgress, savePreCheck } from './records.js';
import type { StepResult } from './steps.js';
import { secondaryAcceptsWrites, type FinishData, type SwitchRun } from './switch.js';
import { recordVerify } from './verify.js';
import { setUpWayBack, startSyncsFromSecondary } from './way-back.js';
import { otherTargets, setUpFollow } from './follow.js';
import { backlog, describeWriters, describeWrites, openWriters, writesSince } from './writes.js';

type Result = Promise<StepResult<FinishData> | void>;

/** How often the drain looks at the backlog. */
const DRAIN_LOOK_MS = 100;

/** Writes since the confirmation, plus (once drained) anything pending again: either means writes did not stop. */
async function writesAfterConfirmation(run: SwitchRun): Promise<string | undefined> {
  const client = await run.db.primary();
  const writes = await writesSince(client, run.job.dbgroupName, run.progress.confirmed!);
  if (writes.length)
    return `${writes.reduce((sum, w) => sum + w.changes, 0)} change(s) by transactions started after ${run.progress.confirmed} (${describeWrites(writes)})`;
  const pending = run.progress.drained ? await backlog(client, run.job.dbgroupName) : 0;
  return pending ? `${pending} change(s) committed after the backlog was drained` : undefined;
}

/** Forgets the recorded steps: the switch starts over with a new confirmation. */
async function startOver(run: SwitchRun): Promise<void> {
  await resetProgress(run.metadata, run.job);
  run.progress = {};
}

/**
 * Before the pause: the reverse sync B→A when asked for (--way-back, cutover.way_back) or set up by an
 * earlier run, so that its trigger installation is not part of the pause.
 */
export async function wayBack(run: SwitchRun): Result {
  const { ctx, job } = run;
  run.options.wayBack =
    ctx.options.flag('way-back') ||
    run.settings.wayBack ||
    Boolean(await syncRow(run.metadata, reverseJob(job).syncName));
  // The tables copied at the switch are checked before the way back is created: a refusal changes nothing.
  if (run.options.wayBack && run.settings.copyAtCutover.length && !run.progress.confirmed)
    await checkedTablesToCopy(run);
  if (run.options.wayBack) for (const line of await setUpWayBack(job, ctx)) run.say(line);
}

/** Before the pause: B's triggers for the other targets of a fan-out job (cutover.others: follow). */
export async function followers(run: SwitchRun): Result {
  for (const line of await setUpFollow(run.job, run.options.follow!, run.ctx)) run.say(line);
}

/** A rerun: does the earlier run's confirmation still hold (nothing written since)? */
export async function earlierRun(run: SwitchRun): Result {
  if (run.progress.replication_stopped) {
    run.say(
      `continuing: replication was stopped at ${run.progress.replication_stopped}; what is left is removing its triggers`,
    );
    return;
  }
  const writes = await writesAfterConfirmation(run);
  if (writes) {
    await startOver(run);
    run.say(`the earlier run's confirmation no longer holds: ${writes}. Starting over`);
  } else {
    run.say(
      `continuing the run that began at ${run.progress.confirmed}: nothing was written to the replicated tables since writes stopped`,
    );
  }
}

/** The tables and sequences in scope: read before the confirmation when there is one to come. */
export async function scope(run: SwitchRun): Result {
  run.scope = await findReplicationObjects(await run.db.primary(), run.job.config.bucardo.replicationObjects);
}

export async function readiness(run: SwitchRun): Result {
  run.ctx.progress('checking readiness');
  // Sessions of its own, closed after the list, not run.db: the run's session on the secondary must
  // open inside the pause (openSessions says why), and readiness asks the secondary too.
  const found = await collectReadiness(run.job, run.ctx.activity);
  if (!found.ready) {
    const failing = found.items.filter((i) => !i.pass);
    for (const item of failing)
      run.ctx.log(`  FAIL ${item.item}: ${item.detail}${item.fix ? `\n       fix: ${item.fix}` : ''}`);
    return {
      stop: {
        ok: false,
        data: run.data({ readiness: found.items }),
        message: `Not ready for ${run.words.command}: ${failing.length} check(s) fail (listed above; cutover.check shows them all). Nothing was changed.`,
      },
    };
  }
  run.say(`readiness: all ${found.items.length} checks pass`);
}

/** Without a pooler the operator stops the writes: asked, or said with --writes-stopped. */
export async function operatorConfirms(run: SwitchRun): Result {
  const { ctx, words } = run;
  if (run.writeStop.pausesWrites || ctx.options.flag('writes-stopped')) return;
  if (!ctx.prompt.interactive) {
    throw new OperatorError(
      `${words.command} switches production to ${words.to}, and that is only safe once nothing writes to ${words.from} any more. Stop every writer (application, jobs, cron) first; in list mode, say you did with the argument: -l "${words.command} --writes-stopped". Nothing was changed.`,
    );
  }
  ctx.log(
    `  Stop every write to ${words.from} now (application servers, background jobs, cron); reads may go on.`,
  );
  if (!(await ctx.prompt.confirm(`Have all writes to ${words.from} stopped?`, false)))
    return {
      stop: {
        ok: false,
        data: run.data(),
        message: `${run.forward ? 'Cutover' : 'Rollback'} not started: writes to ${words.from} have not stopped. Nothing was changed; run ${words.command} again once they have.`,
      },
    };
}

/**
 * Before the pause: the connection pairs of the final check, opened side by side (dedicated sessions:
 * its tables are compared in parallel, one pair each, up to cutover.jobs). Each connection costs tens
 * of milliseconds the application would otherwise wait for. The shared session on the secondary is
 * left to open inside the pause (the sequences step): that is the proof that the secondary still takes
 * new connections, as the pooler's and the application's will have to after the switch.
 */
export async function openSessions(run: SwitchRun): Result {
  if (run.ctx.options.flag('full-verify')) return;
  const pairs = Math.max(1, Math.min(run.settings.jobs, run.scope.tables.length));
  const opened = await Promise.allSettled(
    Array.from({ length: pairs }, () => openSides(run.job, run.ctx.activity)),
  );
  for (const pair of opened) if (pair.status === 'fulfilled') run.checkSessions.push(pair.value);
  const failed = opened.find((pair) => pair.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * The write stop (the pooler's PAUSE, the fence; again on a rerun that continues a confirmed run),
 * and the confirmation's time on the primary's clock: later writes are found by their transaction's start.
 */
export async function stopWrites(run: SwitchRun): Result {
  await run.writeStop.stopWrites((line) => run.say(line));
  if (run.progress.confirmed) return;
  const { rows } = await (
    await run.db.primary()
  ).query<{ now: string }>(
    // ISO in UTC: the primary's DateStyle may print 02/12 day first, and the metadata server would read it month first.
    `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS now`,
  );
  const at = rows[0]!.now;
  run.say(`writes to ${run.words.from} stopped (confirmed at ${at}, ${run.words.from}'s clock)`);
  return { at };
}

export async function drain(run: SwitchRun): Result {
  const { job, ctx, settings } = run;
  ctx.progress('kicking replication and waiting for the backlog to drain');
  if (!daemonPid(job))
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} is not running, so the last changes cannot reach ${run.words.to}. Keep writes stopped, start it with bucardo.start, then run ${run.words.command} again.`,
    );
  const started = Date.now();
  let lastKick = 0;
  const client = await run.db.primary();
  for (;;) {
    const pending = await backlog(client, job.dbgroupName);
    if (pending === 0) break;
    if (Date.now() - started > settings.drainTimeoutSeconds * 1000) {
      throw new OperatorError(
        `${pending} change(s) are still pending replication after ${settings.drainTimeoutSeconds} s (cutover.drain_timeout). Replication may be failing: look at bucardo.status and ${job.paths.logFile}. Keep writes stopped and run ${run.words.command} again to keep waiting; nothing after the confirmation has been done yet.`,
      );
    }
    if (Date.now() - lastKick > 5000) {
      // A kick costs one sync run; asking every few seconds is plenty while waiting. On the shared
      // metadata session: no connection is opened inside the pause.
      await kickSyncOn(run.metadata, job);
      lastKick = Date.now();
    }
    ctx.progress(
      `waiting for replication to apply ${pending} pending change(s) (${Math.round((Date.now() - started) / 1000)} s)`,
    );
    // The application waits for this loop: a sync run takes a fraction of a second, so look often
    // (one look reads the delta tables once; 500 ms between looks cost 250 ms of pause on average).
    await sleep(DRAIN_LOOK_MS, ctx.activity.signal);
  }
  run.say(`replication caught up: nothing pending (waited ${run.stepSeconds})`);
}

/** Sets the secondary's sequences (a follower's with `to`) past the primary's, by the margin. */
async function advance(run: SwitchRun, to: Job = run.job): Promise<SequenceChange[]> {
  return advanceSequences(
    await run.db.primary(),
    await run.ctx.databases(to).secondary(),
    run.scope.sequences,
    run.settings.sequenceMargin,
  );
}

export async function sequences(run: SwitchRun): Result {
  run.ctx.progress("advancing the secondary's sequences");
  const changes = await advance(run);
  const { sequenceMargin } = run.settings;
  const listed = changes
    .slice(0, 5)
    .map((c) => `${c.sequence} ${c.from} → ${c.to}`)
    .join(', ');
  run.say(
    `sequences: ${changes.length} of ${run.scope.sequences.length} set on the secondary to ${sequenceMargin} increment(s) past the primary's${
      changes.length ? ` (${listed}${changes.length > 5 ? ', ...' : ''})` : ''
    } (${run.stepSeconds})`,
  );
}

export async function followersSequences(run: SwitchRun): Result {
  for (const other of run.followers) await advance(run, other);
}

/** Where the final check (or the pre-check) may start instead of comparing every row. */
interface ChangeCheck {
  horizon: ChangeHorizon;
  /** The keys the last verify (and a pre-check after it) listed in flight: compared by name too. */
  inFlight: Map<string, Record<string, string>[]>;
  verifyId: number;
  /** The verify's own horizon: tables truncated since it are compared whole. */
  verifyFrom: string | null;
  /** The horizon is a pre-check's, taken after the verify's (compare/pre-check.ts). */
  preChecked: boolean;
}

/**
 * The final check may compare only the keys changed since the last verify when that verify recorded
 * a horizon and Bucardo's change records have been kept whole since (capture.ts); since a pre-check's
 * horizon when one passed after that verify. A verify that passed with keys in flight counts: those
 * keys changed since its horizon, and the final check also compares the ones it listed by name.
 */
async function changeCheckPossible(run: SwitchRun, target: Job): Promise<ChangeCheck | { why: string }> {
  const last = await lastVerifyRun(run.metadata, target);
  if (!last?.passed) return { why: 'no passing verify recorded' };
  if (!last.horizon)
    return { why: 'the last verify recorded no horizon (no change capture on the primary when it ran)' };
  // The hold must be whole since the verify's horizon, whatever a pre-check took since: a hold renewed
  // after the verify (purging) may have lost records between the two.
  const hold = await holdIntact(await run.db.primary(), target, last.horizon);
  if (!hold.intact)
    return { why: `the change records since the last verify may be incomplete: ${hold.detail}` };
  const inFlight = last.clean ? new Map() : await inFlightKeys(run.metadata, last.id);
  const pre = await lastPreCheck(run.metadata, target, last.id);
  for (const [table, keys] of Object.entries(pre?.inFlight ?? {}))
    inFlight.set(table, [...(inFlight.get(table) ?? []), ...keys]);
  return {
    horizon: pre?.horizon ?? last.horizon,
    inFlight,
    verifyId: last.id,
    verifyFrom: last.horizon.from,
    preChecked: pre !== undefined,
  };
}

/** Pre-check rounds at most: each starts at the previous one's horizon, so each compares less. */
const PRE_CHECK_ROUNDS = 3;
/** A round this quick leaves little for another to take out of the pause. */
const PRE_CHECK_ENOUGH_SECONDS = 1;

/**
 * Whether the pre-check shortens a write stop: the pooler's PAUSE comes after it, or the operator
 * is asked to stop writes after it. With --writes-stopped the writes stopped before the command began.
 */
export function preCheckApplies(run: SwitchRun): boolean {
  const { ctx } = run;
  if (ctx.options.flag('full-verify')) return false;
  return run.writeStop.pausesWrites || (ctx.prompt.interactive && !ctx.options.flag('writes-stopped'));
}

/**
 * Before the write stop, while the application writes: the keys changed since the last verify's
 * horizon compared, and a horizon of the pre-check's own recorded, so that the final check in the
 * pause compares only the keys changed since (compare/pre-check.ts; docs/cutover.md, "The
 * pre-check"). A difference refuses the switch here, with nothing paused.
 */
export async function preCheck(run: SwitchRun): Result {
  const { job, ctx, settings } = run;
  const possible = await changeCheckPossible(run, job);
  if (!('horizon' in possible)) {
    run.say(`pre-check: not possible (${possible.why}); the final check in the pause does the whole work`);
    return;
  }
  let { horizon, inFlight } = possible;
  run.preCheck = [];
  for (let round = 1; round <= PRE_CHECK_ROUNDS; round++) {
    ctx.progress(
      `pre-check${round > 1 ? ` (round ${round})` : ''}: comparing the keys changed since ${horizon.from}`,
    );
    const check = await runPreCheck(job, horizon, {
      settings,
      inFlight,
      sessions: run.checkSessions,
      activity: ctx.activity,
      progress: (text) => ctx.progress(`pre-check: ${text}`),
    });
    run.preCheck.push(check);
    if (!check.passed) {
      const paused = run.writeStop.pausesWrites ? 'Nothing was paused' : 'Writes need not stop yet';
      return {
        stop: {
          ok: false,
          data: run.data({ verdict: check.verdict }),
          message: `The pre-check before the write stop found rows that differ on ${run.words.to} in keys changed since the last verify: ${check.verdict}. ${paused}: replication runs and nothing is switched. Find and repair them (cutover.verify names every differing key, cutover.repair makes Bucardo re-apply them), then run ${run.words.command} again.`,
        },
      };
    }
    await savePreCheck(run.metadata, job, {
      verifyId: possible.verifyId,
      horizon: check.horizon,
      inFlight: check.inFlight,
    });
    run.say(
      `pre-check${round > 1 ? ` (round ${round})` : ''}: ${check.verdict}; the final check starts at ${check.horizon.from ?? 'the hold'} (${check.horizon.reason}) (${check.seconds} s)`,
    );
    horizon = check.horizon;
    inFlight = new Map(Object.entries(check.inFlight));
    if (check.seconds < PRE_CHECK_ENOUGH_SECONDS) break;
  }
}

/** One target must hold what the primary holds: the changed keys compared, or a full strict verify. */
async function checkTarget(
  run: SwitchRun,
  target: Job,
): Promise<{ as: string; failed?: { message: string; verdict: string } }> {
  const { job, ctx, settings } = run;
  const label =
    target === job ? (job.config.fanOut ? ` (target ${job.target})` : '') : ` (follower ${target.target})`;
  const quick = ctx.options.flag('full-verify')
    ? { why: 'asked for with --full-verify' }
    : await changeCheckPossible(run, target);
  if ('horizon' in quick) {
    const check = await runFinalCheck(target, quick.horizon, {
      settings,
      since: quick.preChecked ? 'pre-check' : 'verify',
      truncatedFrom: quick.verifyFrom,
      ...(target === job ? { sessions: run.checkSessions, copiedWhole: settings.copyAtCutover } : {}),
      verifyInFlight: quick.inFlight,
      activity: ctx.activity,
      progress: (text) => ctx.progress(`final check: ${text}`),
    });
    run.finalCheck = check;
    if (!check.passed)
      return {
        as: `final check${label}`,
        failed: {
          verdict: check.verdict,
          message: `The final check${label} failed: ${check.verdict} Replication is still running and nothing is switched. Find and repair the differences (cutover.verify names them, cutover.repair re-applies them), then run ${run.words.command} again with writes still stopped; or let writes resume on ${run.words.from} to call the switch off.`,
        },
      };
    run.say(
      `final check${label}: ${check.verdict} Changes since ${check.from ?? 'the hold began'} (${quick.horizon.reason}); ${run.stepSeconds}`,
    );
    return { as: `final check${label}` };
  }
  run.say(`final check${label}: a full strict verify (${quick.why})`);
  const targetDb = ctx.databases(target);
  const verify = await runVerify(target, {
    settings,
    strict: true,
    db: targetDb,
    activity: ctx.activity,
    progress: (text) => ctx.progress(`final verify: ${text}`),
  });
  await recordVerify(targetDb, verify, ctx.activity);
  if (!verify.passed)
    return {
      as: `final verify (full)${label}`,
      failed: {
        verdict: verify.verdict,
        message: `The final verify${label} failed: ${verify.verdict} Replication is still running and nothing is switched. Repair the differences (cutover.verify lists them with their keys) and run ${run.words.command} again with writes still stopped, or let writes resume on ${run.words.from} to call the switch off.`,
      },
    };
  // The tables copied at the switch are outside the verify's verdict, but here they must match.
  const uncopied = target === job ? (verify.copiedAtCutover ?? []).filter((t) => !t.same) : [];
  if (uncopied.length)
    return {
      as: `final verify (full)${label}`,
      failed: {
        verdict: verify.verdict,
        message: `The final verify${label} failed: the table(s) copied at the switch (cutover.copy_at_cutover) differ after the copy: ${uncopied.map((t) => `${t.table} (${t.problem ?? `${t.rowsPrimary} row(s) on ${run.words.from}, ${t.rowsSecondary} on ${run.words.to}`})`).join(', ')}. Replication is still running and nothing is switched. Keep writes stopped (a write to such a table during the pause is not replicated) and run ${run.words.command} again: it copies them again.`,
      },
    };
  run.say(`final verify${label}: ${verify.verdict} (${run.stepSeconds})`);
  return { as: `final verify (full)${label}` };
}

/** The chosen target holds what the primary holds. */
export async function finalCheck(run: SwitchRun): Result {
  const { as, failed } = await checkTarget(run, run.job);
  if (!failed) return { as };
  return { as, stop: { ok: false, data: run.data({ verdict: failed.verdict }), message: failed.message } };
}

interface CopiedTable {
  schema: string;
  name: string;
  columns: string[];
}

/** A table's columns (name and type, in order) and whether it has a primary key; undefined when missing. */
async function tableShape(
  client: Client,
  table: { schema: string; name: string },
): Promise<{ columns: string[]; types: string[]; hasPrimaryKey: boolean; partitioned: boolean } | undefined> {
  const { rows } = await client.query<{
    column: string | null;
    type: string | null;
    has_pk: boolean;
    partitioned: boolean;
  }>(
    `SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, c.relkind = 'p' AS partitioned,
            EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
      ORDER BY a.attnum`,
    [table.schema, table.name],
  );
  if (!rows.length) return undefined;
  const present = rows.filter((r) => r.column !== null);
  return {
    columns: present.map((r) => r.column!),
    types: present.map((r) => r.type!),
    hasPrimaryKey: rows[0]!.has_pk,
    partitioned: rows[0]!.partitioned,
  };
}

/**
 * The tables of cutover.copy_at_cutover, each checked on both sides: no primary key (a table with one
 * should replicate instead), present on the side writes leave and the side they go to, the same columns.
 * Refuses with the fix otherwise.
 */
async function tablesToCopy(run: SwitchRun, from: Client, to: Client): Promise<CopiedTable[]> {
  const tables: CopiedTable[] = [];
  const problems: string[] = [];
  for (const table of run.settings.copyAtCutover) {
    const name = quoteQualified(table.schema, table.name);
    const [ours, theirs] = await Promise.all([tableShape(from, table), tableShape(to, table)]);
    if (!ours) {
      problems.push(
        `${name} is not a table on ${run.words.from}: correct its name in cutover.copy_at_cutover (schema.table) or remove it`,
      );
    } else if (ours.partitioned) {
      // TRUNCATE ONLY and COPY ... TO refuse a partitioned table: its rows live in its partitions.
      problems.push(
        `${name} is a partitioned table: name its partitions in cutover.copy_at_cutover instead (each is copied whole)`,
      );
    } else if (ours.hasPrimaryKey) {
      problems.push(
        `${name} has a primary key, so Bucardo can replicate it: remove it from cutover.copy_at_cutover and from bucardo.replication_objects' exclusions, then add it to replication (schema.add_tables)`,
      );
    } else if (!theirs) {
      problems.push(
        `${name} is missing on ${run.words.to}: create it there with the same columns (schema.diff shows the difference)`,
      );
    } else if (
      ours.columns.join('\u0000') !== theirs.columns.join('\u0000') ||
      ours.types.join('\u0000') !== theirs.types.join('\u0000')
    ) {
      problems.push(
        `${name} has different columns on the two sides (${ours.columns.length} on ${run.words.from}, ${theirs.columns.length} on ${run.words.to}; names, types or order differ): make them the same on ${run.words.to} (schema.diff shows the difference)`,
      );
    } else {
      tables.push({ ...table, columns: ours.columns });
    }
  }
  if (problems.length)
    throw new OperatorError(
      `cutover.copy_at_cutover names ${problems.length} table(s) that cannot be copied at the switch: ${problems.join('; ')}. Fix them, or remove them from cutover.copy_at_cutover, then run ${run.words.command} again. Nothing was changed.`,
    );
  return tables;
}

/** Before the pause: the tables copied at the switch can be copied (tablesToCopy refuses otherwise). */
export async function copyTablesChecked(run: SwitchRun): Result {
  const tables = await checkedTablesToCopy(run);
  run.say(
    `copy at the switch: ${tables.length} table(s) without a primary key checked on both sides (${tables.map((t) => quoteQualified(t.schema, t.name)).join(', ')})`,
  );
}

function checkedTablesToCopy(run: SwitchRun): Promise<CopiedTable[]> {
  // A session of its own on the side writes go to: the shared one is first opened inside the pause, the
  // proof that it still takes new connections (the sequences step).
  return withClient(
    run.job,
    {
      role: 'secondary',
      activity: run.ctx.activity,
      applicationName: `bucardo-console ${run.words.command}`,
    },
    async (to) => tablesToCopy(run, await run.db.primary(), to),
  );
}

/**
 * In the pause, before the final check (which then compares them whole): each table of
 * cutover.copy_at_cutover replaced on the side writes go to by the rows of the side they leave, one
 * transaction each. Writes are stopped, so the copy is consistent. Not recorded as a point of its own:
 * a rerun before the final check's point copies every table again (a copy is whole or not at all).
 */
export async function copyAtCutover(run: SwitchRun): Result {
  const from = await run.db.primary();
  const to = await run.db.secondary();
  const tables = await tablesToCopy(run, from, to);
  const copied: string[] = [];
  for (const table of tables) {
    run.ctx.activity.throwIfInterrupted();
    const { rows } = await replaceTable(from, to, table, run.job.config.bucardo.lockTimeoutMs);
    copied.push(`${quoteQualified(table.schema, table.name)} (${rows} row(s))`);
  }
  run.say(`copied whole to ${run.words.to}: ${copied.join(', ')} (${run.stepSeconds})`);
}

/** Each target that will follow the chosen one holds what the primary holds too. */
export async function followersFinalCheck(run: SwitchRun): Result {
  for (const follower of run.followers) {
    const { failed } = await checkTarget(run, follower);
    if (failed)
      return { stop: { ok: false, data: run.data({ verdict: failed.verdict }), message: failed.message } };
  }
}

/** The last moment a late commit can still be carried across: after the stop it would be lost. */
export async function lateWriteChecks(run: SwitchRun): Result {
  const writes = await writesAfterConfirmation(run);
  if (writes) {
    await startOver(run);
    throw new OperatorError(
      `Writes reached ${run.words.from} after you confirmed they had stopped: ${writes}. The switch was called off before anything irreversible: replication is still running. Stop every writer, then run ${run.words.command} again (it starts over).`,
    );
  }
  const writers = await openWriters(await run.db.primary(), run.scope.tables);
  if (writers.length) {
    throw new OperatorError(
      `${writers.length} transaction(s) on ${run.words.from} are open and may change a replicated table: ${describeWriters(writers)}. If one commits after replication stops, its changes never reach ${run.words.to}, so replication was not stopped. End them (commit or roll back; pg_terminate_backend(pid) for a session, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one), then run ${run.words.command} again. Replication is still running: after a rollback the run continues; a commit is carried across, and if it is not across yet when you rerun, the switch starts over with a new confirmation.`,
    );
  }
}

/** The operator's command and the pooler's entries (write-stop.ts), before replication stops for good. */
export async function switchWrites(run: SwitchRun): Result {
  await run.writeStop.switchWrites((line) => run.say(line));
}

/** For good, but without waiting for the daemon's own exit (its cleanup sleeps): that comes after RESUME. */
export async function stopReplication(run: SwitchRun): Result {
  const stopped = await stopSyncWorkers(run.job, run.ctx);
  run.say(`replication stopped: ${stopped.steps.join('; ')} (${run.stepSeconds})`);
}

/** A last sync run may have copied a sequence value over the margin; setting it again is harmless. */
export async function sequencesAgain(run: SwitchRun): Result {
  const again = await advance(run);
  if (again.length)
    run.say(
      `sequences set again after the last sync run: ${again.map((c) => `${c.sequence} → ${c.to}`).join(', ')}`,
    );
}

export async function lateWritesSinceStop(run: SwitchRun): Result {
  const writes = await writesAfterConfirmation(run);
  if (writes) {
    // Replication is stopped: these changes are on the primary only. Start over once they are carried across.
    await startOver(run);
    throw new OperatorError(
      `Writes reached ${run.words.from} after you confirmed they had stopped: ${writes}. Replication is already stopped, so these rows are NOT on ${run.words.to}; the triggers were kept, so they are recorded. Stop every writer, start replication again with bucardo.start so it carries them across, then run ${run.words.command} again (it starts over).`,
    );
  }
}

/** Replication is stopped for good: the application may go on, on the new side, while the triggers go. */
export async function resumeWrites(run: SwitchRun): Result {
  await run.writeStop.resumeWrites((line) => run.say(line));
}

/** The daemon's exit after the syncs stopped in this run, or one still up after an earlier run. */
export function daemonToStop(run: SwitchRun): boolean {
  return daemonPid(run.job) !== undefined || run.ran('stop replication');
}

export async function stopTheDaemon(run: SwitchRun): Result {
  const daemon = await stopDaemon(run.job, run.ctx);
  run.say(`the daemon stopped: ${daemon.steps.join('; ')} (${run.stepSeconds})`);
}

export async function removeTriggers(run: SwitchRun): Result {
  const { job, ctx } = run;
  for (const name of syncNames(job)) {
    if (!(await syncRow(run.metadata, name))) continue;
    // Without the sync nothing (a daemon start, a validate) would put the triggers back.
    await runBucardo(job, ['remove', 'sync', name], { activity: ctx.activity });
    run.say(`removed sync ${name} from Bucardo`);
  }
  const { policy, setting, retry } = lockRounds(job);
  // A session of its own: DROP TRIGGER under SET LOCAL lock_timeout, as the schema owner, in transactions.
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
  let limit: string;
  if (retry) {
    run.say(
      `dropped this job's triggers on ${dropped} of ${result.total} table(s) in ${result.rounds} round(s) (the retry plugin's rounds: each lock wait at most retry.timeout)`,
    );
    limit = `retry.timeout in each of ${result.rounds} round(s)`;
  } else {
    run.say(
      `dropped this job's triggers on ${dropped} table(s) (each lock wait at most bucardo.lock_timeout, ${FIXED_ROUNDS} rounds)`,
    );
    limit = `bucardo.lock_timeout in each of ${FIXED_ROUNDS} rounds`;
  }
  const failed: TableFailure[] = result.waiting;
  if (!failed.length) return;
  ctx.log(formatFailures(failed).join('\n'));
  return {
    stop: {
      ok: false,
      data: run.data({ failed }),
      message: `${failed.length} table(s) still carry this job's triggers: each stayed locked longer than ${limit} (listed above, with the sessions holding locks that were found). Replication is stopped: end those sessions or wait for them, then run ${run.words.command} again to retry.`,
    },
  };
}

/** The new side takes writes (a warning only: the switch is done) and the run is recorded as finished. */
export async function newSideWritable(run: SwitchRun): Result {
  const writable = await secondaryAcceptsWrites(run.db);
  run.say(
    writable.pass ? `the secondary accepts writes (${writable.detail})` : `WARNING: ${writable.detail}`,
  );
}

/** The write pause from the confirmation to now on the primary's clock, and what each step took of it. */
export async function measurePause(run: SwitchRun): Result {
  const { rows } = await (
    await run.db.primary()
  ).query<{ s: string }>('SELECT extract(epoch FROM now() - $1::timestamptz)::text AS s', [
    run.progress.confirmed,
  ]);
  const seconds = Math.round(Number(rows[0]!.s) * 10) / 10;
  run.pauseSeconds = seconds;
  const steps = run.pause.steps;
  const timedSteps = steps.map((p) => `${p.step} ${p.seconds} s`);
  // What no step accounts for: recording each step, connections, the checks between steps (or the time between runs).
  const other = Math.round((seconds - steps.reduce((sum, p) => sum + p.seconds, 0)) * 10) / 10;
  if (timedSteps.length) timedSteps.push(`the rest ${other} s`);
  run.say(
    `write pause: ${seconds} s from the confirmation to now (${timedSteps.join(', ') || 'steps done in earlier runs'})`,
  );
}

/** The change records kept for the final check are no use any more. */
export async function releaseTheHold(run: SwitchRun): Result {
  await releaseHold(await run.db.primary(), run.job.syncName).catch(() => undefined);
  run.say(`writes may go to ${run.words.to}`);
}

/** After the pause: B's triggers record every write from now on, whenever the daemon is up. */
export async function startSyncsFromB(run: SwitchRun): Result {
  const { job, options } = run;
  const fromB = [
    ...(options.wayBack ? [reverseJob(job)] : []),
    ...(options.following ? [options.follow!] : []),
  ];
  for (const line of await startSyncsFromSecondary(job, fromB, run.ctx)) run.say(line);
}

/** A fan-out job's other targets: they follow the new primary, or keep what they held. */
export async function otherTargetsSaid(run: SwitchRun): Result {
  if (!run.options.following) {
    run.say(
      `cutover.others is stop: ${otherTargets(run.job)
        .map((t) => t.target)
        .join(', ')} keep what they held at the switch and get nothing more`,
    );
    return;
  }
  const names = run.followers.map((t) => t.target).join(', ');
  run.say(
    `${names} follow${run.followers.length === 1 ? 's' : ''} ${run.job.target}: sync ${run.options.follow!.syncName} carries its writes to them`,
  );
}

/**
 * The way back was the last sync from B: the schema Bucardo made there goes too (kept while any
 * Bucardo trigger, a fan-out's followers' for one, still uses it).
 */
export async function dropSchemaOnB(run: SwitchRun): Result {
  // A session of its own: DROP SCHEMA under SET LOCAL lock_timeout, as the schema owner.
  const schema = await withClient(
    run.job,
    { role: 'primary', login: 'schema_owner', activity: run.ctx.activity },
    (client) => dropBucardoSchema(client, run.job, 'the secondary'),
  ).catch((error: unknown) => `the bucardo schema on the secondary was left: ${errorMessage(error)}`);
  run.say(schema);
}
