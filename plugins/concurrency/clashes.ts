// The guard rails: what a job occupies on a host (its footprint), and the pure comparisons that say
// what two jobs must not share, against other configs, registered jobs and the metadata server.
import path from 'node:path';
import { isJobSyncName } from '../../src/core/bucardo/names.js';
import type { Job } from '../../src/core/job.js';
import type { BucardoInstance, HostScan } from './host-scan.js';
import type { DatabaseSpot, JobFootprint } from './records.js';
import { type ConcurrencySettings, DEFAULT_METADATA_DB, sameServer, serverKey } from './settings.js';

/** The metadata database the job's config asks for (never reads job.metadataDb, which may refuse). */
export function intendedMetadataDb(job: Job): string {
  if (!job.config.plugins.includes('concurrency'))
    return job.config.databases.bucardo.dbname || DEFAULT_METADATA_DB;
  const settings = job.config.pluginSettings['concurrency'] as ConcurrencySettings | undefined;
  return settings?.bucardoDbname || DEFAULT_METADATA_DB;
}

export function footprintOf(job: Job): JobFootprint {
  const { bucardo, primary, secondary } = job.config.databases;
  const spot = (db: typeof primary): DatabaseSpot => ({
    host: db.host,
    port: db.port,
    dbname: db.dbname,
    cascade: db.cascade,
  });
  return {
    replicationName: job.name,
    configFile: job.config.file,
    metadata: { host: bucardo.host, port: bucardo.port, dbname: intendedMetadataDb(job) },
    pidDir: path.resolve(job.paths.pidDir),
    logDir: path.resolve(job.paths.logDir),
    stateDir: path.resolve(job.paths.stateDir),
    primary: spot(primary),
    secondary: spot(secondary),
    targets: job.targets.map((target) => spot(target.database)),
  };
}

export function describeSpot(db: { host: string; port: number; dbname: string }): string {
  return `${db.host}:${db.port}/${db.dbname}`;
}

// The guard rails: what two jobs on one host must not share. Pure comparisons of footprints, so the
// same rules apply to the other config of a session, to registered jobs and in unit tests.
export interface OtherJob {
  footprint: JobFootprint;
  origin: string;
}

export type ClashKind =
  'replication name' | 'metadata database' | 'pid dir' | 'state dir' | 'primary' | 'installed elsewhere';

export interface Clash {
  kind: ClashKind;
  message: string;
}

export interface Comparison {
  clashes: Clash[];
  warnings: string[];
}

function sameDatabase(
  a: { host: string; port: number; dbname: string },
  b: { host: string; port: number; dbname: string },
): boolean {
  return a.dbname === b.dbname && sameServer(a, b);
}

export function compareJobs(mine: JobFootprint, others: OtherJob[]): Comparison {
  const clashes: Clash[] = [];
  const warnings: string[] = [];
  for (const { footprint: other, origin } of others) {
    if (other.replicationName === mine.replicationName) {
      clashes.push({
        kind: 'replication name',
        message: `replication name '${mine.replicationName}' is also used by ${origin}: the sync, relgroup, log files and kicker are named after it. Give this job another bucardo.replication_name.`,
      });
    }
    if (sameDatabase(mine.metadata, other.metadata)) {
      clashes.push({
        kind: 'metadata database',
        message: `metadata database '${mine.metadata.dbname}' on ${mine.metadata.host}:${mine.metadata.port} is also used by ${origin}: both daemons would share one set of syncs and settings (pid dir included), and bucardo.uninstall of one would drop the other's. Give this job another concurrency.bucardo_dbname.`,
      });
    }
    const databases: [string, DatabaseSpot][] = [
      ['primary', other.primary],
      ...(other.targets ?? [other.secondary]).map((t): [string, DatabaseSpot] => ['secondary', t]),
    ];
    for (const [role, database] of databases) {
      if (sameDatabase(mine.metadata, database)) {
        clashes.push({
          kind: 'metadata database',
          message: `metadata database '${mine.metadata.dbname}' on ${mine.metadata.host}:${mine.metadata.port} is the ${role} database of ${origin}; bucardo.uninstall drops the metadata database. Give this job another concurrency.bucardo_dbname.`,
        });
      }
    }
    if (other.pidDir === mine.pidDir) {
      clashes.push({
        kind: 'pid dir',
        message: `pid dir ${mine.pidDir} is also used by ${origin}: Bucardo's stop file and pid files live there, so stopping one job would stop the other's daemon. Give this job another bucardo.pid_dir.`,
      });
    }
    if (other.stateDir === mine.stateDir) {
      clashes.push({
        kind: 'state dir',
        message: `state dir ${mine.stateDir} is also used by ${origin}: the private .pgpass and the preparation marker live there. Give this job another bucardo.state_dir.`,
      });
    }
    const sharedPrimary = sharedPrimaryProblem(mine.primary, other.primary, origin);
    if (sharedPrimary) clashes.push({ kind: 'primary', message: sharedPrimary });
    const downstream = chainWarning(mine, other, origin);
    if (downstream) warnings.push(downstream);
  }
  return { clashes, warnings };
}

/**
 * Two Bucardo instances replicating from one database share its bucardo schema: one bucardo_delta
 * trigger per table, the delta and track tables, and each VAC purges delta rows. The only sharing
 * allowed is a cascade middle hop that both jobs declare (databases.primary.cascade), because then
 * both want the shared bucardo_delta trigger ENABLE ALWAYS; with one declaring it, each job's
 * add_triggers would switch the other's trigger mode back.
 */
function sharedPrimaryProblem(mine: DatabaseSpot, other: DatabaseSpot, origin: string): string | undefined {
  if (!sameDatabase(mine, other)) return undefined;
  if (mine.cascade && other.cascade) return undefined;
  const why = `two Bucardo instances would share its bucardo_delta triggers and delta tables, and each one's VAC would purge delta rows the other has not replicated yet`;
  if (mine.cascade || other.cascade) {
    return `primary ${describeSpot(mine)} is also the primary of ${origin}, and only ${mine.cascade ? 'this job' : 'that job'} marks it as a cascade middle hop (databases.primary.cascade): ${why}, and each job's bucardo.add_triggers would switch the shared bucardo_delta trigger between ENABLE ALWAYS and ENABLE. Mark it cascade: true in both jobs only if it really is the middle hop of both; otherwise replicate from it with one job.`;
  }
  return `primary ${describeSpot(mine)} is also the primary of ${origin}: ${why}. Replicate from one primary with one job (to feed two databases, chain them as a cascade A→B→C), or run the second job after uninstalling the first.`;
}

/** A→B then B→C without the cascade flags: rows Bucardo writes into B fire only ALWAYS triggers. */
function chainWarning(mine: JobFootprint, other: JobFootprint, origin: string): string | undefined {
  const hop = (upstream: JobFootprint, downstream: JobFootprint) =>
    sameDatabase(upstream.secondary, downstream.primary) &&
    !(upstream.secondary.cascade && downstream.primary.cascade);
  if (hop(mine, other)) {
    return `this job's secondary ${describeSpot(mine.secondary)} is the primary of ${origin}, but it is not marked as a cascade middle hop in both (databases.secondary.cascade here, databases.primary.cascade there): rows this job applies there will not reach the next hop.`;
  }
  if (hop(other, mine)) {
    return `this job's primary ${describeSpot(mine.primary)} is the secondary of ${origin}, but it is not marked as a cascade middle hop in both (databases.primary.cascade here, databases.secondary.cascade there): rows that job applies will not reach this job's secondary.`;
  }
  return undefined;
}

// The guard rails against what the metadata server itself holds: Bucardo metadata databases of jobs
// this user never registered (another user, a job set up by hand), and this job's own metadata in
// the wrong database (bucardo.install run before concurrency.install, or with another name).
/**
 * `alreadyCompared` holds serverKey/dbname of metadata databases whose jobs were compared from their
 * configs (the session, the registry): those comparisons know the cascade flags, so they win.
 */
export function compareWithServer(mine: JobFootprint, scan: HostScan, alreadyCompared: Set<string>): Clash[] {
  const clashes: Clash[] = [];
  const where = `${mine.metadata.host}:${mine.metadata.port}`;
  const key = (database: string) => `${serverKey(mine.metadata)}/${database}`;
  const target = mine.metadata.dbname;
  const ownInstance = scan.instances.find((i) => i.database === target);

  if (!alreadyCompared.has(key(target)) && scan.databases.includes(target)) {
    if (!ownInstance && !scan.unreadable.some((u) => u.database === target)) {
      clashes.push({
        kind: 'metadata database',
        message: `a database named '${target}' already exists on ${where} and is not a Bucardo metadata database (it has no bucardo.bucardo_config). Give this job another concurrency.bucardo_dbname, or drop '${target}' if it is a leftover of a failed install.`,
      });
    } else if (ownInstance) {
      const foreign = [...ownInstance.relgroups, ...ownInstance.syncs].filter(
        (name) => !isJobSyncName(name, mine.replicationName),
      );
      if (foreign.length > 0) {
        clashes.push({
          kind: 'metadata database',
          message: `metadata database '${target}' on ${where} already holds another Bucardo job (relgroup/sync ${[...new Set(foreign)].join(', ')}): both daemons would share its syncs and settings, and bucardo.uninstall of one would drop the other's. Give this job another concurrency.bucardo_dbname.`,
        });
      }
    }
  }

  for (const instance of scan.instances) {
    if (instance.database === target || alreadyCompared.has(key(instance.database))) continue;
    const origin = `the Bucardo job(s) in metadata database '${instance.database}' on ${where}`;
    const holdsOurName = [...instance.relgroups, ...instance.syncs].some((name) =>
      isJobSyncName(name, mine.replicationName),
    );
    const fromOurPrimary = instance.sources.some(
      (s) => s.dbname === mine.primary.dbname && sameServer(s, mine.primary),
    );
    if (holdsOurName && fromOurPrimary) {
      clashes.push({ kind: 'installed elsewhere', message: installedElsewhere(mine, instance, where) });
      continue;
    }
    if (holdsOurName) {
      clashes.push({
        kind: 'replication name',
        message: `replication name '${mine.replicationName}' is already a relgroup or sync of ${origin}: the sync, relgroup, log files and kicker are named after it. Give this job another bucardo.replication_name.`,
      });
    }
    if (instance.piddir && path.resolve(instance.piddir) === mine.pidDir) {
      clashes.push({
        kind: 'pid dir',
        message: `pid dir ${mine.pidDir} is the pid dir of ${origin}: Bucardo's stop file and pid files live there, so stopping one job would stop the other's daemon. Give this job another bucardo.pid_dir.`,
      });
    }
    if (fromOurPrimary && !mine.primary.cascade) {
      clashes.push({
        kind: 'primary',
        message: `primary ${describeSpot(mine.primary)} is also a source of ${origin}: two Bucardo instances would share its bucardo_delta triggers and delta tables, and each one's VAC would purge delta rows the other has not replicated yet. Replicate from one primary with one job, or run this job after that one is uninstalled.`,
      });
    }
  }
  return clashes;
}

function installedElsewhere(mine: JobFootprint, instance: BucardoInstance, where: string): string {
  const found = `this job (relgroup ${mine.replicationName}, primary ${describeSpot(mine.primary)}) is already installed in metadata database '${instance.database}' on ${where}, not in '${mine.metadata.dbname}': bucardo.install ran before concurrency.install, or with another bucardo_dbname.`;
  const fix =
    instance.database === DEFAULT_METADATA_DB
      ? `Uninstall it from there first: take concurrency out of plugins, run bucardo.uninstall, put concurrency back and run concurrency.install, then bucardo.install.`
      : `Uninstall it from there first: set concurrency.bucardo_dbname to '${instance.database}', run concurrency.install, bucardo.uninstall and concurrency.uninstall; then set it back to '${mine.metadata.dbname}' and run concurrency.install and bucardo.install.`;
  return `${found} ${fix}`;
}
