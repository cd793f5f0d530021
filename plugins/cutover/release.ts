// cutover.release: lifts what the cutover keeps in place on the primary: the hold a passing
// cutover.verify puts on Bucardo's purge of change records (capture.ts). cutover.finish lifts it
// itself; run this when the cutover is postponed, so the delta tables do not keep growing until
// then. A later cutover.verify puts a new hold in place.
import { withClient } from '../../src/core/db.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { holdInPlace, releaseHold } from './compare/capture.js';

export interface ReleaseData {
  steps: string[];
  released: boolean;
}

export async function release(ctx: CommandContext): Promise<CommandOutcome<ReleaseData>> {
  const released = await withClient(ctx.job, { role: 'primary', activity: ctx.activity }, (client) =>
    releaseHold(client, ctx.job.syncName),
  );
  const steps = [
    released
      ? "lifted the hold on Bucardo's purge of change records: its VAC purges them at its next run"
      : "no hold on Bucardo's purge was in place",
  ];
  return {
    data: { steps, released },
    message: released
      ? 'Released. cutover.finish now needs a new cutover.verify first (or it compares every row during the write pause).'
      : 'Nothing to release.',
  };
}

export async function validateRelease(ctx: CommandContext): Promise<Check[]> {
  const held = await withClient(ctx.job, { role: 'primary' }, (client) =>
    holdInPlace(client, ctx.job.syncName),
  );
  return [{ name: "no hold on Bucardo's purge left", pass: !held }];
}
