// Terminal lines for the schema plugin's commands. Light imports only: the shell loads this before the
// prompt appears.
import { formatFailures } from '../../src/core/ddl.js';
import { leftBehindLine } from '../../src/core/left-behind.js';
import type { AddTablesData } from './add-tables.js';
import type { ApplyData } from './apply.js';
import type { DiffData } from './diff.js';

/** One line per difference: what differs, then its fix. */
export function formatDiff(data: DiffData): string[] {
  const lines = data.differences.map((d) => `  ${d.kind} ${d.object}: ${d.detail}. Fix: ${d.fix}`);
  if (data.notCarried?.length) {
    lines.push(`Tables of the primary this migration does not carry (${data.notCarried.length}):`);
    for (const t of data.notCarried) lines.push(`  ${leftBehindLine(t)}`);
  }
  return lines;
}

export function formatAddTables(data: AddTablesData): string[] {
  const lines = data.steps.map((step) => `  - ${step}`);
  for (const table of data.blocked) lines.push(`  not added: ${table.table}: ${table.blocked}`);
  if (data.waiting.length) lines.push(`Still waiting on locks (${data.waiting.length}):`);
  return [...lines, ...formatFailures(data.waiting)];
}

export function formatApply(data: ApplyData): string[] {
  const lines = data.steps.map((step) => `  - ${step}`);
  if (data.skipped.length) lines.push(`  (done by an earlier run: ${data.skipped.join(', ')})`);
  if (data.waiting.length) lines.push(`Still waiting on locks:`, ...formatFailures(data.waiting));
  return lines;
}
