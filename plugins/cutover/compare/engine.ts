// Verify: compare every table in scope on primary and secondary, chunk by chunk on the server.
// Before reading anything it puts Bucardo's change records on hold and takes the horizon from which
// cutover.finish re-compares changed keys (capture.ts). Tables whose changes Bucardo records are
// then compared with the keys changed since the horizon set apart (since-horizon.ts): those keys
// are in flight when they differ, which the final check covers, and everything else must be equal
// now. So a verify under a live write load needs no quiet moment: it neither waits for replication
// nor loses its way in ranges that keep changing.
// 1. Checksum every key range on both sides (tables in parallel over a few connection pairs).
// 2. Tables without change records only: while replication is running, re-check the differing
//    ranges until they match or the backlog is empty (settle_time at most).
// 3. Narrow what still differs down to keys, and sort those keys into in flight and mismatches
//    (without change records: an unapplied change is recorded, or the row still differs on a re-read).
// 4. Cross-check each table's exact row count on both sides: independent of the chunk checksums,
//    so a chunk comparison that wrongly said "same" still cannot hide rows missing from a table.
// 5. Compare sequences.
import { sleep, type Activity } from '../../../src/core/activity.js';
import { DatabaseContext } from '../../../src/core/context.js';
import { withClient, type Client } from '../../../src/core/db.js';
import type { Job } from '../../../src/core/job.js';
import { findReplicationObjects } from '../../../src/core/objects.js';
import { pendingChanges } from '../../../src/core/pending.js';
import { daemonPid } from '../../../src/core/bucardo/daemon.js';
import { copyState } from '../../../src/core/copy/progress.js';
import { appendAll } from '../../../src/core/arrays.js';
import { holdAndTakeHorizon, holdKey, releaseHold, truncatedSince } from './capture.js';
import { findChangeLog } from '../../../src/core/compare/in-flight.js';
import {
  compareRange,
  integerChunks,
  keyId,
  plainComparer,
  walkedChunks,
  type Comparer,
  type KeyDiff,
  type RangeComparison,
  type Sides,
} from '../../../src/core/compare/ranges.js';
import { judgeTable } from './judge.js';
import { countSinceHorizon, sinceHorizon, type ChangeTracking } from './since-horizon.js';
import { closeSides, openSides, runTasks, TaskQueue, type Task } from './pool.js';
import { hashMethod, prepareSession, type HashMethod } from '../../../src/core/compare/sql.js';
import { summarise, type CopiedTableReport, type TableReport, type VerifyReport } from './report.js';
import { compareSequences } from './sequences.js';
import {
  collationsDiffer,
  hasIntegerKey,
  readShapes,
  shapeProblems,
  tableId,
} from '../../../src/core/compare/shape.js';
import { TableSql, type KeyRange } from '../../../src/core/compare/sql.js';
import type { CutoverSettings } from '../settings.js';

export interface VerifyOptions {
  settings: CutoverSettings;
  /** Seconds to wait for differing rows to arrive (overrides settle_time). */
  settleSeconds?: number;
  /** Rows in flight and sequences behind fail the verify (the final verify of cutover.finish). */
  strict?: boolean;
  activity: Activity;
  progress(text: string): void;
  /** The command's sessions (`ctx.db`): Bucardo's metadata is asked there; without, on sessions of its own. */
  db?: DatabaseContext;
}

interface TableWork {
  report: TableReport;
  sql: TableSql;
  differing: RangeComparison[];
  /** With a horizon and Bucardo's change records for the table: compared with changed keys set apart. */
  tracking?: ChangeTracking;
  comparer: Comparer;
  /** Keys in flight in ranges that matched otherwise. */
  inFlight: KeyDiff[];
  truncatedSinceHorizon?: boolean;
  startedAt: number;
  doneAt?: number;
  chunksLeft: number;
  /** All of the table's chunks are known (queued). */
  walked: boolean;
}

function emptyReport(table: string): TableReport {
  return {
    table,
    status: 'match',
    rowsPrimary: 0,
    rowsSecondary: 0,
    chunks: 0,
    missing: 0,
    extra: 0,
    changed: 0,
    inFlight: 0,
    keys: [],
    ranges: [],
    problems: [],
    seconds: 0,
  };
}

export async function runVerify(job: Job, options: VerifyOptions): Promise<VerifyReport> {
  const { settings, activity, progress } = options;
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const strict = options.strict ?? false;
  const notes: string[] = [];
  progress('reading the tables in scope on both sides');
  return withClient(
    job,
    { role: 'primary', activity, applicationName: 'bucardo-console cutover.verify' },
    (primary) =>
      withClient(
        job,
        { role: 'secondary', activity, applicationName: 'bucardo-console cutover.verify' },
        async (secondary) => {
          await Promise.all([prepareSession(primary), prepareSession(secondary)]);
          const method = await hashMethod(primary, secondary);
          progress("holding Bucardo's change records and taking the horizon for the final check");
          const horizon = await holdAndTakeHorizon(primary, job);
          const scope = await findReplicationObjects(primary, job.config.bucardo.replicationObjects);
          const [ourShapes, theirShapes] = await Promise.all([
            readShapes(primary, scope.tables),
            readShapes(secondary, scope.tables),
          ]);

          const work: TableWork[] = [];
          const reports: TableReport[] = [];
          for (const table of scope.tables) {
            const id = tableId(table);
            const report = emptyReport(id);
            reports.push(report);
            const ours = ourShapes.get(id);
            if (!ours) continue;
            const theirs = theirShapes.get(id);
            const problems = shapeProblems(ours, theirs);
            if (problems.length) {
              report.status = 'schema differs';
              report.problems = problems;
              continue;
            }
            if (ours.key.length === 0)
              report.problems.push(
                'no primary key: compared as a whole, differences cannot be narrowed to rows',
              );
            const forceC = collationsDiffer(ours, theirs!);
            if (forceC)
              report.problems.push(
                'the key\'s collation differs between the servers: ranges are compared in the "C" collation (slower)',
              );
            const sql = new TableSql(ours, method, forceC);
            const log = horizon && sql.hasKey ? await findChangeLog(primary, sql, job) : undefined;
            const tracking = log ? { log, from: horizon!.from } : undefined;
            work.push({
              report,
              sql,
              differing: [],
              ...(tracking ? { tracking } : {}),
              comparer: tracking ? sinceHorizon(tracking) : plainComparer,
              inFlight: [],
              startedAt: 0,
              chunksLeft: 0,
              walked: false,
            });
          }

          const { replicating, why } = await replicationState(options.db ?? job);
          const pool: Sides[] = [];
          try {
            for (let i = 0; i < Math.max(1, Math.min(settings.jobs, work.length)); i++)
              pool.push(await openSides(job, activity));
            const counters = {
              rows: 0,
              tablesDone: 0,
              estimate: work.reduce((sum, w) => sum + Math.max(0, w.sql.shape.estimatedRows), 0),
            };
            const report = (text: string) =>
              progress(
                `${text}: ${counters.rows.toLocaleString('en')}${counters.estimate ? ` of ~${Math.round(counters.estimate).toLocaleString('en')}` : ''} rows, ${counters.tablesDone}/${work.length} tables done`,
              );

            const recordChunk = (w: TableWork, comparison: RangeComparison) => {
              w.report.chunks += 1;
              w.report.rowsPrimary += comparison.primary.rows;
              w.report.rowsSecondary += comparison.secondary.rows;
              counters.rows += Math.max(comparison.primary.rows, comparison.secondary.rows);
              if (comparison.setApart !== undefined)
                w.report.changedSinceHorizon = (w.report.changedSinceHorizon ?? 0) + comparison.setApart;
              if (!comparison.same) w.differing.push(comparison);
              else if (comparison.inFlight) appendAll(w.inFlight, comparison.inFlight);
              report(`checking ${w.report.table}`);
            };
            const tableDone = (w: TableWork) => {
              w.doneAt = Date.now();
              counters.tablesDone += 1;
            };

            // Pass 1. Every chunk is a task any connection pair can take. Integer keys are cut up front;
            // other keys are walked on the primary (an index scan, much cheaper than hashing rows) by a
            // task that queues each chunk it finds. Walks start first, the biggest tables first.
            const queue = new TaskQueue();
            const chunkTask =
              (w: TableWork, range: KeyRange): Task =>
              async (sides) => {
                recordChunk(w, await w.comparer.range(sides, w.sql, range));
                if (--w.chunksLeft === 0 && w.walked) tableDone(w);
              };
            const ordered = [...work].sort((x, y) => y.sql.shape.estimatedRows - x.sql.shape.estimatedRows);
            const walks: Task[] = [];
            for (const w of ordered) {
              w.startedAt = Date.now();
              if (w.sql.hasKey && hasIntegerKey(w.sql.shape)) {
                const ranges = await integerChunks(primary, w.sql, settings.chunkRows);
                w.chunksLeft = ranges.length;
                w.walked = true;
                for (const range of ranges) queue.push(chunkTask(w, range));
              } else {
                walks.push(async (sides) => {
                  const ranges: AsyncIterable<KeyRange> = w.sql.hasKey
                    ? walkedChunks(sides.primary, w.sql, settings.chunkRows)
                    : single();
                  for await (const range of ranges) {
                    activity.throwIfInterrupted();
                    w.chunksLeft += 1;
                    queue.push(chunkTask(w, range), true);
                  }
                  w.walked = true;
                  if (w.chunksLeft === 0) tableDone(w);
                });
              }
            }
            for (const walk of walks.reverse()) queue.push(walk, true);
            report('checking');
            await queue.run(pool, activity);

            if (why && work.some((w) => !w.tracking && w.differing.length > 0)) notes.push(why);
            await settle(job, primary, pool, work, { ...options, replicating });
            if (horizon) {
              // A TRUNCATE leaves no change record per key, but the final check compares such a table whole.
              const truncated = await truncatedSince(primary, job, horizon.from);
              for (const w of work)
                if (w.tracking && truncated.has(w.report.table)) w.truncatedSinceHorizon = true;
            }

            // Narrow down and judge what still differs, table by table in parallel.
            const differing = work.filter((w) => w.differing.length > 0 || w.inFlight.length > 0);
            let judged = 0;
            await runTasks(
              pool,
              differing.map((w) => async (sides: Sides) => {
                progress(
                  `narrowing down the differences in ${w.report.table} (${judged}/${differing.length} tables done)`,
                );
                await judgeTable(job, sides, w, activity, replicating);
                judged += 1;
              }),
              activity,
            );

            for (const w of work)
              w.report.seconds = Math.round(((w.doneAt ?? Date.now()) - w.startedAt) / 100) / 10;
            progress("counting every table's rows on both sides");
            await crossCheckCounts(job, primary, pool, work, { ...options, replicating });
            progress('comparing sequences');
            const sequences = await compareSequences(primary, secondary, scope.sequences);
            const copied = await compareCopiedTables(pool[0]!, settings, method);
            if (copied.length) notes.push(describeCopied(copied));
            const result = summarise(job, { startedAt, started, method, strict, reports, sequences, notes });
            if (copied.length) result.copiedAtCutover = copied;
            if (horizon && result.passed) result.horizon = horizon;
            // A failed verify cannot serve a cutover: let Bucardo purge again until the next one.
            else if (horizon) await releaseHold(primary, holdKey(job));
            return result;
          } finally {
            await closeSides(pool);
          }
        },
      ),
  );
}

/**
 * The tables cutover.finish copies at the switch (cutover.copy_at_cutover, outside replication),
 * compared whole on both sides: exact row counts and one hash of all rows, as the final check does
 * for tables without change capture.
 */
async function compareCopiedTables(
  sides: Sides,
  settings: CutoverSettings,
  method: HashMethod,
): Promise<CopiedTableReport[]> {
  const tables = settings.copyAtCutover;
  if (!tables.length) return [];
  const [ours, theirs] = await Promise.all([
    readShapes(sides.primary, tables),
    readShapes(sides.secondary, tables),
  ]);
  const reports: CopiedTableReport[] = [];
  for (const table of tables) {
    const id = tableId(table);
    const report: CopiedTableReport = { table: id, rowsPrimary: 0, rowsSecondary: 0, same: false };
    reports.push(report);
    const shape = ours.get(id);
    const problems = shape ? shapeProblems(shape, theirs.get(id)) : ['missing on the primary'];
    if (problems.length) {
      report.problem = problems.join('; ');
      continue;
    }
    const whole = await compareRange(
      sides,
      new TableSql(shape!, method, collationsDiffer(shape!, theirs.get(id)!)),
      {},
    );
    report.rowsPrimary = whole.primary.rows;
    report.rowsSecondary = whole.secondary.rows;
    report.same = whole.same;
  }
  return reports;
}

function describeCopied(copied: CopiedTableReport[]): string {
  const each = copied.map((t) =>
    t.problem
      ? `${t.table}: cannot be compared (${t.problem})`
      : `${t.table}: ${t.same ? 'identical' : 'differs'} (${t.rowsPrimary} row(s) on the primary, ${t.rowsSecondary} on the secondary)`,
  );
  return `copied whole by cutover.finish in the write pause (cutover.copy_at_cutover), compared whole, not part of the verdict: ${each.join('; ')}`;
}

/**
 * Whether replication is running and past its initial copy: only then is it worth waiting for
 * differing rows to arrive. `why` says otherwise (worth telling when something differs). Bucardo's
 * metadata is read on `source`'s sessions when it is a command's `ctx.db`.
 */
export async function replicationState(
  source: Job | DatabaseContext,
): Promise<{ replicating: boolean; why?: string }> {
  const job = source instanceof DatabaseContext ? source.job : source;
  if (!daemonPid(job))
    return {
      replicating: false,
      why: 'the Bucardo daemon is not running here: differing rows were judged without waiting for replication',
    };
  const copy = await copyState(source).catch(() => undefined);
  if (copy && copy.state !== 'done' && copy.state !== 'not requested') {
    return {
      replicating: false,
      why: `the initial copy has not finished (${copy.state}${copy.table ? `, now ${copy.table}` : ''}): tables still being copied differ; bucardo.wait_for_copy waits for it`,
    };
  }
  return { replicating: true };
}

async function* single(): AsyncGenerator<KeyRange> {
  yield {};
}

/**
 * Re-checks the differing ranges while replication may still bring the rows over, until they all
 * match, the deadline passes, or nothing is pending any more (what differs then is not on its way;
 * the per-key judgement that follows catches rows that arrived in between).
 */
async function settle(
  job: Job,
  primary: Client,
  pool: Sides[],
  work: TableWork[],
  options: VerifyOptions & { replicating: boolean },
): Promise<void> {
  const seconds = options.settleSeconds ?? options.settings.settleSeconds;
  // Tables compared since the horizon need no wait: their rows on the way are known as such.
  let open = work.filter((w) => !w.tracking && w.differing.length > 0);
  if (open.length === 0 || seconds <= 0 || !options.replicating) return;
  const deadline = Date.now() + seconds * 1000;
  while (open.length > 0 && Date.now() < deadline) {
    const backlog = (await pendingChanges(primary, job.dbgroupName)).reduce((sum, p) => sum + p.changes, 0);
    if (backlog === 0) return;
    const ranges = open.reduce((sum, w) => sum + w.differing.length, 0);
    options.progress(
      `${ranges} range(s) in ${open.length} table(s) differ; waiting for replication (backlog ${backlog} change(s), up to ${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s more)`,
    );
    await sleep(1000, options.activity.signal);
    const tasks: Task[] = [];
    for (const w of open) {
      const previous = w.differing;
      w.differing = [];
      for (const comparison of previous) {
        tasks.push(async (sides) => {
          const again = await compareRange(sides, w.sql, comparison.range);
          fixCounts(w, comparison, again);
          if (!again.same) w.differing.push(again);
        });
      }
    }
    await runTasks(pool, tasks, options.activity);
    open = open.filter((w) => w.differing.length > 0);
  }
}

/** A range re-checked later counts with its latest row counts. */
function fixCounts(w: TableWork, before: RangeComparison, after: RangeComparison): void {
  w.report.rowsPrimary += after.primary.rows - before.primary.rows;
  w.report.rowsSecondary += after.secondary.rows - before.secondary.rows;
}

/**
 * How many more rows the primary should have than the secondary given the differing keys already
 * named: each row missing on the secondary adds one, each row only there takes one. When the table's
 * differences could not all be named (ranges, or more keys than listed), any gap counts as explained.
 */
export function explainedGap(report: TableReport): number {
  if (
    report.ranges.length > 0 ||
    report.keys.length < report.missing + report.extra + report.changed + report.inFlight
  )
    return NaN;
  return report.keys.reduce(
    (sum, k) => sum + (k.difference === 'missing' ? 1 : k.difference === 'extra' ? -1 : 0),
    0,
  );
}

/**
 * With a horizon: the gap between the two sides' counts of the rows outside the keys changed since
 * the horizon that the differing keys already named explain (a key changed since the count is set
 * apart there, so it explains nothing). NaN when the table's differences could not all be named.
 */
export function explainedGapOutside(
  report: TableReport,
  changedSinceHorizon: (key: Record<string, string>) => boolean,
): number {
  const named = report.keys.filter((k) => !k.inFlight);
  if (report.ranges.length > 0 || named.length < report.missing + report.extra + report.changed) return NaN;
  return named
    .filter((k) => !changedSinceHorizon(k.key))
    .reduce((sum, k) => sum + (k.difference === 'missing' ? 1 : k.difference === 'extra' ? -1 : 0), 0);
}

/**
 * Exact row counts per table on both sides. For a table compared since the horizon, the rows of the
 * keys changed since then are set apart as in its ranges, so the rest must agree at once, load or
 * not (one count). Otherwise the two counts are taken at slightly different moments: while changes
 * are pending, a difference is re-counted until it goes or nothing is pending any more (settle_time
 * at most). A difference with nothing pending fails the table even when every chunk compared equal.
 */
async function crossCheckCounts(
  job: Job,
  primary: Client,
  pool: Sides[],
  allWork: TableWork[],
  options: VerifyOptions & { replicating: boolean },
): Promise<void> {
  await runTasks(
    pool,
    allWork.filter((w) => w.tracking).map((w) => async (sides: Sides) => crossCheckSinceHorizon(sides, w)),
    options.activity,
  );
  const work = allWork.filter((w) => !w.tracking);
  const count =
    (w: TableWork): Task =>
    async (sides) => {
      const statement = w.sql.rowCount();
      const [ours, theirs] = await Promise.all([
        sides.primary.query<{ n: string }>(statement),
        sides.secondary.query<{ n: string }>(statement),
      ]);
      w.report.counts = { primary: Number(ours.rows[0]!.n), secondary: Number(theirs.rows[0]!.n) };
    };
  const differ = (w: TableWork) => {
    const gap = explainedGap(w.report);
    return (
      w.report.counts !== undefined &&
      !Number.isNaN(gap) &&
      w.report.counts.primary - w.report.counts.secondary !== gap
    );
  };
  await runTasks(pool, work.map(count), options.activity);
  let open = work.filter(differ);
  const deadline = Date.now() + (options.settleSeconds ?? options.settings.settleSeconds) * 1000;
  let pending = 0;
  while (open.length > 0) {
    pending = options.replicating
      ? (await pendingChanges(primary, job.dbgroupName)).reduce((sum, p) => sum + p.changes, 0)
      : 0;
    if (pending === 0 || Date.now() >= deadline) break;
    options.progress(
      `row counts differ in ${open.length} table(s); re-counting while replication applies ${pending} change(s)`,
    );
    await sleep(1000, options.activity.signal);
    await runTasks(pool, open.map(count), options.activity);
    open = open.filter(differ);
  }
  if (open.length && pending === 0) {
    // Nothing pending: one last count, so a change applied just before the backlog query does not count.
    await runTasks(pool, open.map(count), options.activity);
    open = open.filter(differ);
  }
  for (const w of open) {
    const { primary: ours, secondary: theirs } = w.report.counts!;
    if (pending === 0) {
      if (w.report.status === 'match' || w.report.status === 'in flight') w.report.status = 'mismatch';
      w.report.problems.push(
        `row counts differ: ${ours.toLocaleString('en')} on the primary, ${theirs.toLocaleString('en')} on the secondary, with nothing pending replication`,
      );
    } else {
      w.report.problems.push(
        `row counts differ (${ours.toLocaleString('en')} on the primary, ${theirs.toLocaleString('en')} on the secondary) while ${pending} change(s) are still pending: run verify again once bucardo.status says caught up`,
      );
    }
  }
}

async function crossCheckSinceHorizon(sides: Sides, w: TableWork): Promise<void> {
  const counted = await countSinceHorizon(sides, w.sql, w.tracking!);
  w.report.counts = { primary: counted.primary, secondary: counted.secondary };
  const gap = explainedGapOutside(w.report, (key) =>
    counted.changed.has(keyId(w.sql.shape.key.map((column) => key[column.name]!))),
  );
  if (Number.isNaN(gap) || counted.primaryRest - counted.secondaryRest === gap) return;
  const n = (value: number) => value.toLocaleString('en');
  if (w.truncatedSinceHorizon) {
    w.report.problems.push(
      `row counts differ (${n(counted.primary)} on the primary, ${n(counted.secondary)} on the secondary) in a table truncated since the verify's horizon: cutover.finish's final check compares it whole`,
    );
    return;
  }
  if (w.report.status === 'match' || w.report.status === 'in flight') w.report.status = 'mismatch';
  w.report.problems.push(
    `row counts differ: ${n(counted.primary)} on the primary, ${n(counted.secondary)} on the secondary; without the ${n(counted.changed.size)} key(s) changed since the verify's horizon, ${n(counted.primaryRest)} and ${n(counted.secondaryRest)}, a gap the keys named do not explain`,
  );
}
