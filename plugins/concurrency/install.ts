// concurrency.install and concurrency.uninstall, and the steps this plugin adds after bucardo.install
// and bucardo.uninstall (hooks in index.ts).
import { existsSync, rmSync } from 'node:fs';
import { isJobSyncName } from '../../src/core/bucardo/names.js';
import { daemonPid } from '../../src/core/bucardo/daemon.js';
import { OperatorError } from '../../src/core/errors.js';
import { jobTitle, metadataDbName } from '../../src/core/job.js';
import { kickerStatus } from '../../src/core/kicker.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { type Clash, compareJobs, compareWithServer, footprintOf, type OtherJob } from './clashes.js';
import { databaseExists, type HostScan, scanMetadataServer } from './host-scan.js';
import {
  isSameJob,
  type JobFootprint,
  markerFile,
  readMarker,
  readRegistry,
  readRegistryEntry,
  type RegistryEntry,
  registryFile,
  removeMarker,
  removeRegistryEntry,
  writeMarker,
  writeRegistryEntry,
} from './records.js';
import { DEFAULT_METADATA_DB, resolveMetadataDbAgain, sameServer, serverKey } from './settings.js';

// concurrency.install: check that this job can run beside every other Bucardo job on the host, then
// prepare it: the marker in its state dir (with which job.metadataDb is the job's own metadata
// database name, and usable) and its entry in the per-user registry of prepared jobs.
export interface PrepareData {
  clashes: Clash[];
  warnings: string[];
  steps: string[];
}

export async function install(ctx: CommandContext): Promise<CommandOutcome<PrepareData>> {
  const { job, activity, progress } = ctx;
  const mine = footprintOf(job);
  const target = mine.metadata.dbname;
  const data: PrepareData = { clashes: [], warnings: [], steps: [] };

  // The server first: it tells which registered jobs still exist.
  progress(`looking at the Bucardo metadata databases on ${mine.metadata.host}:${mine.metadata.port}`);
  const scan = await scanMetadataServer(job, activity);
  progress('comparing with the other jobs of this session and of the registry');
  const others = otherJobs(ctx, mine, scan, data.warnings);
  const comparison = compareJobs(mine, others);
  data.clashes.push(...comparison.clashes);
  data.warnings.push(...comparison.warnings);

  const server = serverKey(mine.metadata);
  const marker = readMarker(job.paths.stateDir);
  const compared = new Set(
    others
      .filter((o) => serverKey(o.footprint.metadata) === server)
      .map((o) => `${server}/${o.footprint.metadata.dbname}`),
  );
  // A database this job was prepared for earlier is judged from the marker below, not as a stranger's.
  if (marker && marker.metadataServer === server && marker.metadataDb !== target)
    compared.add(`${server}/${marker.metadataDb}`);
  data.clashes.push(...compareWithServer(mine, scan, compared));
  for (const { database, error } of scan.unreadable)
    data.warnings.push(
      `could not look into database '${database}' on the metadata server (${error}); a Bucardo job there would not be seen`,
    );

  if (
    marker &&
    (marker.metadataDb !== target || (marker.metadataServer && marker.metadataServer !== server))
  ) {
    const moved = marker.metadataServer && marker.metadataServer !== server;
    if (moved || scan.databases.includes(marker.metadataDb)) {
      data.clashes.push({
        kind: 'installed elsewhere',
        message: moved
          ? `this job was prepared for the metadata database '${marker.metadataDb}' on ${marker.metadataServer}, and databases.bucardo now points at ${server}. Put the old host and port back and uninstall the job there first (bucardo.uninstall, concurrency.uninstall); if nothing is installed there any more, delete ${markerFile(job.paths.stateDir)}.`
          : `this job was prepared for the metadata database '${marker.metadataDb}', which still exists on ${mine.metadata.host}:${mine.metadata.port}. Put concurrency.bucardo_dbname back to '${marker.metadataDb}' and uninstall the job (bucardo.uninstall, concurrency.uninstall) before switching to '${target}'.`,
      });
    }
  }

  if (data.clashes.length > 0) {
    return {
      ok: false,
      data,
      message: `${jobTitle(job)} cannot run beside the other Bucardo jobs on this host: ${data.clashes.length} clash(es), listed above with their fixes. Nothing was changed.`,
    };
  }

  const now = new Date().toISOString();
  if (marker?.metadataDb === target && marker.metadataServer === server) {
    data.steps.push(`already prepared for metadata database '${target}' (${markerFile(job.paths.stateDir)})`);
  } else {
    writeMarker(job.paths.stateDir, {
      metadataDb: target,
      metadataServer: server,
      replicationName: mine.replicationName,
      configFile: mine.configFile,
      preparedAt: now,
    });
    data.steps.push(
      marker
        ? `switched from '${marker.metadataDb}' (never installed) to metadata database '${target}'`
        : `prepared for metadata database '${target}' (${markerFile(job.paths.stateDir)})`,
    );
  }
  // The marker changed: the next commands of this session use the prepared name.
  resolveMetadataDbAgain(job);
  const previous = readRegistryEntry(mine.replicationName);
  const installedAt = previous && isSameJob(previous, mine) ? previous.installedAt : undefined;
  const preparedAt = previous?.preparedAt ?? now;
  const file = writeRegistryEntry({ ...mine, preparedAt, ...(installedAt ? { installedAt } : {}) });
  data.steps.push(previous ? `registry entry refreshed (${file})` : `registered in ${file}`);
  return {
    data,
    message: `Prepared ${jobTitle(job)}: bucardo.install creates the metadata database '${target}' on ${mine.metadata.host}:${mine.metadata.port}, and every bucardo command, the daemon and the kicker of this job use it. Next: bucardo.install.`,
  };
}

/** The session's other configs first (they are current), then registered jobs not loaded here. */
function otherJobs(ctx: CommandContext, mine: JobFootprint, scan: HostScan, warnings: string[]): OtherJob[] {
  const others: OtherJob[] = ctx.jobs
    .filter((other) => other !== ctx.job)
    .map((other) => ({
      footprint: footprintOf(other),
      origin: `${jobTitle(other)}, loaded in this session from ${other.config.file}`,
    }));
  const registry = readRegistry();
  for (const file of registry.unreadable)
    warnings.push(
      `registry file ${file} is not a job entry and was not compared; delete it if it is not needed`,
    );
  for (const { entry, file } of registry.jobs) {
    if (isSameJob(entry, mine) || others.some((o) => isSameJob(o.footprint, entry))) continue;
    const stale = staleReason(entry, mine, scan);
    if (stale) {
      // A job uninstalled by hand (or before bucardo.uninstall told this plugin) occupies nothing.
      rmSync(file, { force: true });
      warnings.push(
        `removed the stale registry entry of job ${entry.replicationName} (${file}): ${stale}; ` +
          'it is no longer compared',
      );
      continue;
    }
    const gone = existsSync(entry.configFile)
      ? ''
      : `; that file no longer exists: if the job is gone too, delete ${file}`;
    others.push({
      footprint: entry,
      origin: `job ${entry.replicationName} (prepared from ${entry.configFile}${gone})`,
    });
  }
  return others;
}

/**
 * Why a registered job no longer exists, judged from its metadata server (only when that is this
 * job's, which was just scanned): its metadata database is gone or holds no sync or relgroup of its
 * name. A job prepared but not installed yet has no database either: it stays while its preparation
 * marker does, unless bucardo.install had already recorded it as installed.
 */
function staleReason(entry: RegistryEntry, mine: JobFootprint, scan: HostScan): string | undefined {
  const { dbname } = entry.metadata;
  if (!sameServer(entry.metadata, mine.metadata)) return undefined;
  if (scan.unreadable.some((u) => u.database === dbname)) return undefined;
  const name = entry.replicationName;
  const instance = scan.instances.find((i) => i.database === dbname);
  if (instance && [...instance.syncs, ...instance.relgroups].some((n) => isJobSyncName(n, name)))
    return undefined;
  const missing = !scan.databases.includes(dbname)
    ? `its metadata database '${dbname}' no longer exists on ${entry.metadata.host}:${entry.metadata.port}`
    : `its metadata database '${dbname}' holds no sync or relgroup named ${name}`;
  if (entry.installedAt) return `${missing}, though bucardo.install installed it at ${entry.installedAt}`;
  const marker = markerFile(entry.stateDir);
  if (!existsSync(marker)) return `${missing}, and it is no longer prepared (no ${marker})`;
  return undefined;
}

export async function validateInstall(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const mine = footprintOf(job);
  const marker = readMarker(job.paths.stateDir);
  const entry = readRegistryEntry(mine.replicationName);
  let used: string;
  try {
    used = metadataDbName(job);
  } catch (error) {
    used = `none: ${(error as Error).message}`;
  }
  return [
    {
      name: `the job is prepared for metadata database ${mine.metadata.dbname}`,
      pass: marker?.metadataDb === mine.metadata.dbname,
      detail: markerFile(job.paths.stateDir),
    },
    {
      name: 'the job is in the registry of prepared jobs',
      pass:
        entry !== undefined &&
        isSameJob(entry, mine) &&
        entry.metadata.dbname === mine.metadata.dbname &&
        entry.pidDir === mine.pidDir,
      detail: registryFile(mine.replicationName),
    },
    {
      name: `bucardo commands use metadata database ${mine.metadata.dbname}`,
      pass: used === mine.metadata.dbname,
      ...(used !== mine.metadata.dbname ? { detail: used } : {}),
    },
  ];
}

// concurrency.uninstall: return the job to Bucardo's default metadata database name. Only once the
// job's own metadata database is gone (bucardo.uninstall, run while this plugin is enabled, drops
// it): forgetting the name earlier would leave that database, and maybe a daemon, behind unseen.
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
  // The next bucardo commands of this session refuse, as they would in a new one.
  resolveMetadataDbAgain(job);
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

// What the concurrency plugin does after the bucardo plugin's install and uninstall (hooks in
// index.ts): the per-user registry follows the job's real life, so that a job uninstalled with
// bucardo.uninstall alone no longer makes concurrency.install refuse another job on its primary.
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
