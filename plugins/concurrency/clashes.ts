// The guard rails: what two jobs on one host must not share. Pure comparisons of footprints, so the
// same rules apply to the other config of a session, to registered jobs and in unit tests.
import { describeSpot, type DatabaseSpot, type JobFootprint } from './footprint.js';
import { sameServer } from './settings.js';

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
    for (const role of ['primary', 'secondary'] as const) {
      if (sameDatabase(mine.metadata, other[role])) {
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
