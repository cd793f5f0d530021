// Terminal lines for bucardo.scope and the start of bucardo.install: what is in scope with sizes and
// estimated rows, every relation left out with its reason, and filter entries that look like typos.
// Light imports only (left-behind.ts's line is pure): the shell loads this before the prompt appears.
import { leftBehindLine } from '../../src/core/left-behind.js';
import type { ScopeReport, ScopedRelation } from './scope.js';
import { withThousands } from '../../src/core/numbers.js';

/** At most this many relations per list on a terminal; --json has them all. */
const SHOWN = 50;

function size(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function rows(relation: ScopedRelation): string {
  if (relation.kind === 'sequence') return '';
  if (relation.estimatedRows === null) return 'rows unknown (never analyzed)';
  return `~${withThousands(relation.estimatedRows)} rows`;
}

function filterText(report: ScopeReport): string {
  const { namespaceInclude, namespaceExclude, tableInclude, tableExclude } = report.filters;
  const lists: [string, string[]][] = [
    ['namespace_include', namespaceInclude],
    ['namespace_exclude', namespaceExclude],
    ['table_include', tableInclude],
    ['table_exclude', tableExclude],
  ];
  const used = lists.filter(([, entries]) => entries.length > 0);
  if (used.length === 0) return 'no filters: every table and sequence in every user schema';
  return used.map(([list, entries]) => `${list} [${entries.join(', ')}]`).join(' AND ');
}

export function formatScope(report: ScopeReport): string[] {
  const count = (kind: string) => report.included.filter((r) => r.kind === kind).length;
  const totalBytes = report.included.reduce((sum, r) => sum + r.sizeBytes, 0);
  const totalRows = report.included.reduce((sum, r) => sum + (r.estimatedRows ?? 0), 0);
  const tables = `${count('table') + count('partition')} table(s) (${count('partition')} of them leaf partitions)`;
  const others = `${count('sequence')} sequence(s), ${count('materialized view')} materialized view(s)`;
  const totals = `${size(totalBytes)}, ~${withThousands(totalRows)} rows (estimated)`;
  const lines = [
    `Scope on the primary (${filterText(report)}):`,
    `  In scope: ${tables}, ${others}; ${totals}`,
  ];
  const shown = report.included.slice(0, SHOWN);
  const width = Math.min(
    60,
    shown.reduce((widest, r) => Math.max(widest, r.name.length), 0),
  );
  for (const relation of shown) {
    const of = relation.partitionOf ? ` (partition of ${relation.partitionOf})` : '';
    const figures =
      relation.kind === 'sequence' ? '' : `  ${size(relation.sizeBytes).padStart(10)}  ${rows(relation)}`;
    lines.push(`    ${relation.kind.padEnd(17)} ${relation.name.padEnd(width)}${figures}${of}`);
  }
  const more = (total: number) => `    ... and ${total - SHOWN} more (--json lists them all)`;
  if (report.included.length > SHOWN) lines.push(more(report.included.length));
  if (report.excluded.length) lines.push(`  Left out (${report.excluded.length}):`);
  for (const { name, reasons } of report.excluded.slice(0, SHOWN))
    lines.push(`    ${name}: ${reasons.join('; ')}`);
  if (report.excluded.length > SHOWN) lines.push(more(report.excluded.length));
  const behind = report.notCarried ?? [];
  if (behind.length)
    lines.push(`  Tables the migration leaves behind (${behind.length}; rows and size estimated):`);
  for (const table of behind.slice(0, SHOWN)) lines.push(`    ${leftBehindLine(table)}`);
  if (behind.length > SHOWN) lines.push(more(behind.length));
  if (report.warnings.length) lines.push('  Filter entries to check (a typo selects nothing):');
  for (const warning of report.warnings)
    lines.push(`    ${warning.list} '${warning.entry}': ${warning.problem}`);
  return lines;
}
