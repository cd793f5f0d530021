// The final check of cutover.finish, inside the write pause: instead of a full verify, re-compare
// row by row only the keys Bucardo recorded as changed since the horizon of the last passing verify
// (capture.ts explains why nothing else can differ), plus each table's exact row count on both sides
// and the sequences. Tables truncated since then, and tables without change capture, are compared
// in full. Its cost grows with what was written since the verify, not with the database.
import type { Activity } from '../../../src/core/activity.js';
import type { Client } from '../../../src/core/db.js';
import type { Job } from '../../../src/core/job.js';
import { quoteQualified } from '../../../src/core/quote.js';
import { truncatedSince, type ChangeHorizon } from './capture.js';
import {
  compareRange,
  diffRows,
  keyId,
  rowHashes,
  type KeyDiff,
  type Sides,
} from '../../../src/core/compare/ranges.js';
import { classify, findChangeLog, type ChangeLog } from '../../../src/core/compare/in-flight.js';
import { runTasks, withComparison } from './pool.js';
import { describeKey, type RowDifference } from './report.js';
import { compareSequences, type SequenceReport } from './sequences.js';
import { collationsDiffer, shapeProblems, tableId } from '../../../src/core/compare/shape.js';
import { TableSql } from '../../../src/core/compare/sql.js';
import { appendAll } from '../../../src/core/arrays.js';
import type { CutoverSettings } from '../settings.js';

const BATCH_KEYS = 10_000;
const MAX_LISTED = 20;

export interface FinalTable {
  table: string;
  /** Keys changed since the horizon, each compared row by row. */
  keysCompared: number;
  /** Compared whole (truncated since the horizon, no change capture, or no primary key). */
  compared: 'changed keys' | 'whole table';
  /** Keys the last verify listed in flight in this table: all among those compared. */
  verifyInFlight: number;
  /** Exact row counts (absent with cutover.final_row_counts off). */
  rowsPrimary?: number;
  rowsSecondary?: number;
  /** Seconds spent counting this table's rows on both sides. */
  countSeconds?: number;
  differing: { key: string; difference: RowDifference }[];
  problems: string[];
}

export interface FinalCheck {
  passed: boolean;
  /** The horizon the keys were taken from (null: every kept change record). */
  from: string | null;
  /** Whose horizon that is: the last verify's, or the pre-check's taken before the pause. */
  since: 'verify' | 'pre-check';
  keysCompared: number;
  /** Keys the last verify listed in flight: all compared (they changed since its horizon). */
  verifyInFlight: number;
  tablesWhole: number;
  /** Seconds spent counting rows, summed over the tables (they are counted in parallel). */
  countSeconds: number;
  tables: FinalTable[];
  sequences: SequenceReport[];
  seconds: number;
  verdict: string;
}

async function changedKeys(
  primary: Client,
  sql: TableSql,
  log: ChangeLog,
  from: string | null,
): Promise<string[][]> {
  // The delta table's columns carry the key columns' names, so the key expression reads it as well.
  const { rows } = await primary.query<{ key: string[] }>(
    `SELECT DISTINCT ${sql.keyTextArray()} AS key FROM ${log.delta}
      WHERE $1::timestamptz IS NULL OR txntime >= $1::timestamptz`,
    [from],
  );
  return rows.map((row) => row.key);
}

async function exactCount(client: Client, table: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

export interface FinalCheckOptions {
  settings: CutoverSettings;
  /**
   * The keys the last verify listed in flight, per table. They changed since its horizon, so the
   * changed keys include them; they are compared even if they did not.
   */
  verifyInFlight?: Map<string, Record<string, string>[]>;
  /** The horizon came from the pre-check (compare/pre-check.ts): said in the result. */
  since?: 'verify' | 'pre-check';
  /**
   * From when on a truncated table is compared whole: the verify's horizon, also when the keys are
   * taken from the pre-check's (the pre-check leaves tables truncated since the verify to this check).
   */
  truncatedFrom?: string | null;
  activity: Activity;
  progress(text: string): void;
  /**
   * Connection pairs opened before the write pause (cutover.finish): used first, left open for the
   * caller to close. Opening them takes tens of milliseconds each that the application would wait.
   */
  sessions?: Sides[];
  /**
   * Tables outside replication copied whole at the switch (cutover.copy_at_cutover), just before this
   * check: compared whole too, so the switch proves the copy.
   */
  copiedWhole?: { schema: string; name: string }[];
}

export async function runFinalCheck(
  job: Job,
  horizon: ChangeHorizon,
  options: FinalCheckOptions,
): Promise<FinalCheck> {
  const started = Date.now();
  const { activity, progress } = options;
  const opening = {
    sessions: options.sessions,
    jobs: options.settings.jobs,
    activity,
    alsoTables: options.copiedWhole,
  };
  return withComparison(job, opening, async ({ pool, method, scope, ourShapes, theirShapes }) => {
    const { primary, secondary } = pool[0]!;
    const truncated = await truncatedSince(
      primary,
      job,
      options.truncatedFrom !== undefined ? options.truncatedFrom : horizon.from,
    );

    const tables: FinalTable[] = [];
    let done = 0;
    await runTasks(
      pool,
      scope.tables.map((relation) => async (sides: Sides) => {
        const id = tableId(relation);
        const result: FinalTable = {
          table: id,
          keysCompared: 0,
          compared: 'changed keys',
          verifyInFlight: 0,
          differing: [],
          problems: [],
        };
        tables.push(result);
        const ours = ourShapes.get(id);
        if (!ours) return;
        const theirs = theirShapes.get(id);
        const problems = shapeProblems(ours, theirs);
        if (problems.length) {
          result.problems.push(...problems.map((p) => `schema differs: ${p}`));
          return;
        }
        const sql = new TableSql(ours, method, collationsDiffer(ours, theirs!));
        const flying = (options.verifyInFlight?.get(id) ?? [])
          .map((key) => sql.shape.key.map((column) => key[column.name]))
          .filter((key): key is string[] => key.every((value) => value !== undefined));
        result.verifyInFlight = flying.length;
        const log = sql.hasKey ? await findChangeLog(sides.primary, sql, job) : undefined;
        const diffs: KeyDiff[] = [];
        if (!log || truncated.has(id)) {
          result.compared = 'whole table';
          const whole = await compareRange(sides, sql, {});
          if (!whole.same) {
            result.problems.push(
              `the whole-table comparison differs (${whole.primary.rows} row(s) on the primary, ${whole.secondary.rows} on the secondary)`,
            );
          }
        } else {
          const keys = await changedKeys(sides.primary, sql, log, horizon.from);
          const changed = new Set(keys.map(keyId));
          appendAll(
            keys,
            flying.filter((key) => !changed.has(keyId(key))),
          );
          result.keysCompared = keys.length;
          for (let i = 0; i < keys.length; i += BATCH_KEYS) {
            activity.throwIfInterrupted();
            const statement = sql.rowHashesFor(keys.slice(i, i + BATCH_KEYS));
            const [ourRows, theirRows] = await Promise.all([
              rowHashes(sides.primary, statement),
              rowHashes(sides.secondary, statement),
            ]);
            appendAll(diffs, diffRows(ourRows, theirRows));
          }
          // Writes are stopped and the backlog drained: a difference with a change pending is a late write,
          // anything else is a real difference. Either way the switch must not happen.
          const { mismatched, inFlight } = await classify(sides, sql, log, diffs, {
            rounds: 1,
            pauseMs: 0,
            signal: activity.signal,
          });
          for (const d of mismatched) {
            const key = describeKey(
              Object.fromEntries(sql.shape.key.map((column, i) => [column.name, d.key[i]!])),
            );
            result.differing.push({ key, difference: d.kind });
          }
          if (inFlight.length)
            result.problems.push(
              `${inFlight.length} changed key(s) have a change not yet replicated (written after the drain?)`,
            );
        }
        if (options.settings.finalRowCounts) {
          const counting = Date.now();
          const table = quoteQualified(relation.schema, relation.name);
          [result.rowsPrimary, result.rowsSecondary] = await Promise.all([
            exactCount(sides.primary, table),
            exactCount(sides.secondary, table),
          ]);
          result.countSeconds = Math.round((Date.now() - counting) / 100) / 10;
          if (result.rowsPrimary !== result.rowsSecondary) {
            result.problems.push(
              `row counts differ: ${result.rowsPrimary} on the primary, ${result.rowsSecondary} on the secondary`,
            );
          }
        }
        progress(`${++done}/${scope.tables.length} tables checked`);
      }),
      activity,
    );
    tables.sort((x, y) => x.table.localeCompare(y.table));

    const sequences = await compareSequences(primary, secondary, scope.sequences);
    const behind = sequences.filter((q) => q.status !== 'ahead' && q.status !== 'match');
    const failing = tables.filter((t) => t.differing.length > 0 || t.problems.length > 0);
    const keysCompared = tables.reduce((sum, t) => sum + t.keysCompared, 0);
    const verifyInFlight = tables.reduce((sum, t) => sum + t.verifyInFlight, 0);
    const tablesWhole = tables.filter((t) => t.compared === 'whole table').length;
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    const passed = failing.length === 0 && behind.length === 0;
    const whole = tablesWhole ? ` (${tablesWhole} compared whole)` : '';
    const counts = options.settings.finalRowCounts
      ? 'row counts equal'
      : 'row counts not taken (cutover.final_row_counts off)';
    const amongThem = verifyInFlight
      ? ` (among them the ${verifyInFlight} key(s) the verify found in flight)`
      : '';
    const scopeText = `${keysCompared} changed key(s)${amongThem} compared row by row in ${tables.length} table(s)${whole}, ${counts}, ${sequences.length} sequence(s) at or past the primary's`;
    const problems = [
      ...failing.map(describeFailure),
      ...behind.map((q) => `sequence ${q.sequence} ${q.status}`),
    ];
    const countSeconds = Math.round(tables.reduce((sum, t) => sum + (t.countSeconds ?? 0), 0) * 10) / 10;
    return {
      passed,
      from: horizon.from,
      since: options.since ?? 'verify',
      keysCompared,
      verifyInFlight,
      tablesWhole,
      countSeconds,
      tables,
      sequences,
      seconds,
      verdict: passed ? `Identical: ${scopeText}.` : `FAILED: ${problems.join('; ')}.`,
    };
  });
}

function describeFailure(t: FinalTable): string {
  const keys = t.differing.slice(0, MAX_LISTED).map((d) => `${d.key} (${d.difference})`);
  if (t.differing.length > MAX_LISTED) keys.push(`${t.differing.length - MAX_LISTED} more`);
  return `${t.table}: ${[...keys, ...t.problems].join('; ')}`;
}
