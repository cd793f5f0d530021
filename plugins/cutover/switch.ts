// One switch of writes from a job's primary to its secondary: cutover.finish (finish.ts) forward,
// cutover.rollback (rollback.ts) back over the way back, run as the B→A job
// (src/core/bucardo/reverse.ts). This file holds what a run of either table of steps shares: the
// words of its direction, its state (progress, lines, timeline, what it found), the records in the
// metadata database, and the check after it. The steps themselves are in switch-steps.ts, the runner
// in steps.ts.
//   readiness check (a recent passing verify among it) → writes stop (the operator, or the pooler's
//   PAUSE) → backlog drained → sequences advanced past the primary's → final check → replication
//   stopped → writes resume on the other side → sync and triggers removed.
// Everything from the confirmation on is the write pause. Its length must not grow with the
// database, so the final check does not read every row again: it re-compares only the keys Bucardo
// recorded as changed since the last verify's horizon, plus row counts and sequences (final-check.ts;
// why that is enough: capture.ts and docs/cutover.md). Up to the final check nothing is irreversible:
// if writes reach the primary after the confirmation (Bucardo's change capture shows them), the
// recorded steps are forgotten and the switch starts over. Stopping replication is the point of no return.
//
// Sessions: every plain statement goes through the command's shared sessions (ctx.databases(job)),
// the metadata database's included; a step opens a session of its own only for lock-bounded DDL
// (switch-steps.ts says where).
import type { Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Sides } from '../../src/core/compare/ranges.js';
import type { Job } from '../../src/core/job.js';
import type { ReplicationScope } from '../../src/core/objects.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { daemonPid, syncLoaded } from '../../src/core/bucardo/daemon.js';
import { followJob } from '../../src/core/bucardo/follow.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { jobTriggerNames, listTriggers } from '../../src/core/bucardo/triggers.js';
import type { ReadinessItem } from './check.js';
import { type FinalCheck, type PreCheck, closeSides, compareSequences } from './compare/index.js';
import { followExists } from './follow.js';
import {
  markStep,
  openRecords,
  readProgress,
  type FinishProgress,
  type FinishStep,
  type StepTime,
} from './records.js';
import { cutoverSettings, type CutoverSettings } from './settings.js';
import { runSteps, type Step, type StepRun } from './steps.js';
import type { TableFailure } from '../../src/core/ddl.js';
import { wayBackExists } from '../../src/core/bucardo/direction.js';
import type { WriteStop } from './write-stop.js';

export interface FinishData {
  /** What each step said, in order: the lines printed while it ran. */
  steps: string[];
  /** Each step with its start, end and milliseconds, or 'done earlier' (a rerun). */
  timeline: StepTime[];
  progress: FinishProgress;
  finished: boolean;
  readiness?: ReadinessItem[];
  verdict?: string;
  failed?: TableFailure[];
  /** The write pause: each step after the confirmation, timed (only the steps this run did). */
  pause: PauseReport;
  /** What the final check compared (absent when it was done in an earlier run, or fell back to a full verify). */
  finalCheck?: FinalCheck;
  /** The pre-check's rounds before the write stop (absent when it did not run in this run). */
  preCheck?: PreCheck[];
}

export interface PauseReport {
  steps: { step: string; seconds: number }[];
  /** From the confirmation to "writes may go to the secondary" (primary's clock), once finished. */
  seconds?: number;
}

/** The words of one direction: where writes stop, where they go, and the command that does it. */
export interface Direction {
  command: 'cutover.finish' | 'cutover.rollback';
  from: string;
  to: string;
}
export const FORWARD: Direction = { command: 'cutover.finish', from: 'the primary', to: 'the secondary' };
export const BACKWARD: Direction = {
  command: 'cutover.rollback',
  from: 'the secondary (B)',
  to: 'the primary (A)',
};

/** What the forward switch carries on after it: the way back, a fan-out's followers. */
export interface SwitchOptions {
  /** Set by the way back step: the reverse sync B→A runs after the switch. */
  wayBack?: boolean;
  /** A fan-out job's followers' sync (cutover.others: follow), or the job whose others stop. */
  follow?: Job;
  following?: boolean;
}

/** The state of one run of a switch's table of steps. */
export class SwitchRun implements StepRun {
  readonly lines: string[] = [];
  readonly timeline: StepTime[] = [];
  readonly settings: CutoverSettings;
  readonly forward: boolean;
  readonly db: DatabaseContext;
  /** The tables and sequences in scope (the 'scope' step). */
  scope!: ReplicationScope;
  finalCheck?: FinalCheck;
  preCheck?: PreCheck[];
  /** The final check's connection pairs, opened before the pause (switch-steps.ts); closed when the run ends. */
  checkSessions: Sides[] = [];
  pauseSeconds?: number;
  /** The targets that follow the chosen one (fan-out, cutover.others: follow). */
  readonly followers: Job[];

  constructor(
    readonly ctx: CommandContext,
    /** The job of this direction: its primary is the side writes leave, its secondary where they go. */
    readonly job: Job,
    readonly words: Direction,
    readonly writeStop: WriteStop,
    /** The metadata database's shared session, the record tables in place. */
    private readonly records: Client,
    public progress: FinishProgress,
    readonly options: SwitchOptions,
    followers: Job[],
  ) {
    this.settings = cutoverSettings(job.config);
    this.forward = words === FORWARD;
    this.db = ctx.databases(job);
    this.followers = followers;
  }

  say(line: string): void {
    this.lines.push(line);
    this.ctx.log(`  - ${line}`);
  }

  /** Seconds since the step under way began, for its line. */
  get stepSeconds(): string {
    const started = this.timeline.at(-1)?.startedAt;
    return `${started ? Math.round((Date.now() - Date.parse(started)) / 100) / 10 : 0} s`;
  }

  /** Whether a step ran in this run (not skipped as done earlier). */
  ran(step: string): boolean {
    return this.timeline.some((t) => t.step === step && t.status !== 'done earlier');
  }

  /** The metadata database's shared session: every record of this run goes there. */
  get metadata(): Client {
    return this.records;
  }

  async mark(point: FinishStep, at: string | undefined, times: StepTime[]): Promise<void> {
    this.progress[point] = await markStep(this.records, this.job, point, at, times);
  }

  get pause(): PauseReport {
    return {
      steps: this.timeline
        .filter((t) => t.inPause && t.ms !== undefined)
        .map((t) => ({ step: t.step, seconds: Math.round(t.ms! / 100) / 10 })),
      ...(this.pauseSeconds !== undefined ? { seconds: this.pauseSeconds } : {}),
    };
  }

  /** The command's data; read when the outcome is printed, so a step that stops the table is in it with its time. */
  data(extra: Partial<FinishData> = {}): FinishData {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const run = this;
    return {
      steps: this.lines,
      timeline: this.timeline,
      get progress() {
        return run.progress;
      },
      get finished() {
        return Boolean(run.progress.finished);
      },
      get pause() {
        return run.pause;
      },
      get finalCheck() {
        return run.finalCheck;
      },
      get preCheck() {
        return run.preCheck;
      },
      ...extra,
    };
  }
}

/**
 * Runs a switch's table: refuses without Bucardo, says so when an earlier run finished, else runs the
 * steps and hands the run to `finished` for the command's message.
 */
export async function runSwitch(
  ctx: CommandContext,
  job: Job,
  words: Direction,
  writeStop: WriteStop,
  table: Step<SwitchRun, FinishData>[],
  finished: (run: SwitchRun) => string,
  options: SwitchOptions = {},
  followers: Job[] = [],
): Promise<CommandOutcome<FinishData>> {
  const records = await openRecords(ctx.databases(job));
  if (!records)
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb}), so there is no replication to finish. Set it up with bucardo.install, bucardo.add_triggers and bucardo.start.`,
    );
  const run = new SwitchRun(
    ctx,
    job,
    words,
    writeStop,
    records,
    await readProgress(records, job),
    options,
    followers,
  );
  if (run.progress.finished) {
    return {
      data: run.data(),
      message: run.forward
        ? `The cutover of ${job.name} already finished at ${run.progress.finished}: replication to the secondary is stopped and its triggers are gone. The secondary takes the writes.`
        : `The rollback of ${ctx.job.name} already finished at ${run.progress.finished}: the way back is stopped and its triggers are gone. The primary (A) takes the writes.`,
    };
  }
  try {
    const stopped = await runSteps(table, run);
    return stopped ?? { data: run.data(), message: finished(run) };
  } finally {
    await closeSides(run.checkSessions);
  }
}

/** Whether the side writes go to takes them: not a standby, not read-only. */
export async function secondaryAcceptsWrites(
  db: DatabaseContext,
): Promise<{ pass: boolean; detail: string }> {
  const { rows } = await (
    await db.secondary()
  ).query<{ recovery: boolean; read_only: string }>(
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
}

/** The check after cutover.finish and cutover.rollback, on the command's shared sessions. */
export async function validateSwitch(ctx: CommandContext, job: Job, forward: boolean): Promise<Check[]> {
  const words = forward ? FORWARD : BACKWARD;
  const db = ctx.databases(job);
  const wayBack = forward && (await wayBackExists(job, db, ctx.activity));
  const records = await openRecords(db);
  const progress = records ? await readProgress(records, job) : {};
  const primary = await db.primary();
  const triggers = await listTriggers(primary, jobTriggerNames(job));
  const scope = await findReplicationObjects(primary, job.config.bucardo.replicationObjects);
  const sequences = await compareSequences(primary, await db.secondary(), scope.sequences);
  const behind = sequences.filter((q) => q.status !== 'ahead' && q.status !== 'match');
  const writable = await secondaryAcceptsWrites(db);
  const pid = daemonPid(job);
  const reverse = reverseJob(job);
  // A fan-out job's followers: the daemon runs their sync after the switch (cutover.others: follow).
  const follow = forward ? followJob(job) : undefined;
  const following = follow !== undefined && (await followExists(job, ctx.activity, db));
  return [
    {
      name: `${forward ? 'cutover' : 'rollback'} recorded as finished`,
      pass: Boolean(progress.finished),
      detail: progress.finished ?? 'not finished',
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
