// Terminal lines for the cutover commands: a verify result (one line per table, then what differs,
// then sequences), cutover.check and cutover.finish. Loaded with the menu: no pg here.
import { describeKey, type DifferingRange, type RepairReport, type VerifyReport } from './compare/report.js';
import type { CheckData } from './check.js';
import type { FinishData } from './switch.js';

const LISTED_KEYS = 20;
const LISTED_RANGES = 10;

const number = (n: number) => n.toLocaleString('en');

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) =>
    `  ${row.map((cell, i) => (i === 0 || i === row.length - 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}`.trimEnd(),
  );
}

function describeRange(range: DifferingRange): string {
  const from = range.from ? `from ${describeKey(range.from)}` : 'from the first key';
  const to = range.to ? `up to (not including) ${describeKey(range.to)}` : 'to the last key';
  return `${from} ${to}: ${number(range.primaryRows)} row(s) on the primary, ${number(range.secondaryRows)} on the secondary`;
}

export function formatVerify(report: VerifyReport): string[] {
  const lines: string[] = [];
  const rows = [['table', 'rows (primary)', 'rows (secondary)', 'chunks', 'status']];
  for (const t of report.tables) {
    const detail =
      t.status === 'mismatch'
        ? ` (${[t.missing && `${t.missing} missing`, t.extra && `${t.extra} extra`, t.changed && `${t.changed} changed`, t.inFlight && `${t.inFlight} in flight`, t.ranges.length && `${t.ranges.length} range(s) not narrowed`].filter(Boolean).join(', ')})`
        : t.status === 'in flight'
          ? ` (${t.inFlight} key(s))`
          : '';
    rows.push([
      t.table,
      number(t.rowsPrimary),
      number(t.rowsSecondary),
      String(t.chunks),
      `${t.status}${detail}`,
    ]);
  }
  lines.push(...table(rows));
  for (const t of report.tables) {
    if (t.status === 'match' && t.problems.length === 0) continue;
    if (t.problems.length === 0 && t.keys.length === 0 && t.ranges.length === 0) continue;
    lines.push(`  ${t.table}:`);
    for (const problem of t.problems) lines.push(`    ${problem}`);
    const confirmed = t.keys.filter((k) => !k.inFlight);
    const flying = t.keys.filter((k) => k.inFlight);
    const label = {
      missing: 'missing on the secondary',
      extra: 'only on the secondary',
      changed: 'different content',
    } as const;
    for (const [title, keys] of [
      ['differs', confirmed],
      ['in flight', flying],
    ] as const) {
      if (keys.length === 0) continue;
      lines.push(
        `    ${title}: ${keys
          .slice(0, LISTED_KEYS)
          .map((k) => `${describeKey(k.key)} (${label[k.difference]})`)
          .join(
            ', ',
          )}${keys.length > LISTED_KEYS ? `, and ${keys.length - LISTED_KEYS} more (--json lists up to 1000)` : ''}`,
      );
    }
    for (const range of t.ranges.slice(0, LISTED_RANGES)) lines.push(`    range ${describeRange(range)}`);
    if (t.ranges.length > LISTED_RANGES)
      lines.push(`    and ${t.ranges.length - LISTED_RANGES} more range(s)`);
  }
  if (report.sequences.length) {
    lines.push(
      ...table([
        ['sequence', 'next (primary)', 'next (secondary)', 'status'],
        ...report.sequences.map((q) => [q.sequence, q.primaryNext ?? '-', q.secondaryNext ?? '-', q.status]),
      ]),
    );
  }
  for (const note of report.notes) lines.push(`  note: ${note}`);
  lines.push(
    `  ${number(Math.max(report.totals.rowsPrimary, report.totals.rowsSecondary))} rows in ${report.seconds} s (${number(report.totals.rowsPerSecond)} rows/s), ${report.method}`,
  );
  return lines;
}

/** One line per table the repair looked at, then the keys that still differ. */
export function formatRepair(report: RepairReport): string[] {
  const lines = [
    `  working from verify #${report.basedOn.id} (${report.basedOn.finishedAt}): ${report.basedOn.verdict}`,
  ];
  for (const t of report.tables) {
    if (t.problem) {
      lines.push(`  ${t.table}: not repaired: ${t.problem}`);
      continue;
    }
    const parts = [`${t.requeued} key(s) re-queued`, `${t.fixed} fixed`];
    if (t.alreadyMatching) parts.push(`${t.alreadyMatching} already matching`);
    if (t.inFlight) parts.push(`${t.inFlight} in flight (left to replication)`);
    if (t.remainingRanges) parts.push(`${t.remainingRanges} range(s) beyond the budget`);
    if (t.unlisted) parts.push(`${t.unlisted} not named by the verify`);
    lines.push(`  ${t.table}: ${parts.join(', ')}`);
    if (t.remaining.length)
      lines.push(
        `    still differs: ${t.remaining
          .slice(0, LISTED_KEYS)
          .map((k) => describeKey(k.key))
          .join(
            ', ',
          )}${t.remaining.length > LISTED_KEYS ? `, and ${t.remaining.length - LISTED_KEYS} more` : ''}`,
      );
  }
  lines.push(
    `  ${report.seconds} s${report.appliedAfterSeconds !== undefined ? `; Bucardo applied the re-queued keys after ${report.appliedAfterSeconds} s` : ''}`,
  );
  return lines;
}

export function formatCheck(data: CheckData): string[] {
  return data.items.map(
    (i) =>
      `  ${i.pass ? (i.warning ? 'warn' : 'ok  ') : 'FAIL'} ${i.item}: ${i.detail}${!i.pass && i.fix ? `\n       fix: ${i.fix}` : ''}`,
  );
}

/** cutover.finish prints each step as it happens; afterwards only whether a rerun continues. */
export function formatFinish(data: FinishData): string[] {
  const recorded = Object.keys(data.progress).length > 0;
  return !data.finished && recorded
    ? ['  (progress is recorded: running cutover.finish again continues from the last step done)']
    : [];
}
