// Judging what still differs in a table after the first pass: narrow the differing ranges down to
// keys, sort the keys into in flight and mismatches, and describe what could not be narrowed.
import type { Activity } from '../../../src/core/activity.js';
import type { Job } from '../../../src/core/job.js';
import { pendingChanges } from '../../../src/core/pending.js';
import { keyId, type KeyDiff, type RangeComparison, type Sides } from './ranges.js';
import { classify, findChangeLog } from './in-flight.js';
import { mergeAdjacent, narrow, newBudget } from './narrow.js';
import type { DifferingRange, ListedKey, TableReport } from './report.js';
import type { TableSql } from './sql.js';
import { appendAll } from '../../../src/core/arrays.js';

const MAX_LISTED_KEYS = 1000;

export interface DifferingTable {
  report: TableReport;
  sql: TableSql;
  differing: RangeComparison[];
}

function keyObject(sql: TableSql, key: string[] | undefined): Record<string, string> | undefined {
  if (!key) return undefined;
  return Object.fromEntries(sql.shape.key.map((column, i) => [column.name, key[i]!]));
}

function describeRange(sql: TableSql, comparison: RangeComparison): DifferingRange {
  const from = keyObject(sql, comparison.range.lower);
  const to = keyObject(sql, comparison.range.upper);
  return {
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    primaryRows: comparison.primary.rows,
    secondaryRows: comparison.secondary.rows,
  };
}

export async function judgeTable(
  job: Job,
  sides: Sides,
  w: DifferingTable,
  activity: Activity,
  replicating: boolean,
): Promise<void> {
  const budget = newBudget();
  const keys: KeyDiff[] = [];
  const ranges: RangeComparison[] = [];
  for (const comparison of w.differing) {
    activity.throwIfInterrupted();
    const narrowed = await narrow(sides, w.sql, comparison, budget);
    appendAll(keys, narrowed.keys);
    appendAll(ranges, narrowed.ranges);
  }
  const log = await findChangeLog(sides.primary, w.sql, job);
  // While replication runs, rows in flight get a few seconds to arrive; without it nothing would change.
  const { mismatched, inFlight } = await classify(sides, w.sql, log, keys, {
    rounds: replicating ? 5 : 1,
    pauseMs: 1000,
    signal: activity.signal,
  });
  // Name the keys in the order narrowing found them (key order), not the order the re-reads returned them.
  const position = new Map(keys.map((d, i) => [keyId(d.key), i]));
  const byPosition = (x: KeyDiff, y: KeyDiff) =>
    (position.get(keyId(x.key)) ?? 0) - (position.get(keyId(y.key)) ?? 0);
  mismatched.sort(byPosition);
  inFlight.sort(byPosition);
  const report = w.report;
  for (const diff of mismatched) report[diff.kind] += 1;
  report.inFlight = inFlight.length;
  const listed: ListedKey[] = [
    ...mismatched.map((d) => ({ key: keyObject(w.sql, d.key)!, difference: d.kind, inFlight: false })),
    ...inFlight.map((d) => ({ key: keyObject(w.sql, d.key)!, difference: d.kind, inFlight: true })),
  ];
  report.keys = listed.slice(0, MAX_LISTED_KEYS);
  const merged = mergeAdjacent(ranges);
  report.ranges = merged.map((r) => describeRange(w.sql, r));
  if (merged.length > 0) {
    report.status = 'mismatch';
    const backlog = log
      ? (await pendingChanges(sides.primary, job.dbgroupName)).reduce((sum, p) => sum + p.changes, 0)
      : 0;
    const rows = (side: 'primary' | 'secondary') =>
      merged.reduce((sum, r) => sum + r[side].rows, 0).toLocaleString('en');
    report.problems.push(
      `too many differences to name every row: ${merged.length} range(s) holding ${rows('primary')} row(s) on the primary and ${rows('secondary')} on the secondary differ beyond the rows named${backlog ? `; ${backlog} change(s) are still pending replication: run verify again once bucardo.status says caught up` : ''}`,
    );
  } else if (mismatched.length > 0) {
    report.status = 'mismatch';
  } else if (inFlight.length > 0) {
    report.status = 'in flight';
  }
}
