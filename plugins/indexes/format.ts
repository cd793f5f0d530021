// Terminal lines for the outcomes of indexes.drop and indexes.recreate (loaded with the menu: no pg here).
import type { DropData } from './drop.js';
import type { RecreateData } from './recreate.js';

export function formatDrop(data: DropData): string[] {
  const lines: string[] = [];
  for (const failure of data.failed) {
    lines.push(`  not dropped on ${failure.table}: ${failure.error}`);
    for (const b of failure.blockers)
      lines.push(
        `    lock held by pid ${b.pid} (${b.user}, ${b.application || 'no application name'}, ${b.seconds} s): ${b.query}`,
      );
  }
  for (const note of data.notes) lines.push(`  note: ${note}`);
  return lines;
}

export function formatRecreate(data: RecreateData): string[] {
  return data.conflicts.map((c) => `  conflict ${c.index}: ${c.problem}`);
}
