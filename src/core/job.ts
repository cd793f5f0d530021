// A replication job: one config file plus every name and path derived from it. Plugins read names
// from here instead of building them, so a pid dir or a Bucardo object name is decided in one place.
import path from 'node:path';
import type { DatabaseRole, JobConfig } from '../config/types.js';
import { OperatorError } from './errors.js';
import { databaseRecordNames } from './bucardo/names.js';

export interface JobPaths {
  pidDir: string;
  logDir: string;
  /** Private HOME of the bucardo executable: its .pgpass lives here, never in the operator's home. */
  stateDir: string;
  logExtension: string;
  logFile: string;
  reasonFile: string;
  warningFile: string;
  conflictFile: string;
  mcpPidFile: string;
  stopFile: string;
  kickerPidFile: string;
  kickerLogFile: string;
  kickerStateFile: string;
}

export interface Job {
  /** '' for a single-config session, 'c1' / 'c2' when two configs are loaded. */
  label: string;
  config: JobConfig;
  name: string;
  syncName: string;
  relgroupName: string;
  /**
   * Name of the metadata database, worked out once when the session loads: databases.bucardo.dbname,
   * or what a plugin's configureJob sets (concurrency: concurrency.bucardo_dbname). A plain value.
   */
  metadataDb: string;
  /**
   * Why the metadata database may not be used yet, when a plugin says so at load (concurrency: the job
   * is not prepared, or was prepared for another name): every session to it and every bucardo command
   * refuses with this paragraph (metadataDbName). The plugin's own commands update it when they change
   * what it depends on (concurrency.install, concurrency.uninstall).
   */
  metadataDbRefusal?: string;
  /**
   * Names under which the databases are recorded in Bucardo's metadata: `<name>_primary` and
   * `<name>_secondary`, or what an installed job's records carry (adoptRecordedNames in
   * src/core/bucardo/records.ts: a job installed before the names carried the job's keeps
   * primary_db/secondary_db).
   */
  bucardoDbName: Record<Exclude<DatabaseRole, 'bucardo'>, string>;
  /**
   * The dbgroup every sync of the job replicates to: named after the job, or the one its recorded
   * syncs use (adoptRecordedNames). Its target `dbgroup <name>` (trackTarget) marks a change applied
   * in the primary's track tables, so every backlog, hold and change-log query goes by it.
   */
  dbgroupName: string;
  /** The dbgroup of the recorded way back (reverse.ts), when its sync exists (adoptRecordedNames). */
  recordedWayBackDbgroup?: string;
  paths: JobPaths;
  /** Set by the fork_bucardo plugin: this job runs a changed private copy of Bucardo (docs/fork_bucardo.md). */
  bucardoFork?: BucardoFork;
}

export interface BucardoFork {
  executable: string;
  /** First on Perl's module path, so that the CLI and every daemon process load Bucardo.pm from here. */
  perlLib: string;
  /** Installed path of each Bucardo file → the fork's copy. */
  files: Record<string, string>;
}

export function createJob(config: JobConfig, label = ''): Job {
  const { replicationName, pidDir, logDir, stateDir } = config.bucardo;
  return {
    label,
    config,
    name: replicationName,
    syncName: replicationName,
    relgroupName: replicationName,
    metadataDb: config.databases.bucardo.dbname,
    bucardoDbName: databaseRecordNames(replicationName),
    dbgroupName: replicationName,
    paths: {
      pidDir,
      logDir,
      stateDir,
      logExtension: replicationName,
      logFile: path.join(logDir, `log.bucardo.${replicationName}`),
      reasonFile: path.join(logDir, `bucardo.${replicationName}.restart.reason`),
      warningFile: path.join(logDir, `bucardo.${replicationName}.warning.log`),
      conflictFile: path.join(logDir, `bucardo.${replicationName}.conflict.log`),
      mcpPidFile: path.join(pidDir, 'bucardo.mcp.pid'),
      stopFile: path.join(pidDir, 'fullstopbucardo'),
      kickerPidFile: path.join(pidDir, `kicker.${replicationName}.pid`),
      kickerLogFile: path.join(logDir, `kicker.${replicationName}.log`),
      kickerStateFile: path.join(pidDir, `kicker.${replicationName}.json`),
    },
  };
}

/** The metadata database's name for anything that reaches it; refuses while a plugin says it may not be used. */
export function metadataDbName(job: Job): string {
  if (job.metadataDbRefusal) throw new OperatorError(job.metadataDbRefusal);
  return job.metadataDb;
}

/** "c1 (a_to_b)" or "a_to_b": how messages name a job. */
export function jobTitle(job: Job): string {
  return job.label ? `${job.label} (${job.name})` : job.name;
}
