// The cutover section of a job's config: how much lag still counts as ready, how verify works
// through the data, and the safety margins of the switch. Every key is optional.
import { availableParallelism } from 'node:os';
import type { ConfigReader } from '../../src/config/reader.js';

export interface CutoverSettings {
  /** Seconds of replication lag (oldest pending change) that still count as ready. */
  maxLagSeconds: number;
  /** A verify older than this many seconds no longer counts for cutover.check. */
  verifyMaxAgeSeconds: number;
  /** Tables verified at the same time (each uses one connection to each side). */
  jobs: number;
  /** Rows per checksum chunk: each chunk is one short statement on each side. */
  chunkRows: number;
  /** How long verify waits for differing rows to arrive through replication before judging them. */
  settleSeconds: number;
  /** cutover.finish sets each sequence on the secondary this many increments past the primary's. */
  sequenceMargin: number;
  /** How long cutover.finish waits for the backlog to drain after writes stopped. */
  drainTimeoutSeconds: number;
  /**
   * The final check of cutover.finish also counts every table's rows on both sides: a second,
   * independent aggregate, but the one part of the write pause that grows with the database.
   */
  finalRowCounts: boolean;
  /** cutover.finish leaves reverse replication B→A running (as with --way-back). */
  wayBack: boolean;
  /**
   * A fan-out job's other targets at `cutover.finish --target B`: follow B (a sync B→the others,
   * created without a copy, runs from the switch on) or stop (they keep what they had at the switch).
   */
  others: 'follow' | 'stop';
  /** The application's roles the old primary refuses writes from once the pause begins (pooler.ts, fence.ts). */
  fence: string[];
  /** Seconds a fenced role's sessions may take to end by themselves before they are ended. */
  fenceGraceSeconds: number;
  /** The operator's command run at the switch (argument array, never a shell line). */
  switchCommand?: string[];
  /** Seconds the switch command may run. */
  switchTimeoutSeconds: number;
  /** The PgBouncer in front of the application: it pauses, is repointed, and resumes. */
  pgbouncer?: PoolerSettings;
  /**
   * Tables without a primary key (Bucardo cannot replicate them) copied whole from the primary to the
   * secondary inside the write pause of cutover.finish: small lookup tables left out of replication.
   */
  copyAtCutover: { schema: string; name: string }[];
}

export interface PoolerSettings {
  host: string;
  port: number;
  /** A user in PgBouncer's admin_users. */
  user: string;
  passwordEnv?: string;
  passfile?: string;
  /** The pooler's database names (its [databases] entries) the application uses. */
  databases: string[];
  /** PgBouncer's ini file, whose [databases] entries are rewritten at the switch. */
  configFile: string;
  /** Seconds PAUSE may take (running transactions finishing) before the cutover is called off. */
  pauseTimeoutSeconds: number;
}

const KEYS = [
  'max_lag',
  'verify_max_age',
  'jobs',
  'chunk_rows',
  'settle_time',
  'sequence_margin',
  'drain_timeout',
  'final_row_counts',
  'way_back',
  'others',
  'fence',
  'fence_grace',
  'switch_command',
  'switch_timeout',
  'pgbouncer',
  'copy_at_cutover',
];

const POOLER_KEYS = [
  'host',
  'port',
  'user',
  'password_env',
  'passfile',
  'databases',
  'config_file',
  'pause_timeout',
];

export function defaultCutoverSettings(): CutoverSettings {
  return {
    maxLagSeconds: 5,
    verifyMaxAgeSeconds: 3600,
    jobs: Math.min(4, availableParallelism()),
    chunkRows: 100_000,
    settleSeconds: 30,
    sequenceMargin: 1000,
    drainTimeoutSeconds: 300,
    finalRowCounts: true,
    wayBack: false,
    others: 'follow',
    fence: [],
    fenceGraceSeconds: 5,
    switchTimeoutSeconds: 30,
    copyAtCutover: [],
  };
}

export function parseCutoverSettings(reader: ConfigReader, value: unknown, path: string): CutoverSettings {
  const raw = reader.section(value, path, KEYS);
  const defaults = defaultCutoverSettings();
  return {
    maxLagSeconds: reader.number(raw, 'max_lag', path, defaults.maxLagSeconds),
    verifyMaxAgeSeconds: reader.number(raw, 'verify_max_age', path, defaults.verifyMaxAgeSeconds, 1),
    jobs: reader.integer(raw, 'jobs', path, defaults.jobs, 1, 64),
    chunkRows: reader.integer(raw, 'chunk_rows', path, defaults.chunkRows, 100, 100_000_000),
    settleSeconds: reader.number(raw, 'settle_time', path, defaults.settleSeconds),
    sequenceMargin: reader.integer(raw, 'sequence_margin', path, defaults.sequenceMargin, 0, 1_000_000_000),
    drainTimeoutSeconds: reader.number(raw, 'drain_timeout', path, defaults.drainTimeoutSeconds, 1),
    finalRowCounts: reader.boolean(raw, 'final_row_counts', path, defaults.finalRowCounts),
    wayBack: reader.boolean(raw, 'way_back', path, defaults.wayBack),
    others: reader.oneOf(raw, 'others', path, ['follow', 'stop'] as const, defaults.others),
    fence: reader.stringList(raw, 'fence', path),
    fenceGraceSeconds: reader.number(raw, 'fence_grace', path, defaults.fenceGraceSeconds),
    ...switchCommand(reader, raw, path),
    switchTimeoutSeconds: reader.number(raw, 'switch_timeout', path, defaults.switchTimeoutSeconds, 1),
    ...(raw['pgbouncer'] !== undefined && raw['pgbouncer'] !== null
      ? { pgbouncer: parsePooler(reader, raw['pgbouncer'], `${path}.pgbouncer`) }
      : {}),
    copyAtCutover: copyAtCutover(reader, raw, path),
  };
}

/** schema.table names; a name without its schema is refused (the search path differs between the servers). */
function copyAtCutover(
  reader: ConfigReader,
  raw: Record<string, unknown>,
  path: string,
): { schema: string; name: string }[] {
  const tables: { schema: string; name: string }[] = [];
  for (const entry of reader.stringList(raw, 'copy_at_cutover', path)) {
    const dot = entry.indexOf('.');
    if (dot <= 0 || dot === entry.length - 1) {
      reader.problem(
        `${path}.copy_at_cutover`,
        `expected schema.table, got ${entry}: name each table with its schema (public.countries)`,
      );
      continue;
    }
    tables.push({ schema: entry.slice(0, dot), name: entry.slice(dot + 1) });
  }
  return tables;
}

/** An argument array: the program, then its arguments. A single string is the program alone, never split. */
function switchCommand(
  reader: ConfigReader,
  raw: Record<string, unknown>,
  path: string,
): { switchCommand?: string[] } {
  const words = reader.stringList(raw, 'switch_command', path);
  if (!words.length) return {};
  if (!words[0]!.startsWith('/'))
    reader.problem(
      `${path}.switch_command`,
      `the program must be an absolute path (got ${words[0]}): the command runs without a shell, from the tool's directory`,
    );
  return { switchCommand: words };
}

function parsePooler(reader: ConfigReader, value: unknown, path: string): PoolerSettings {
  const raw = reader.section(value, path, POOLER_KEYS);
  const databases = reader.stringList(raw, 'databases', path);
  if (!databases.length && Object.keys(raw).length)
    reader.problem(
      `${path}.databases`,
      "is required: the pooler's database names the application connects to",
    );
  const configFile = reader.string(raw, 'config_file', path);
  if (configFile === undefined && Object.keys(raw).length)
    reader.problem(
      `${path}.config_file`,
      "is required: PgBouncer's ini file, whose [databases] entries are rewritten",
    );
  const passwordEnv = reader.string(raw, 'password_env', path);
  const passfile = reader.string(raw, 'passfile', path);
  return {
    host: reader.string(raw, 'host', path, '127.0.0.1'),
    port: reader.integer(raw, 'port', path, 6432, 1, 65535),
    user: reader.string(raw, 'user', path, 'pgbouncer'),
    ...(passwordEnv ? { passwordEnv } : {}),
    ...(passfile ? { passfile } : {}),
    databases,
    configFile: configFile ?? '',
    pauseTimeoutSeconds: reader.number(raw, 'pause_timeout', path, 10, 1),
  };
}

/** The job's settings; a job without a cutover section gets the defaults. */
export function cutoverSettings(config: { pluginSettings: Record<string, unknown> }): CutoverSettings {
  return (config.pluginSettings['cutover'] as CutoverSettings | undefined) ?? defaultCutoverSettings();
}
