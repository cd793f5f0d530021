// A replication job: one config file plus every name and path derived from it. Plugins read names
// from here instead of building them, so a pid dir or a Bucardo object name is decided in one place.
import path from 'node:path';
import type { DatabaseConfig, DatabaseRole, JobConfig } from '../config/types.js';
import { OperatorError } from './errors.js';
import { databaseRecordNames, targetRecordName } from './bucardo/names.js';

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
  /**
   * Every database the primary replicates to, with the name Bucardo records it under. One for a
   * config with databases.secondary; one per entry of databases.secondaries (fan-out).
   */
  targets: JobTarget[];
  /**
   * The target this view of the job acts on: config.databases.secondary and bucardoDbName.secondary
   * are that target's (targetView). The job itself is the view of its first target.
   */
  target: string;
  /** Set by the fork_bucardo plugin: this job runs a changed private copy of Bucardo (docs/fork_bucardo.md). */
  bucardoFork?: BucardoFork;
  /**
   * Set by the retry plugin: the rounds of lock-bounded DDL every command runs on the job's tables
   * (lockRounds in rounds.ts); without it, FIXED_ROUNDS under bucardo.lock_timeout.
   */
  tunedRounds?: TunedRounds;
  /**
   * Set by the schema plugin: whether new leaf partitions of replicated tables join the job by
   * themselves (the kicker's look) and are created on the secondary first (partitionSettings in
   * src/core/bucardo/add-tables.ts); without it, neither. A plain value, like tunedRounds.
   */
  partitionPolicy?: PartitionPolicy;
}

/** How new partitions join a job (the schema plugin's auto_add_partitions, create_missing_partitions). */
export interface PartitionPolicy {
  autoAddPartitions: boolean;
  createMissingPartitions: boolean;
}

/**
 * Without the schema plugin, new partitions neither join a job nor are created on the secondary. Here
 * rather than beside the code that adds them (src/core/bucardo/add-tables.ts): the schema plugin's
 * settings read it while the shell starts, and add-tables.ts loads pg and the copy engine.
 */
export const DEFAULT_PARTITION_POLICY: PartitionPolicy = {
  autoAddPartitions: false,
  createMissingPartitions: false,
};

/**
 * Rounds a plugin tuned for the job's servers' locks (the retry plugin: retry.timeout, attempts,
 * backoff), registered by its configureJob as `job.tunedRounds`. Plain values, since the kicker
 * gets the job as JSON; the core never reads a plugin's settings itself.
 */
export interface TunedRounds {
  /** Upper bound (ms) on each table's lock wait; also the longest an application query waits behind us. */
  timeoutMs: number;
  /** Rounds over the tables still waiting, the first one included. */
  attempts: number;
  /** Pause (ms) before the second round; it doubles for every further round, up to a minute (rounds.ts). */
  backoffMs: number;
  /** The setting that bounds each lock wait, for messages ("retry.timeout"). */
  setting: string;
}

export interface JobTarget {
  name: string;
  /** Its database record in Bucardo's metadata (`<job>_<target>`, or `<job>_secondary` for one target). */
  recordName: string;
  database: DatabaseConfig;
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
  const targets = jobTargets(config);
  return {
    label,
    config,
    name: replicationName,
    syncName: replicationName,
    relgroupName: replicationName,
    metadataDb: config.databases.bucardo.dbname,
    bucardoDbName: {
      primary: databaseRecordNames(replicationName).primary,
      secondary: targets[0]!.recordName,
    },
    dbgroupName: replicationName,
    targets,
    target: targets[0]!.name,
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

function jobTargets(config: JobConfig): JobTarget[] {
  const name = config.bucardo.replicationName;
  return config.targets.map((target) => ({
    ...target,
    recordName: config.fanOut ? targetRecordName(name, target.name) : databaseRecordNames(name).secondary,
  }));
}

/**
 * The job as seen by a command acting on one of its targets: its secondary is that target (database
 * and record name); everything else is the job's. The same object for the same target, so that its
 * shared sessions (ctx.databases) are opened once.
 */
export function targetView(job: Job, name: string): Job {
  const target = job.targets.find((t) => t.name === name);
  if (!target) throw new OperatorError(unknownTargetMessage(job, name));
  if (job.target === name) return job;
  let views = viewsOf.get(job);
  if (!views) viewsOf.set(job, (views = new Map()));
  let view = views.get(name);
  if (!view) {
    view = {
      ...job,
      config: { ...job.config, databases: { ...job.config.databases, secondary: target.database } },
      bucardoDbName: { ...job.bucardoDbName, secondary: target.recordName },
      target: name,
    };
    views.set(name, view);
  }
  return view;
}
const viewsOf = new WeakMap<Job, Map<string, Job>>();

/** The views of the targets a command acts on: the one named, or all of them. */
export function targetViews(job: Job, name?: string): Job[] {
  return name === undefined ? job.targets.map((t) => targetView(job, t.name)) : [targetView(job, name)];
}

export function unknownTargetMessage(job: Job, name: string): string {
  return job.config.fanOut
    ? `${jobTitle(job)} has no target named '${name}': its targets are ${job.targets.map((t) => t.name).join(', ')} (databases.secondaries in ${job.config.file}). Name one of them with --target, or leave --target out to act on every target.`
    : `${jobTitle(job)} has one target, its databases.secondary: --target names a target of a job with databases.secondaries only. Leave --target out.`;
}

/**
 * What a plugin's records key a job's per-target rows by: the job's name, and with several targets
 * (databases.secondaries) the name and the target (`shop:b`), so that each target keeps its own.
 */
export function targetKey(job: Job): string {
  return job.config.fanOut ? `${job.name}:${job.target}` : job.name;
}

/** "B (db2:5432/shop)": how messages name a target. */
export function targetTitle(job: Job): string {
  const db = job.config.databases.secondary;
  return `${job.target} (${db.host}:${db.port}/${db.dbname})`;
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
