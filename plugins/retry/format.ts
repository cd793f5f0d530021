// Terminal lines for retry.add_triggers / retry.drop_triggers: what was done, and every table still
// waiting with who holds its lock (pid, user, application, how long, the query) so the operator can act.
// Type-only imports: the shell loads this before the prompt appears.
import type { TableFailure } from '../bucardo/triggers.js';
import type { RetryRunData } from './add.js';

export function formatSteps(data: { steps: string[] }): string[] {
  return data.steps.map((step) => `  - ${step}`);
}

export function formatRun(data: RetryRunData): string[] {
  const lines = data.steps.map((step) => `  - ${step}`);
  if (data.waiting.length) lines.push(`Still waiting on locks (${data.waiting.length}):`);
  return [...lines, ...formatWaiting(data.waiting)];
}

/** Each waiting table with who holds its lock: pid, user, application, how long, the query. */
export function formatWaiting(waiting: TableFailure[]): string[] {
  const lines: string[] = [];
  for (const table of waiting) {
    lines.push(`  ${table.table}: ${table.error}`);
    if (table.blockers.length === 0) lines.push('    no lock holder right now: the lock was released since the last try');
    for (const b of table.blockers) {
      const application = b.application ? `application ${b.application}` : 'no application name';
      lines.push(`    lock held by pid ${b.pid} (user ${b.user}, ${application}, ${b.seconds} s): ${b.query}`);
    }
  }
  return lines;
}

/** After a round that left tables waiting, before the next one: which, and who holds their locks. */
export function formatRoundEnd(round: { number: number; of: number; ready: number; total: number },
  waiting: TableFailure[]): string[] {
  const counts = `${round.ready}/${round.total} tables ready, ${waiting.length} still waiting on locks`;
  return [`After round ${round.number} of ${round.of}: ${counts}:`, ...formatWaiting(waiting)];
}
