// The verdict of a verify: totals, passed/clean, and one sentence an operator can act on.
import type { Job } from '../../src/core/job.js';
import { failingTables, type TableReport, type VerifyReport } from './report.js';
import type { SequenceReport } from './sequences.js';
import type { HashMethod } from './sql.js';

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
  const inFlightTables = s.reports.filter((t) => t.status === 'in flight');
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
      `${inFlightRows} row(s) in flight in ${inFlightTables.length} table(s) (changes not yet applied by replication)`,
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
