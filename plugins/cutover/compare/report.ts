// The result of a verify, as data: what cutover.verify prints (as a table or JSON), records, and
// what cutover.check and cutover.finish judge; and its verdict: totals, passed/clean, and one sentence
// an operator can act on. No database code here (the menu loads it).
import type { Job } from '../../../src/core/job.js';
import type { SequenceReport } from './sequences.js';
import type { HashMethod } from '../../../src/core/compare/sql.js';

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
 * match: identical; in flight: the only differences are in keys changed since the verify's horizon
 * (their changes on their way, or made while it ran), which cutover.finish's final check re-compares;
 * mismatch: rows differ with no such change; schema differs: not comparable row by row.
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
  /**
   * Keys with a change since the verify's horizon when their range was read: set apart from the
   * range's sums and compared one by one (absent: the table was compared without a horizon).
   */
  changedSinceHorizon?: number;
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
  /**
   * The tables of cutover.copy_at_cutover (outside replication), compared whole: exact row counts and
   * one hash of all rows. A difference does not fail the verify: cutover.finish copies them in the pause.
   */
  copiedAtCutover?: CopiedTableReport[];
}

export interface CopiedTableReport {
  table: string;
  rowsPrimary: number;
  rowsSecondary: number;
  /** Same rows on both sides (count and content hash). */
  same: boolean;
  /** Why it could not be compared (missing on a side, columns differ). */
  problem?: string;
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

export interface Summary {
  startedAt: string;
  started: number;
  method: HashMethod;
  strict: boolean;
  reports: TableReport[];
  sequences: SequenceReport[];
  notes: string[];
}

export function summarise(job: Job, s: Summary): VerifyReport {
  const seconds = Math.round((Date.now() - s.started) / 100) / 10;
  const rowsPrimary = s.reports.reduce((sum, t) => sum + t.rowsPrimary, 0);
  const rowsSecondary = s.reports.reduce((sum, t) => sum + t.rowsSecondary, 0);
  const mismatchedRows = s.reports.reduce((sum, t) => sum + t.missing + t.extra + t.changed, 0);
  const inFlightRows = s.reports.reduce((sum, t) => sum + t.inFlight, 0);
  const failing = failingTables({ tables: s.reports });
  const missingSequences = s.sequences.filter((q) => q.status === 'missing on the secondary');
  const behind = s.sequences.filter((q) => q.status === 'behind');
  // A table with a real difference can hold keys in flight too.
  const inFlightTables = s.reports.filter((t) => t.inFlight > 0);
  const clean =
    failing.length === 0 && missingSequences.length === 0 && inFlightRows === 0 && behind.length === 0;
  const passed = s.strict ? clean : failing.length === 0 && missingSequences.length === 0;

  const parts: string[] = [];
  if (failing.length) {
    const schema = failing.filter((t) => t.status === 'schema differs');
    const kinds = [
      ['missing on the secondary', 'missing'],
      ['only on the secondary', 'extra'],
      ['changed', 'changed'],
    ] as const;
    const counts = kinds
      .map(([label, field]) => [label, s.reports.reduce((sum, t) => sum + t[field], 0)] as const)
      .filter(([, n]) => n > 0);
    const unnamed = failing.filter((t) => t.ranges.length > 0);
    if (mismatchedRows || unnamed.length) {
      const named = counts.map(([label, n]) => `${n} row(s) ${label}`);
      if (unnamed.length)
        named.push(
          `more in ${unnamed.reduce((sum, t) => sum + t.ranges.length, 0)} key range(s) of ${unnamed.map((t) => t.table).join(', ')}`,
        );
      parts.push(`MISMATCH in ${failing.length - schema.length} table(s): ${named.join(', ')}`);
    }
    const miscounted = failing.filter((t) => t.problems.some((p) => p.startsWith('row counts differ:')));
    if (miscounted.length)
      parts.push(
        `row counts differ in ${miscounted.map((t) => `${t.table} (${t.counts!.primary} on the primary, ${t.counts!.secondary} on the secondary)`).join(', ')}`,
      );
    if (schema.length) parts.push(`schema differs for ${schema.map((t) => t.table).join(', ')}`);
  }
  if (missingSequences.length)
    parts.push(`sequence(s) missing on the secondary: ${missingSequences.map((q) => q.sequence).join(', ')}`);
  if (inFlightRows)
    parts.push(
      `${inFlightRows.toLocaleString('en')} key(s) in flight in ${inFlightTables.length} table(s) (their changes not yet applied on the secondary when read, or made while the verify ran; cutover.finish's final check compares every such key again)`,
    );
  if (behind.length)
    parts.push(
      `${behind.length} sequence(s) behind the primary (${s.strict ? 'must be at or past it now' : 'replicated at the next sync run; cutover.finish sets them with a margin'})`,
    );
  const scopeText = `${s.reports.length} table(s), ${rowsPrimary.toLocaleString('en')} row(s), ${s.sequences.length} sequence(s)`;
  const verdict = clean
    ? `Identical: ${scopeText}.`
    : passed
      ? `No differences: ${scopeText}; but ${parts.join('; ')}.`
      : `FAILED: ${parts.join('; ')}.`;
  return {
    job: job.name,
    startedAt: s.startedAt,
    seconds,
    method: s.method === 'hashtext' ? 'hashtextextended(row text)' : 'md5(row text)',
    passed,
    clean,
    strict: s.strict,
    verdict,
    tables: s.reports,
    sequences: s.sequences,
    totals: {
      tables: s.reports.length,
      rowsPrimary,
      rowsSecondary,
      mismatchedRows,
      inFlightRows,
      rowsPerSecond: seconds > 0 ? Math.round(Math.max(rowsPrimary, rowsSecondary) / seconds) : 0,
    },
    notes: s.notes,
  };
}
