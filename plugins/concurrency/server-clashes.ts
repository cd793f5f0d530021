// The guard rails against what the metadata server itself holds: Bucardo metadata databases of jobs
// this user never registered (another user, a job set up by hand), and this job's own metadata in
// the wrong database (bucardo.install run before concurrency.install, or with another name).
import { isJobSyncName } from '../../src/core/bucardo/names.js';
import path from 'node:path';
import type { Clash } from './clashes.js';
import { describeSpot, type JobFootprint } from './footprint.js';
import type { BucardoInstance, HostScan } from './host-scan.js';
import { DEFAULT_METADATA_DB, sameServer, serverKey } from './settings.js';

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
