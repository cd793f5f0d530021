// cutover.verify: proves (or disproves) that the secondary holds the primary's data, and records
// the result in the metadata database for cutover.check.
import type { Activity } from '../../src/core/activity.js';
import { DatabaseContext } from '../../src/core/context.js';
import { errorMessage } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { saveVerifyRun, withRecords } from './records.js';
import { type VerifyReport, runVerify } from './compare/index.js';
import { cutoverSettings } from './settings.js';
import { activeDirection } from '../../src/core/bucardo/direction.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';

/**
 * Stores the result for cutover.check; a job without a metadata database simply has no record. Given
 * the command's sessions (`ctx.db`), on its metadata session; given a job, on a session of its own.
 */
export async function recordVerify(
  source: Job | DatabaseContext,
  report: VerifyReport,
  activity: Activity,
): Promise<void> {
  const job = source instanceof DatabaseContext ? source.job : source;
  try {
    // The whole report, differing keys and ranges included: cutover.repair works from the last recorded verify.
    const id = await withRecords(source, activity, (client) =>
      saveVerifyRun(client, job, {
        startedAt: report.startedAt,
        passed: report.passed,
        clean: report.clean,
        verdict: report.verdict,
        summary: report,
      }),
    );
    if (id === undefined)
      report.notes.push(
        `not recorded: the metadata database ${job.metadataDb} does not exist (cutover.check needs a recorded verify)`,
      );
    else report.recordId = id;
  } catch (error) {
    report.notes.push(`could not record the result in ${job.metadataDb}: ${errorMessage(error)}`);
  }
}

export async function verify(ctx: CommandContext): Promise<CommandOutcome<VerifyReport>> {
  // Declared in index.ts: --settle SECONDS (also settle=SECONDS) and --strict.
  const settleSeconds = ctx.options.number('settle');
  await adoptRecordedNames(ctx.db, ctx.activity);
  // While the way back runs, B is the source: verify compares A against it (records as <name>_back).
  const job = await activeDirection(ctx.job, ctx.db);
  const report = await runVerify(job, {
    settings: cutoverSettings(ctx.job.config),
    strict: ctx.options.flag('strict'),
    activity: ctx.activity,
    progress: ctx.progress,
    db: job === ctx.job ? ctx.db : ctx.databases(job),
    ...(settleSeconds !== undefined ? { settleSeconds } : {}),
  });
  if (job !== ctx.job)
    report.notes.push(
      `the way back runs: the secondary (B) was compared as the source and the primary (A) as the target (sync ${job.syncName})`,
    );
  await recordVerify(job === ctx.job ? ctx.db : ctx.databases(job), report, ctx.activity);
  return { ok: report.passed, data: report, message: report.verdict };
}
