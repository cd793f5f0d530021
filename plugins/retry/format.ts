// Terminal lines for retry.add_triggers / retry.drop_triggers: what was done, and every table still
// waiting with who holds its lock (pid, user, application, how long, the query) so the operator can act.
// Type-only imports: the shell loads this before the prompt appears.
import type { RetryRunData } from './add.js';

export function formatSteps(data: { steps: string[] }): string[] {
  return data.steps.map((step) => `  - ${step}`);
}

export function formatRun(data: RetryRunData): string[] {
  const lines = data.steps.map((step) => `  - ${step}`);
  if (data.waiting.length) lines.push(`Still waiting on locks (${data.waiting.length}):`);
  for (const table of data.waiting) {
    lines.push(`  ${table.table}: ${table.error}`);
    if (table.blockers.length === 0) lines.push('    no lock holder right now: the lock was released since the last try');
    for (const b of table.blockers) {
      lines.push(`    lock held by pid ${b.pid} (user ${b.user}, ${b.application ? `application ${b.application}` : 'no application name'}, ${b.seconds} s): ${b.query}`);
    }
  }
  return lines;
}
