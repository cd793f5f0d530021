// The result of a verify, as data: what cutover.verify prints (as a table or JSON), records, and
// what cutover.check and cutover.finish judge. No database code here (the menu loads it).
import type { SequenceReport } from './sequences.js';

/** missing: on the primary only; extra: on the secondary only; changed: same key, different content. */
export type RowDifference = 'missing' | 'extra' | 'changed';

export interface ListedKey {
  key: Record<string, string>;
  difference: RowDifference;
  inFlight: boolean;
}

export interface DifferingRange {
  /** Key where the range starts (inclusive); absent: from the first key. */
  from?: Record<string, string>;
  /** Key where the range ends (exclusive); absent: to the last key. */
  to?: Record<string, string>;
  primaryRows: number;
  secondaryRows: number;
}

/**
 * match: identical; in flight: the only differences are rows whose changes are still on their way;
 * mismatch: rows differ with nothing pending for them; schema differs: not comparable row by row.
 */
export type TableStatus = 'match' | 'in flight' | 'mismatch' | 'schema differs';

export interface TableReport {
  table: string;
  status: TableStatus;
  rowsPrimary: number;
  rowsSecondary: number;
  chunks: number;
  missing: number;
  extra: number;
  changed: number;
  inFlight: number;
  /** Differing keys (confirmed first, then in flight); at most 1000. */
  keys: ListedKey[];
  /** Differing ranges that were not narrowed down to keys. */
  ranges: DifferingRange[];
  problems: string[];
  seconds: number;
  /** Exact row counts of the whole table on each side (the cross-check of the chunk sums). */
  counts?: { primary: number; secondary: number };
}

export interface VerifyReport {
  job: string;
  startedAt: string;
  seconds: number;
  /** How rows were hashed: hashtextextended of the row's text, or md5 on servers before PostgreSQL 11. */
  method: string;
  /** No row or schema differs (rows in flight allowed; with strict, nothing may be in flight). */
  passed: boolean;
  /** Passed, nothing in flight and no sequence behind. */
  clean: boolean;
  strict: boolean;
  verdict: string;
  tables: TableReport[];
  sequences: SequenceReport[];
  totals: {
    tables: number;
    rowsPrimary: number;
    rowsSecondary: number;
    mismatchedRows: number;
    inFlightRows: number;
    rowsPerSecond: number;
  };
  notes: string[];
  /**
   * Where cutover.finish's final check starts: Bucardo's change records are kept from the verify's
   * start, and every key changed at or after `from` is re-compared (absent: no change capture).
   */
  horizon?: { takenAt: string; from: string | null; heldSince: string; reason: string };
  /** Id of the recorded result in the metadata database (cutover.verify_run). */
  recordId?: number;
}

export function failingTables(report: Pick<VerifyReport, 'tables'>): TableReport[] {
  return report.tables.filter((t) => t.status === 'mismatch' || t.status === 'schema differs');
}

export function describeKey(key: Record<string, string>): string {
  const names = Object.keys(key);
  return names.length === 1
    ? `${names[0]}=${key[names[0]!]}`
    : `(${names.join(', ')})=(${names.map((n) => key[n]).join(', ')})`;
}

/** What cutover.repair did for one table of the verify it worked from. */
export interface RepairedTable {
  table: string;
  /** Keys whose change records were written (Bucardo re-applied them). */
  requeued: number;
  /** Of those, keys identical on both sides afterwards. */
  fixed: number;
  /** Keys that already matched when repair looked again (replication or someone else fixed them). */
  alreadyMatching: number;
  /** Keys with an application change on its way: left to replication. */
  inFlight: number;
  /** Keys still differing after the re-apply (at most 1000 listed). */
  remaining: ListedKey[];
  /** Ranges too different to name every key (run repair again: each run re-queues up to its budget). */
  remainingRanges: number;
  /** Differing keys the verify counted beyond the 1000 it lists: a new verify names them. */
  unlisted: number;
  /** Why the table could not be repaired at all (schema differs, no primary key, not replicated). */
  problem?: string;
}

export interface RepairReport {
  job: string;
  /** The recorded verify the repair worked from. */
  basedOn: { id: number; finishedAt: string; verdict: string };
  seconds: number;
  /** Seconds Bucardo took to apply the re-queued keys (absent: nothing re-queued, or it timed out). */
  appliedAfterSeconds?: number;
  timedOut: boolean;
  requeued: number;
  fixed: number;
  remaining: number;
  tables: RepairedTable[];
  verdict: string;
}
