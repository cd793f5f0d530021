// concurrency.uninstall: return the job to Bucardo's default metadata database name. Only once the
// job's own metadata database is gone (bucardo.uninstall, run while this plugin is enabled, drops
// it): forgetting the name earlier would leave that database, and maybe a daemon, behind unseen.
import { jobTitle } from '../../src/core/job.js';
import { OperatorError } from '../../src/core/errors.js';
import { kickerStatus } from '../../src/core/kicker.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { daemonPid } from '../../src/core/bucardo/daemon.js';
import { footprintOf } from './footprint.js';
import { databaseExists } from './host-scan.js';
import { markerFile, readMarker, removeMarker } from './marker.js';
import { isSameJob, readRegistryEntry, registryFile, removeRegistryEntry } from './registry.js';
import { DEFAULT_METADATA_DB } from './settings.js';

export interface ReleaseData {
  steps: string[];
}

export async function uninstall(ctx: CommandContext): Promise<CommandOutcome<ReleaseData>> {
  const { job, activity } = ctx;
  const mine = footprintOf(job);
  const marker = readMarker(job.paths.stateDir);
  const entry = readRegistryEntry(mine.replicationName);
  const registered = entry !== undefined && isSameJob(entry, mine);
  const steps: string[] = [];
  if (!marker && !registered) {
    return {
      data: { steps },
      message: `${jobTitle(job)} is not prepared by the concurrency plugin: nothing to undo.`,
    };
  }
  const name = marker?.metadataDb ?? mine.metadata.dbname;
  const handFix = `If the metadata server is gone for good, delete ${markerFile(job.paths.stateDir)} and ${registryFile(mine.replicationName)} by hand.`;

  const pid = daemonPid(job);
  const kicker = kickerStatus(job);
  if (pid !== undefined || kicker.running) {
    throw new OperatorError(
      `${jobTitle(job)}'s ${pid !== undefined ? `Bucardo daemon (pid ${pid})` : `kicker (pid ${kicker.pid})`} is still running on the metadata database '${name}'. Run bucardo.uninstall first (it stops the daemon and drops '${name}'), then concurrency.uninstall.`,
    );
  }
  let exists: boolean;
  try {
    exists = await databaseExists(job, name, activity);
  } catch (error) {
    throw new OperatorError(
      `Cannot check whether the metadata database '${name}' is gone: ${(error as Error).message} ${handFix}`,
    );
  }
  if (exists) {
    throw new OperatorError(
      `The metadata database '${name}' of ${jobTitle(job)} still exists on ${mine.metadata.host}:${mine.metadata.port}. Run bucardo.uninstall first, with the concurrency plugin still enabled so that it finds and drops '${name}'; then concurrency.uninstall.`,
    );
  }
  if (removeMarker(job.paths.stateDir))
    steps.push(`removed the preparation marker ${markerFile(job.paths.stateDir)}`);
  if (registered && removeRegistryEntry(mine.replicationName))
    steps.push(`removed the registry entry ${registryFile(mine.replicationName)}`);
  return {
    data: { steps },
    message: `${jobTitle(job)} is back to Bucardo's default metadata database name '${DEFAULT_METADATA_DB}'. To use it that way, take concurrency out of plugins; while the plugin stays enabled, bucardo commands refuse to run until concurrency.install prepares the job again.`,
  };
}

export async function validateUninstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const mine = footprintOf(job);
  const entry = readRegistryEntry(mine.replicationName);
  return [
    {
      name: 'no preparation marker',
      pass: readMarker(job.paths.stateDir) === undefined,
      detail: markerFile(job.paths.stateDir),
    },
    {
      name: 'not in the registry of prepared jobs',
      pass: entry === undefined || !isSameJob(entry, mine),
      detail: registryFile(mine.replicationName),
    },
    {
      name: `metadata database ${mine.metadata.dbname} gone`,
      pass: !(await databaseExists(job, mine.metadata.dbname)),
    },
  ];
}
