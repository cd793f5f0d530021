// Terminal lines for retry.add_triggers / retry.drop_triggers: what was done, and every table still
// waiting with who holds its lock (pid, user, application, how long, the query) so the operator can act.
// Light imports only: the shell loads this before the prompt appears.
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';

/** What retry.add_triggers and retry.drop_triggers return. */
export interface RetryRunData {
  tables: number;
  /** Tables already as wanted before this run. */
  alreadyDone: number;
  rounds: number;
  /** Tables still waiting after the last round, with who holds their locks. */
  waiting: TableFailure[];
  steps: string[];
  elapsedMs: number;
}

export function formatSteps(data: { steps: string[] }): string[] {
  return data.steps.map((step) => `  - ${step}`);
}

export function formatRun(data: RetryRunData): string[] {
  const lines = data.steps.map((step) => `  - ${step}`);
  if (data.waiting.length) lines.push(`Still waiting on locks (${data.waiting.length}):`);
  return [...lines, ...formatFailures(data.waiting)];
}

/** After a round that left tables waiting, before the next one: which, and who holds their locks. */
export function formatRoundEnd(
  round: { number: number; of: number; ready: number; total: number },
  waiting: TableFailure[],
): string[] {
  const counts = `${round.ready}/${round.total} tables ready, ${waiting.length} still waiting on locks`;
  return [`After round ${round.number} of ${round.of}: ${counts}:`, ...formatFailures(waiting)];
}
