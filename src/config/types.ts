// The typed, validated form of one replication job's YAML file.

export type DatabaseRole = 'bucardo' | 'primary' | 'secondary';
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export const SSL_MODES: readonly SslMode[] = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
];
/**
 * How the secondary gets its first rows: Bucardo's one-time copy (always: empties the target tables
 * first; empty: only into empty ones), none (never), or the console's own online copy (parallel:
 * COPY streams, several at once, before the daemon applies what the triggers recorded meanwhile).
 */
export type CopyData = 'always' | 'never' | 'empty' | 'parallel';

export interface DatabaseConfig {
  role: DatabaseRole;
  host: string;
  port: number;
  /** For the bucardo role this is the metadata database (see Job.metadataDb for the effective name). */
  dbname: string;
  /** Owns the database: Bucardo connects as this role; it creates the bucardo schema on a primary. */
  databaseOwner: string;
  /** Owns the replicated tables: needed for trigger DDL when it differs from the database owner. */
  schemaOwner: string;
  /** Name of an environment variable holding the password (instead of PGPASSWORD). */
  passwordEnv?: string;
  /** A libpq password file for this database (instead of PGPASSFILE / ~/.pgpass). */
  passfile?: string;
  sslmode: SslMode;
  /** The CA file that verifies the server's certificate (verify-ca, verify-full). */
  sslrootcert?: string;
  /**
   * A pg_service.conf service this database's settings came from. Its values were copied into the
   * keys above when the config was read (explicit keys win); its password= is looked up when needed.
   */
  service?: string;
  /** bucardo role only: an existing superuser that installs Bucardo (creates the bucardo role and database). */
  installUser: string;
  /** bucardo role only: database to connect to while the metadata database does not exist yet. */
  fallbackDb: string;
  /** primary: this job is the B→C hop of a cascade; secondary: this job is the A→B hop. */
  cascade: boolean;
}

export interface ReplicationObjects {
  namespaceInclude: string[];
  namespaceExclude: string[];
  tableInclude: string[];
  tableExclude: string[];
}

export interface BucardoSettings {
  replicationName: string;
  /**
   * Bucardo syncs the job's tables are split into (each applied by its own worker). 1: one sync named
   * after the job, as always; N > 1: syncs <name>_1 ... <name>_N (src/core/bucardo/syncs.ts).
   */
  syncs: number;
  copyData: CopyData;
  /** copy_data parallel: how many tables or key ranges are copied at once. */
  copyJobs: number;
  /** copy_data parallel: tables with more rows than this are split into primary-key ranges of about this size. */
  copySplitRows: number;
  asynchronousKicking: boolean;
  /** Seconds between the asynchronous kicker's looks for changes while none arrive (sub-second allowed). */
  kickInterval: number;
  /** Seconds between its looks while changes arrive (at most kickInterval; docs/kicker.md). */
  kickIntervalBusy: number;
  replicationObjects: ReplicationObjects;
  pidDir: string;
  logDir: string;
  /** Private HOME for the bucardo executable (its .pgpass lives here, never in the operator's). */
  stateDir: string;
  /** A worker statement running this long, or an old backlog with no good run for this long, is a stall. */
  watchdogSeconds: number;
  /** Let the kicker apply the stall remedy (refresh statistics, cancel the stuck statement). */
  stallRemedy: boolean;
  /**
   * Seconds between the kicker's re-comparisons of the keys Bucardo recently marked applied (the safety
   * net, src/core/recheck.ts); 0: off. At most 30: Bucardo purges applied change records after 45 s.
   */
  recheckSeconds: number;
  /**
   * Seconds Bucardo's daemon, controller and workers sleep between looks for kicks (its mcp_loop_sleep,
   * ctl_sleep and kid_sleep; Bucardo's own defaults 0.2/0.2/0.5 put up to 0.9 s on every change).
   */
  workerSleep: number;
  /**
   * Seconds between Bucardo's purges of applied change records (its VAC's vac_sleep and vac_run).
   * Bucardo purges records at least 45 s old that every target has applied; at its own 120 s the delta
   * and track tables hold up to about 165 s of changes, and every worker run scans both whole.
   */
  purgeIntervalSeconds: number;
  /**
   * Seconds between a controller's looks at whether its sync's worker still runs (Bucardo's
   * ctl_checkonkids_time, 10 by default): a worker that exited after the initial copy or died is only
   * started again at that check, and kicks meanwhile are lost.
   */
  workerCheckSeconds: number;
  /**
   * The kicker ANALYZEs Bucardo's delta/track tables as they grow. Off for an operator whose DBA runs
   * their own maintenance on them (the watchdog and the stall remedy work either way).
   */
  maintainStatistics: boolean;
  /**
   * Bucardo's sessions on the primary run with enable_nestloop and enable_hashagg off: its delta/track
   * anti joins are hashed (a nested loop is O(delta x track)) and its DISTINCTs sorted (a hash aggregate
   * that spills was seen resetting its table for minutes). Both stalled workers under load.
   */
  robustPlans: boolean;
  /** Upper bound (ms) on any lock wait of Bucardo's or the tool's own DDL. */
  lockTimeoutMs: number;
  executable: string;
}

/**
 * One database the primary's changes go to. A job with `databases.secondary` has one, named
 * `secondary`; with `databases.secondaries` (fan-out) one per entry, in the file's order.
 */
export interface TargetConfig {
  name: string;
  database: DatabaseConfig;
}

export interface JobConfig {
  file: string;
  plugins: string[];
  /** `secondary` is the first target (targets[0]); a per-target view of the job points it at another. */
  databases: Record<DatabaseRole, DatabaseConfig>;
  /** Every database the primary replicates to: one, or several with `databases.secondaries`. */
  targets: TargetConfig[];
  /** Whether the config names its targets with `databases.secondaries` (fan-out; docs/fan-out.md). */
  fanOut: boolean;
  bucardo: BucardoSettings;
  /** Parsed plugin sections, keyed by plugin name; each plugin owns the shape of its own section. */
  pluginSettings: Record<string, unknown>;
  /** Where the kicker serves Prometheus metrics; absent (off) unless the config has metrics.listen. */
  metrics?: MetricsSettings;
}

export interface MetricsSettings {
  listen?: { host: string; port: number };
  /** Pending changes per table as well as per job (one series per table: off by default). */
  perTable: boolean;
}
