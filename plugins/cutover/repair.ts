// cutover.repair: fixes the differences the last recorded cutover.verify found by making Bucardo
// carry them (requeue.ts), never by writing to the secondary itself:
// 1. refuse unless replication is running past its initial copy (Bucardo does the work);
// 2. look again at the keys and ranges the verify named: what matches now is left alone, keys with
//    an application change on its way are left to replication, ranges are narrowed down to keys;
// 3. write change records for the rest on the primary in one transaction, kick, wait until Bucardo
//    applied them;
// 4. re-read those keys on both sides. The validation check then runs a whole verify.
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { OperatorError } from '../../src/core/errors.js';
import type { DatabaseContext } from '../../src/core/context.js';
import type { Job } from '../../src/core/job.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { kickSync, syncLoaded } from '../../src/core/bucardo/daemon.js';
import {
  classify,
  collationsDiffer,
  compareRange,
  findChangeLog,
  hashMethod,
  insertChangeRecords,
  keyId,
  plainComparer,
  readShapes,
  reread,
  shapeProblems,
  TableSql,
  waitUntilApplied,
  type ChangeLog,
  type KeyDiff,
  type KeyRange,
  type Requeue,
  type Sides,
  type TableShape,
} from '../../src/core/compare/index.js';
import {
  narrow,
  closeSides,
  openSides,
  type ListedKey,
  type RepairedTable,
  type RepairReport,
  type TableReport,
  type VerifyReport,
  replicationState,
  runVerify,
} from './compare/index.js';
import { lastVerifyReport, withRecords } from './records.js';
import { cutoverSettings } from './settings.js';
import { recordVerify } from './verify.js';
import { appendAll } from '../../src/core/arrays.js';

const MAX_LISTED_KEYS = 1000;
/** Per table and run: enough to repair any realistic loss; a table differing everywhere needs a recopy. */
const REPAIR_BUDGET = { keys: 200_000, comparisons: 20_000 };

async function requireReplicating(db: DatabaseContext): Promise<void> {
  const job = db.job;
  const state = await replicationState(db);
  const why = !state.replicating
    ? state.why
    : !syncLoaded(job)
      ? `the daemon has not loaded sync ${job.syncName}`
      : undefined;
  if (why) {
    throw new OperatorError(
      `cutover.repair cannot run: ${why.replace(/:.*$/, '')}. Repair re-queues the differing rows so that Bucardo itself re-applies them, so replication must be running and past its initial copy: start it with bucardo.start (bucardo.wait_for_copy waits for the copy), then run cutover.repair again. Nothing was changed.`,
    );
  }
}

/** A key object of a verify report as the key's values in column order. */
function keyValues(shape: TableShape, key: Record<string, string>): string[] {
  return shape.key.map((column) => key[column.name]!);
}

function keyRange(shape: TableShape, from?: Record<string, string>, to?: Record<string, string>): KeyRange {
  return {
    ...(from ? { lower: keyValues(shape, from) } : {}),
    ...(to ? { upper: keyValues(shape, to) } : {}),
  };
}

function listed(shape: TableShape, diffs: KeyDiff[]): ListedKey[] {
  return diffs.slice(0, MAX_LISTED_KEYS).map((d) => ({
    key: Object.fromEntries(shape.key.map((c, i) => [c.name, d.key[i]!])),
    difference: d.kind,
    inFlight: false,
  }));
}

function emptyResult(table: string): RepairedTable {
  return {
    table,
    requeued: 0,
    fixed: 0,
    alreadyMatching: 0,
    inFlight: 0,
    remaining: [],
    remainingRanges: 0,
    unlisted: 0,
  };
}

interface TablePlan {
  result: RepairedTable;
  sql?: TableSql;
  log?: ChangeLog;
  requeue: KeyDiff[];
}

/** Step 2 for one table: what still differs, and what of it replication will not bring by itself. */
async function planTable(
  sides: Sides,
  reported: TableReport,
  sql: TableSql,
  log: ChangeLog,
): Promise<TablePlan> {
  const named = reported.keys.filter((k) => !k.inFlight).map((k) => keyValues(sql.shape, k.key));
  // Verify lists at most 1000 keys per table; the rest need another verify to be named.
  const unlisted = Math.max(0, reported.missing + reported.extra + reported.changed - named.length);
  const result: RepairedTable = { ...emptyResult(reported.table), unlisted };
  const diffs = await reread(
    sides,
    sql,
    named.map((key) => ({ key, kind: 'changed' as const })),
  );
  result.alreadyMatching = named.length - diffs.length;
  const budget = { ...REPAIR_BUDGET };
  for (const range of reported.ranges) {
    const comparison = await compareRange(sides, sql, keyRange(sql.shape, range.from, range.to));
    if (comparison.same) continue;
    const narrowed = await narrow(sides, sql, comparison, budget, plainComparer);
    appendAll(diffs, narrowed.keys);
    result.remainingRanges += narrowed.ranges.length;
  }
  const unique = [...new Map(diffs.map((d) => [keyId(d.key), d])).values()];
  const { mismatched, inFlight } = await classify(sides, sql, log, unique, { rounds: 1, pauseMs: 0 });
  result.inFlight = inFlight.length;
  return { result, sql, log, requeue: mismatched };
}

async function planTables(sides: Sides, job: Job, verified: VerifyReport): Promise<TablePlan[]> {
  const method = await hashMethod(sides.primary, sides.secondary);
  const scope = await findReplicationObjects(sides.primary, job.config.bucardo.replicationObjects);
  const [ours, theirs] = await Promise.all([
    readShapes(sides.primary, scope.tables),
    readShapes(sides.secondary, scope.tables),
  ]);
  const plans: TablePlan[] = [];
  const differing = verified.tables.filter((t) => t.status === 'mismatch' || t.status === 'schema differs');
  for (const reported of differing) {
    const unrepairable = (problem: string): TablePlan => ({
      result: { ...emptyResult(reported.table), problem },
      requeue: [],
    });
    const shape = ours.get(reported.table);
    if (!shape) {
      plans.push(unrepairable("no longer in the job's replication objects on the primary"));
      continue;
    }
    const problems = shapeProblems(shape, theirs.get(reported.table));
    if (problems.length) {
      plans.push(
        unrepairable(
          `schema differs (${problems.join('; ')}): rows cannot be re-queued until the secondary's table matches the primary's`,
        ),
      );
      continue;
    }
    if (shape.key.length === 0) {
      plans.push(unrepairable('no primary key: Bucardo cannot re-apply single rows; copy the table again'));
      continue;
    }
    const sql = new TableSql(shape, method, collationsDiffer(shape, theirs.get(reported.table)!));
    const log = await findChangeLog(sides.primary, sql, job);
    if (!log) {
      plans.push(
        unrepairable(
          `Bucardo keeps no change log for it on the primary (not in sync ${job.syncName}): run bucardo.add_triggers`,
        ),
      );
      continue;
    }
    plans.push(await planTable(sides, reported, sql, log));
  }
  return plans;
}

function verdictOf(report: Omit<RepairReport, 'verdict'>): string {
  const problems = report.tables.filter((t) => t.problem);
  const parts: string[] = [];
  if (report.timedOut)
    parts.push(
      `Bucardo did not apply the ${report.requeued} re-queued key(s) within the wait: see bucardo.status, then run cutover.repair again (it is safe to repeat)`,
    );
  if (report.remaining)
    parts.push(
      `${report.remaining} key(s) still differ after Bucardo re-applied them: see the keys below and the Bucardo log`,
    );
  const ranges = report.tables.reduce((sum, t) => sum + t.remainingRanges, 0);
  if (ranges)
    parts.push(
      `${ranges} range(s) differ beyond this run's budget: run cutover.verify and cutover.repair again`,
    );
  const unlisted = report.tables.reduce((sum, t) => sum + t.unlisted, 0);
  if (unlisted)
    parts.push(
      `${unlisted} more differing key(s) were counted but not named by the verify: run cutover.verify and cutover.repair again`,
    );
  if (problems.length)
    parts.push(
      `not repairable by re-queuing: ${problems.map((t) => `${t.table} (${t.problem})`).join('; ')}`,
    );
  const inFlight = report.tables.reduce((sum, t) => sum + t.inFlight, 0);
  const flying = inFlight ? `; ${inFlight} key(s) with changes on their way were left to replication` : '';
  if (parts.length) return `NOT REPAIRED: ${parts.join('; ')}${flying}.`;
  if (report.requeued === 0)
    return `Nothing to re-queue: what verify #${report.basedOn.id} found differing matches now${flying}.`;
  return `Repaired: Bucardo re-applied ${report.requeued} key(s) in ${report.appliedAfterSeconds} s and all ${report.fixed} now match${flying}.`;
}

export async function repair(ctx: CommandContext): Promise<CommandOutcome<RepairReport>> {
  const { job, activity, progress } = ctx;
  const started = Date.now();
  // Declared in index.ts: --wait SECONDS (also wait=SECONDS); the config's drain_timeout otherwise.
  const waitSeconds = ctx.options.number('wait') ?? cutoverSettings(job.config).drainTimeoutSeconds;
  await adoptRecordedNames(ctx.db, activity);
  await requireReplicating(ctx.db);
  const last = await withRecords(ctx.db, activity, (client) => lastVerifyReport(client, job));
  if (!last)
    throw new OperatorError(
      `No verify is recorded for ${job.name}: cutover.repair repairs the differences cutover.verify found. Run cutover.verify first, then cutover.repair.`,
    );
  const basedOn = {
    id: last.record.id,
    finishedAt: last.record.finishedAt.toISOString(),
    verdict: last.record.verdict,
  };
  if (last.report.tables.some((t) => t.status === 'mismatch' && !Array.isArray(t.keys)))
    throw new OperatorError(
      `The recorded verify #${last.record.id} was made by an older version that did not keep the differing keys. Run cutover.verify again, then cutover.repair.`,
    );

  const ago = Math.round((Date.now() - last.record.finishedAt.getTime()) / 1000);
  if (!last.report.tables.some((t) => t.status === 'mismatch' || t.status === 'schema differs')) {
    const verdict = `Nothing to repair: the last verify (#${last.record.id}, ${ago} s ago) found no differing rows: ${last.record.verdict}`;
    return {
      ok: true,
      message: verdict,
      data: {
        job: job.name,
        basedOn,
        seconds: 0,
        timedOut: false,
        requeued: 0,
        fixed: 0,
        remaining: 0,
        tables: [],
        verdict,
      },
    };
  }
  progress(`looking again at what verify #${last.record.id} found (${ago} s ago)`);
  const sides = await openSides(job, activity);
  try {
    const plans = await planTables(sides, job, last.report);
    const work: Requeue[] = plans
      .filter((p) => p.requeue.length > 0)
      .map((p) => ({ sql: p.sql!, log: p.log!, keys: p.requeue.map((d) => d.key) }));
    let appliedAfterSeconds: number | undefined;
    let timedOut = false;
    if (work.length) {
      const total = work.reduce((sum, w) => sum + w.keys.length, 0);
      progress(`re-queuing ${total} key(s) in ${work.length} table(s) through Bucardo`);
      const txntime = await insertChangeRecords(sides.primary, work);
      ctx.log(
        `  wrote change records for ${total} key(s) on the primary (txntime ${txntime}); kicking sync ${job.syncName}`,
      );
      appliedAfterSeconds = await waitUntilApplied(
        sides.primary,
        work.map((w) => w.log),
        txntime,
        { timeoutSeconds: waitSeconds, activity, progress, kick: () => kickSync(job) },
      );
      timedOut = appliedAfterSeconds === undefined;
    }
    for (const plan of plans) {
      if (plan.requeue.length === 0) continue;
      plan.result.requeued = plan.requeue.length;
      progress(`re-reading the re-queued keys of ${plan.result.table}`);
      const still = await reread(sides, plan.sql!, plan.requeue);
      // A key the application changed meanwhile may differ for a moment: that is replication's business.
      const { mismatched, inFlight } = await classify(sides, plan.sql!, plan.log, still, {
        rounds: timedOut ? 1 : 3,
        pauseMs: 1000,
        signal: activity.signal,
      });
      plan.result.fixed = plan.requeue.length - still.length;
      plan.result.inFlight += inFlight.length;
      plan.result.remaining = listed(plan.sql!.shape, mismatched);
    }
    const tables = plans.map((p) => p.result);
    const requeued = tables.reduce((sum, t) => sum + t.requeued, 0);
    const remaining = tables.reduce((sum, t) => sum + t.remaining.length, 0);
    const partial = {
      job: job.name,
      basedOn,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      ...(appliedAfterSeconds !== undefined ? { appliedAfterSeconds } : {}),
      timedOut,
      requeued,
      fixed: tables.reduce((sum, t) => sum + t.fixed, 0),
      remaining,
      tables,
    };
    const report: RepairReport = { ...partial, verdict: verdictOf(partial) };
    const ok =
      !timedOut &&
      remaining === 0 &&
      tables.every((t) => !t.problem && t.remainingRanges === 0 && t.unlisted === 0);
    return { ok, data: report, message: report.verdict };
  } finally {
    await closeSides([sides]);
  }
}

/** The check the issue asks for: a whole verify (recorded, like cutover.verify's) passes. */
export async function validateRepair(ctx: CommandContext): Promise<Check[]> {
  const report = await runVerify(ctx.job, {
    settings: cutoverSettings(ctx.job.config),
    activity: ctx.activity,
    progress: ctx.progress,
    db: ctx.db,
  });
  await recordVerify(ctx.db, report, ctx.activity);
  return [{ name: 'verify passes', pass: report.passed, detail: report.verdict }];
}
