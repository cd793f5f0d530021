// What the concurrency plugin does after the bucardo plugin's install and uninstall (hooks in
// index.ts): the per-user registry follows the job's real life, so that a job uninstalled with
// bucardo.uninstall alone no longer makes concurrency.install refuse another job on its primary.
import { jobTitle } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { footprintOf } from './footprint.js';
import { readMarker } from './marker.js';
import {
  isSameJob,
  readRegistryEntry,
  registryFile,
  removeRegistryEntry,
  writeRegistryEntry,
} from './registry.js';

/** After bucardo.install: the entry says the job is installed (and is written again if it was lost). */
export async function recordInstalled(ctx: CommandContext): Promise<string[]> {
  const mine = footprintOf(ctx.job);
  const marker = readMarker(ctx.job.paths.stateDir);
  const entry = readRegistryEntry(mine.replicationName);
  if (!marker || (entry && !isSameJob(entry, mine))) return [];
  const now = new Date().toISOString();
  const preparedAt = entry?.preparedAt ?? marker.preparedAt;
  const file = writeRegistryEntry({ ...mine, preparedAt, installedAt: entry?.installedAt ?? now });
  return entry?.installedAt ? [] : [`${jobTitle(ctx.job)} recorded as installed in ${file}`];
}

/** After bucardo.uninstall: the job no longer occupies its primary, so its entry goes. */
export async function forgetUninstalled(ctx: CommandContext): Promise<string[]> {
  const mine = footprintOf(ctx.job);
  const entry = readRegistryEntry(mine.replicationName);
  if (!entry || !isSameJob(entry, mine) || !removeRegistryEntry(mine.replicationName)) return [];
  const file = registryFile(mine.replicationName);
  return [
    `removed ${jobTitle(ctx.job)}'s registry entry ${file} ` +
      '(concurrency.uninstall also forgets its metadata database name)',
  ];
}
