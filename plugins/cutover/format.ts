// Terminal lines for cutover.check and cutover.finish (loaded with the menu: no pg here).
import type { CheckData } from './check.js';
import type { FinishData } from './finish.js';

export function formatCheck(data: CheckData): string[] {
  return data.items.map(
    (i) =>
      `  ${i.pass ? 'ok  ' : 'FAIL'} ${i.item}: ${i.detail}${!i.pass && i.fix ? `\n       fix: ${i.fix}` : ''}`,
  );
}

/** cutover.finish prints each step as it happens; afterwards only whether a rerun continues. */
export function formatFinish(data: FinishData): string[] {
  const recorded = Object.keys(data.progress).length > 0;
  return !data.finished && recorded
    ? ['  (progress is recorded: running cutover.finish again continues from the last step done)']
    : [];
}
