// Judging what still differs in a table after the first pass: narrow the differing ranges down to
// keys, sort the keys into in flight and mismatches, and describe what could not be narrowed.
// With a verify's horizon (since-horizon.ts) the sorting is done by the comparisons themselves: a
// key changed since the horizon is in flight, any other differing key a mismatch. Without one, a
// differing key is re-read while replication may still bring its change (in-flight.ts).
import type { Activity } from '../../../src/core/activity.js';
import type { Job } from '../../../src/core/job.js';
import { pendingChanges } from '../../../src/core/pending.js';
import {
  keyId,
  plainComparer,
  type KeyDiff,
  type RangeComparison,
  type Sides,
} from '../../../src/core/compare/ranges.js';
import { classify, findChangeLog } from '../../../src/core/compare/in-flight.js';
import { mergeAdjacent, narrow, newBudget } from './narrow.js';
import type { DifferingRange, ListedKey, TableReport } from './report.js';
import { sinceHorizon, type ChangeTracking } from './since-horizon.js';
import type { TableSql } from '../../../src/core/compare/sql.js';
import { appendAll } from '../../../src/core/arrays.js';

const MAX_LISTED_KEYS = 1000;

export interface DifferingTable {
  report: TableReport;
  sql: TableSql;
  differing: RangeComparison[];
  /** With a horizon: the table's change records, by which its ranges are compared. */
  tracking?: ChangeTracking;
  /** Keys in flight found by the first pass in ranges that matched otherwise. */
  inFlight: KeyDiff[];
  /** Truncated since the horizon: cutover.finish's final check compares the whole table. */
  truncatedSinceHorizon?: boolean;
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

/** Key order for listing: column by column, integers by value, anything else as text. */
export function compareKeys(x: string[], y: string[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [a, b] = [x[i]!, y[i]!];
    if (a === b) continue;
    if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) return BigInt(a) < BigInt(b) ? -1 : 1;
    return a < b ? -1 : 1;
  }
  return x.length - y.length;
}

export async function judgeTable(
  job: Job,
  sides: Sides,
  w: DifferingTable,
  activity: Activity,
  replicating: boolean,
): Promise<void> {
  const budget = newBudget();
  const comparer = w.tracking ? sinceHorizon(w.tracking) : plainComparer;
  const keys: KeyDiff[] = [];
  const ranges: RangeComparison[] = [];
  const flying: KeyDiff[] = [...w.inFlight];
  for (const comparison of w.differing) {
    activity.throwIfInterrupted();
    const narrowed = await narrow(sides, w.sql, comparison, budget, comparer);
    appendAll(keys, narrowed.keys);
    appendAll(ranges, narrowed.ranges);
    appendAll(flying, narrowed.inFlight);
  }
  // Name the keys in the order narrowing found them (key order), not the order the re-reads returned them.
  const position = new Map(keys.map((d, i) => [keyId(d.key), i]));
  const byPosition = (x: KeyDiff, y: KeyDiff) =>
    (position.get(keyId(x.key)) ?? 0) - (position.get(keyId(y.key)) ?? 0);
  let mismatched: KeyDiff[];
  let inFlight: KeyDiff[];
  if (w.tracking) {
    // Outside the keys changed since the horizon nothing may differ: every key narrowing named is real.
    mismatched = keys;
    inFlight = flying.sort((x, y) => compareKeys(x.key, y.key));
  } else {
    const log = await findChangeLog(sides.primary, w.sql, job);
    // While replication runs, rows in flight get a few seconds to arrive; without it nothing would change.
    ({ mismatched, inFlight } = await classify(sides, w.sql, log, keys, {
      rounds: replicating ? 5 : 1,
      pauseMs: 1000,
      signal: activity.signal,
    }));
    inFlight.sort(byPosition);
  }
  if (w.truncatedSinceHorizon) {
    // A TRUNCATE leaves no change record per key; the final check compares such a table whole.
    inFlight = [...mismatched, ...inFlight].sort((x, y) => compareKeys(x.key, y.key));
    mismatched = [];
  }
  mismatched.sort(byPosition);
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
  const rows = (side: 'primary' | 'secondary') =>
    merged.reduce((sum, r) => sum + r[side].rows, 0).toLocaleString('en');
  if (merged.length > 0 && w.truncatedSinceHorizon) {
    report.status = 'in flight';
    report.problems.push(
      `truncated since the verify's horizon: ${merged.length} range(s) holding ${rows('primary')} row(s) on the primary and ${rows('secondary')} on the secondary differ beyond the rows named; cutover.finish's final check compares the whole table`,
    );
  } else if (merged.length > 0) {
    report.status = 'mismatch';
    // Without a horizon, rows on their way may be what the budget ran out on.
    const backlog = w.tracking
      ? 0
      : (await pendingChanges(sides.primary, job.dbgroupName)).reduce((sum, p) => sum + p.changes, 0);
    report.problems.push(
      `too many differences to name every row: ${merged.length} range(s) holding ${rows('primary')} row(s) on the primary and ${rows('secondary')} on the secondary differ beyond the rows named${backlog ? `; ${backlog} change(s) are still pending replication: run verify again once bucardo.status says caught up` : ''}`,
    );
  } else if (mismatched.length > 0) {
    report.status = 'mismatch';
  } else if (inFlight.length > 0) {
    report.status = 'in flight';
  }
}
