// Narrowing a differing key range down: split it into pieces on the side with more rows, compare
// the pieces, descend into the ones that differ, and at a few thousand rows compare row by row to
// name the keys. A budget bounds the work when a table differs nearly everywhere. The comparer says
// how pieces are compared: with a verify's horizon, the keys changed since it are set apart in each
// piece (since-horizon.ts), so under a write load only pieces holding a real difference are descended
// into, and the keys in flight are collected from the pieces on the way.
import type { KeyRange, TableSql } from '../../../src/core/compare/sql.js';
import type { Comparer, KeyDiff, RangeComparison, Sides } from '../../../src/core/compare/ranges.js';
import { appendAll } from '../../../src/core/arrays.js';

/** Ranges this small are compared row by row (keys and hashes only). */
export const LEAF_ROWS = 2000;
const PIECES = 16;

export interface NarrowBudget {
  /** Differing keys still to be collected for this table. */
  keys: number;
  /** Piece comparisons still allowed for this table. */
  comparisons: number;
}

export interface Narrowed {
  keys: KeyDiff[];
  /** Differing ranges left as ranges: the budget ran out, or the table has no key. */
  ranges: RangeComparison[];
  /** Keys set apart as changed since the horizon that differ, in the pieces compared (in flight). */
  inFlight: KeyDiff[];
}

export function newBudget(): NarrowBudget {
  return { keys: 1000, comparisons: 400 };
}

export async function narrow(
  sides: Sides,
  sql: TableSql,
  start: RangeComparison,
  budget: NarrowBudget,
  comparer: Comparer,
): Promise<Narrowed> {
  const result: Narrowed = { keys: [], ranges: [], inFlight: [] };
  const pending = [start];
  while (pending.length > 0) {
    const current = pending.pop()!;
    const size = Math.max(current.primary.rows, current.secondary.rows);
    if (!sql.hasKey || budget.keys <= 0) {
      result.ranges.push(current);
      continue;
    }
    const points =
      size > LEAF_ROWS && budget.comparisons > 0 ? await splitPoints(sides, sql, current, size) : [];
    if (points.length === 0) {
      if (size > LEAF_ROWS * 8) {
        result.ranges.push(current);
        continue;
      }
      const rows = await comparer.rows(sides, sql, current.range);
      appendAll(result.keys, rows.differing);
      appendAll(result.inFlight, rows.inFlight);
      budget.keys -= rows.differing.length;
      continue;
    }
    let lower = current.range.lower;
    const pieces: KeyRange[] = [];
    for (const point of points) {
      pieces.push({ ...(lower ? { lower } : {}), upper: point });
      lower = point;
    }
    pieces.push({
      ...(lower ? { lower } : {}),
      ...(current.range.upper ? { upper: current.range.upper } : {}),
    });
    const differing: RangeComparison[] = [];
    for (const piece of pieces) {
      const comparison = await comparer.range(sides, sql, piece);
      budget.comparisons -= 1;
      if (!comparison.same) differing.push(comparison);
      else appendAll(result.inFlight, comparison.inFlight ?? []);
    }
    // Lowest keys first: the keys named (and what is left when the budget runs out) stay in key order.
    appendAll(pending, differing.reverse());
  }
  return result;
}

/** Joins ranges that touch (one ends where the next begins) into one, adding up their rows. */
export function mergeAdjacent(ranges: RangeComparison[]): RangeComparison[] {
  const id = (key: string[] | undefined) => (key ? JSON.stringify(key) : '');
  const byLower = new Map(ranges.filter((r) => r.range.lower).map((r) => [id(r.range.lower), r]));
  const uppers = new Set(ranges.filter((r) => r.range.upper).map((r) => id(r.range.upper)));
  const merged: RangeComparison[] = [];
  for (const head of ranges.filter((r) => !r.range.lower || !uppers.has(id(r.range.lower)))) {
    const run = {
      ...head,
      range: { ...head.range },
      primary: { ...head.primary },
      secondary: { ...head.secondary },
    };
    let next = head.range.upper ? byLower.get(id(head.range.upper)) : undefined;
    while (next) {
      run.primary.rows += next.primary.rows;
      run.secondary.rows += next.secondary.rows;
      if (next.range.upper) run.range.upper = next.range.upper;
      else delete run.range.upper;
      next = next.range.upper ? byLower.get(id(next.range.upper)) : undefined;
    }
    merged.push(run);
  }
  return merged;
}

async function splitPoints(
  sides: Sides,
  sql: TableSql,
  current: RangeComparison,
  size: number,
): Promise<string[][]> {
  // The side with more rows in the range has keys all through it.
  const side = current.primary.rows >= current.secondary.rows ? sides.primary : sides.secondary;
  const statement = sql.splitPoints(current.range, Math.ceil(size / PIECES));
  const { rows } = await side.query<{ key: string[] }>(statement.text, statement.values);
  return rows.map((row) => row.key);
}
