// cutover.verify: proves (or disproves) that the secondary holds the primary's data, and records
// the result in the metadata database for cutover.check.
import type { Activity } from '../../src/core/activity.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { saveVerifyRun, withRecords } from './records.js';
import type { VerifyReport } from './report.js';
import { cutoverSettings } from './settings.js';
import { runVerify } from './verify-engine.js';

interface VerifyArguments { settleSeconds?: number; strict: boolean }

export function parseVerifyArguments(args: string[]): VerifyArguments {
  const parsed: VerifyArguments = { strict: false };
  for (const arg of args) {
    const settle = /^settle=(\d+(?:\.\d+)?)$/.exec(arg);
    if (settle) parsed.settleSeconds = Number(settle[1]);
    else if (arg === '--strict' || arg === 'strict') parsed.strict = true;
    else throw new OperatorError(`cutover.verify does not understand '${arg}'. It accepts settle=SECONDS (how long to wait for differing rows to arrive through replication; default cutover.settle_time) and --strict (rows in flight and sequences behind fail the verify).`);
  }
  return parsed;
}

/** Stores the result for cutover.check; a job without a metadata database simply has no record. */
export async function recordVerify(job: Job, report: VerifyReport, activity: Activity): Promise<void> {
  try {
    // The whole report, differing keys and ranges included: cutover.repair works from the last recorded verify.
    const id = await withRecords(job, activity, (client) => saveVerifyRun(client, job, { startedAt: report.startedAt, passed: report.passed, clean: report.clean, verdict: report.verdict, summary: report }));
    if (id === undefined) report.notes.push(`not recorded: the metadata database ${job.metadataDb} does not exist (cutover.check needs a recorded verify)`);
    else report.recordId = id;
  } catch (error) {
    report.notes.push(`could not record the result in ${job.metadataDb}: ${errorMessage(error)}`);
  }
}

export async function verify(ctx: CommandContext): Promise<CommandOutcome<VerifyReport>> {
  const args = parseVerifyArguments(ctx.args);
  const report = await runVerify(ctx.job, {
    settings: cutoverSettings(ctx.job.config), strict: args.strict, activity: ctx.activity, progress: ctx.progress,
    ...(args.settleSeconds !== undefined ? { settleSeconds: args.settleSeconds } : {}),
  });
  await recordVerify(ctx.job, report, ctx.activity);
  return { ok: report.passed, data: report, message: report.verdict };
}
