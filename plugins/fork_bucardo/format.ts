// Terminal lines for fork_bucardo.apply_changes: each change with the lines it matched.
// Type-only imports: the shell loads this before the prompt appears.
import type { ApplyData } from './apply.js';

export function formatApply(data: ApplyData): string[] {
  return data.changes.map(
    (change) =>
      `  - ${change.name}: ${change.file}: s/${change.pattern}/${change.replacement}/ ` +
      `matched ${change.matches} line${change.matches === 1 ? '' : 's'}`,
  );
}
