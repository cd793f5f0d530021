// Reads one job's YAML file into a JobConfig. All problems are reported together, with key paths;
// plugin sections are validated by the plugin that owns them.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { ConfigReader, closest, type Raw } from './reader.js';
import {
  SSL_MODES,
  type DatabaseConfig,
  type DatabaseRole,
  type JobConfig,
  type MetricsSettings,
  type TargetConfig,
  type ReplicationObjects,
} from './types.js';
import type { PluginCatalog } from '../core/plugin.js';
import { findService, serviceFiles } from '../core/pgservice.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(
      `Config file ${file} has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

const TOP_LEVEL_KEYS = ['plugins', 'databases', 'bucardo', 'metrics'] as const;
const DATABASE_KEYS = [
  'host',
  'port',
  'dbname',
  'database_owner',
  'schema_owner',
  'password_env',
  'passfile',
  'sslmode',
  'sslrootcert',
  'service',
];
const ROLE_KEYS: Record<DatabaseRole, string[]> = {
  // The metadata database is named 'bucardo' unless the concurrency plugin names it (concurrency.bucardo_dbname).
  bucardo: [...DATABASE_KEYS.filter((key) => key !== 'dbname'), 'fallback_db', 'install_user'],
  primary: [...DATABASE_KEYS, 'cascade', 'disable_kicking'],
  secondary: [...DATABASE_KEYS, 'cascade'],
};
const BUCARDO_KEYS = [
  'replication_name',
  'copy_data',
  'asynchronous_kicking',
  'kick_interval',
  'kick_interval_busy',
  'replication_objects',
  'pid_dir',
  'log_dir',
  'state_dir',
  'lock_timeout',
  'executable',
  'watchdog_seconds',
  'recheck_interval',
  'stall_remedy',
  'worker_sleep',
  'purge_interval',
  'worker_check_interval',
  'maintain_statistics',
  'robust_plans',
  'copy_jobs',
  'copy_split_rows',
  'syncs',
];
export const REPLICATION_OBJECT_KEYS = [
  'namespace_include',
  'namespace_exclude',
  'table_include',
  'table_exclude',
];

/** Bucardo keeps trigger names stable only for sync names up to 42 characters (docs/how-bucardo-behaves.md §4). */
export const MAX_REPLICATION_NAME = 42;
/** Syncs per job: each is one Bucardo worker (and one connection per database) applying in parallel. */
export const MAX_SYNCS = 32;

export function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'it does not exist'
        : code === 'EACCES'
          ? 'permission denied'
          : String((error as Error).message);
    throw new ConfigError(file, [
      `cannot read the file: ${reason}. Pass the job's file with -c FILE (default: config.yml in the current directory); configs/example.yml is a commented template.`,
    ]);
  }
  try {
    return yaml.load(text, { filename: file }) ?? {};
  } catch (error) {
    if (error instanceof yaml.YAMLException) {
      const mark = error.mark;
      throw new ConfigError(file, [
        `YAML syntax error at line ${mark.line + 1}, column ${mark.column + 1}: ${error.reason}`,
      ]);
    }
    throw error;
  }
}

export async function loadConfig(file: string, catalog: PluginCatalog): Promise<JobConfig> {
  const absolute = path.resolve(file);
  const document = readYaml(absolute);
  const reader = new ConfigReader(absolute);
  const available = catalog.available();
  // The bucardo plugin's section is the core 'bucardo' key: list each allowed key once.
  const root = reader.section(document, '', [...new Set([...TOP_LEVEL_KEYS, ...available])]);

  const plugins = reader.stringList(root, 'plugins', 'plugins');
  if (root['plugins'] === undefined)
    reader.problem(
      'plugins',
      `is required: list the plugins this job uses, for example [bucardo]. Available: ${available.join(', ')}`,
    );
  for (const name of plugins) {
    if (!available.includes(name)) {
      const hint = closest(name, available);
      reader.problem(
        'plugins',
        `'${name}' is not a plugin${hint ? ` (did you mean '${hint}'?)` : ''}; available plugins: ${available.join(', ')}`,
      );
    }
  }

  const databasesRaw = reader.section(root['databases'], 'databases', [
    'bucardo',
    'primary',
    'secondary',
    'secondaries',
  ]);
  const bucardoRaw = reader.section(root['bucardo'], 'bucardo', BUCARDO_KEYS);
  const replicationName = reader.requiredString(bucardoRaw, 'replication_name', 'bucardo');
  validateReplicationName(reader, replicationName);

  const roleSections = {} as Record<Exclude<DatabaseRole, 'secondary'>, Raw>;
  const databases = {} as Record<DatabaseRole, DatabaseConfig>;
  for (const role of ['bucardo', 'primary'] as const) {
    const value = databasesRaw[role];
    if (value === undefined || value === null)
      reader.problem(
        `databases.${role}`,
        `is required: ${role === 'bucardo' ? 'host, port and database_owner of the metadata host' : `host, port, dbname and database_owner of the ${role} database`}`,
      );
    roleSections[role] = reader.section(value, `databases.${role}`, ROLE_KEYS[role]);
    databases[role] = readDatabase(reader, role, roleSections[role], absolute);
  }
  const { targets, fanOut } = readTargets(reader, databasesRaw, databases.primary, replicationName, absolute);
  databases.secondary = targets[0]!.database;
  const primaryRaw = roleSections.primary;
  // The original tool's key (databases.primary.disable_kicking) and the newer bucardo.asynchronous_kicking
  // mean the same thing; either one turns the per-commit kick triggers off.
  const kickingOffByBucardoKey = reader.boolean(bucardoRaw, 'asynchronous_kicking', 'bucardo', false);
  const kickingOffByPrimaryKey = reader.boolean(primaryRaw, 'disable_kicking', 'databases.primary', false);
  const asynchronousKicking = kickingOffByBucardoKey || kickingOffByPrimaryKey;

  const safeName = replicationName || 'job';
  const config: JobConfig = {
    file: absolute,
    plugins,
    databases,
    targets,
    fanOut,
    bucardo: {
      replicationName,
      copyData: reader.oneOf(
        bucardoRaw,
        'copy_data',
        'bucardo',
        ['always', 'never', 'empty', 'parallel'] as const,
        'empty',
      ),
      copyJobs: reader.integer(bucardoRaw, 'copy_jobs', 'bucardo', 2, 1, 64),
      copySplitRows: reader.integer(bucardoRaw, 'copy_split_rows', 'bucardo', 1_000_000, 1, 2_000_000_000),
      asynchronousKicking,
      kickInterval: reader.number(bucardoRaw, 'kick_interval', 'bucardo', 1, 0.05),
      kickIntervalBusy: reader.number(bucardoRaw, 'kick_interval_busy', 'bucardo', 0.25, 0.05),
      replicationObjects: readReplicationObjects(
        reader,
        bucardoRaw['replication_objects'],
        'bucardo.replication_objects',
      ),
      pidDir: resolvePath(
        reader.string(bucardoRaw, 'pid_dir', 'bucardo', `/var/run/bucardo/${safeName}_piddir`),
        absolute,
      ),
      logDir: resolvePath(reader.string(bucardoRaw, 'log_dir', 'bucardo', '/var/log/bucardo'), absolute),
      stateDir: resolvePath(
        reader.string(bucardoRaw, 'state_dir', 'bucardo', path.join(homedir(), '.bucardo-console', safeName)),
        absolute,
      ),
      lockTimeoutMs: reader.integer(bucardoRaw, 'lock_timeout', 'bucardo', 5000, 1, 3_600_000),
      watchdogSeconds: reader.integer(bucardoRaw, 'watchdog_seconds', 'bucardo', 120, 1, 86_400),
      stallRemedy: reader.boolean(bucardoRaw, 'stall_remedy', 'bucardo', false),
      recheckSeconds: reader.integer(bucardoRaw, 'recheck_interval', 'bucardo', 10, 0, 30),
      workerSleep: reader.number(bucardoRaw, 'worker_sleep', 'bucardo', 0.05, 0.02),
      purgeIntervalSeconds: reader.integer(bucardoRaw, 'purge_interval', 'bucardo', 10, 1, 3600),
      workerCheckSeconds: reader.integer(bucardoRaw, 'worker_check_interval', 'bucardo', 2, 1, 600),
      maintainStatistics: reader.boolean(bucardoRaw, 'maintain_statistics', 'bucardo', true),
      robustPlans: reader.boolean(bucardoRaw, 'robust_plans', 'bucardo', true),
      executable: reader.string(bucardoRaw, 'executable', 'bucardo', 'bucardo'),
      syncs: reader.integer(bucardoRaw, 'syncs', 'bucardo', 1, 1, MAX_SYNCS),
    },
    pluginSettings: {},
    metrics: readMetrics(reader, root['metrics']),
  };

  validateSyncNames(reader, replicationName, config.bucardo.syncs);

  for (const name of available) {
    // The bucardo plugin's settings are the core 'bucardo' section, read above.
    if ((TOP_LEVEL_KEYS as readonly string[]).includes(name)) continue;
    // A section whose plugin is not enabled is accepted as it stands and ignored (the original tool's
    // config.yml carries every plugin's section, placeholders included).
    if (!plugins.includes(name)) continue;
    const plugin = await catalog.load(name);
    if (plugin.parseSettings)
      config.pluginSettings[name] = plugin.parseSettings(reader, root[name], name, config);
    else if (root[name] !== undefined && root[name] !== null)
      reader.problem(name, `plugin '${name}' takes no settings`);
  }

  if (reader.problems.length > 0) throw new ConfigError(absolute, reader.problems);
  return config;
}

/** Bucardo records a fan-out target as <replication_name>_<target>: the same rules as the name itself. */
const TARGET_NAME = /^[a-z_][a-z0-9_]*$/;
/** Names a target may not take: its record would read as the primary's, or as another record of the job. */
const RESERVED_TARGET_NAMES = ['primary', 'back', 'bucardo'];

/**
 * The databases the primary replicates to: `databases.secondary` (one target, named `secondary`) or
 * `databases.secondaries`, a mapping of target name → the same keys (fan-out, docs/fan-out.md). Each
 * must be another database than the primary and than every other target.
 */
function readTargets(
  reader: ConfigReader,
  databasesRaw: Raw,
  primary: DatabaseConfig,
  replicationName: string,
  configFile: string,
): { targets: TargetConfig[]; fanOut: boolean } {
  const single = databasesRaw['secondary'];
  const many = databasesRaw['secondaries'];
  const given = (value: unknown) => value !== undefined && value !== null;
  if (given(single) && given(many))
    reader.problem(
      'databases.secondaries',
      'and databases.secondary are both set: use databases.secondary for one target, or list every target (that one included) under databases.secondaries',
    );
  if (!given(many)) {
    if (!given(single))
      reader.problem(
        'databases.secondary',
        'is required: host, port, dbname and database_owner of the secondary database (or databases.secondaries: a mapping of target name → those keys, to replicate to several)',
      );
    const section = reader.section(single, 'databases.secondary', ROLE_KEYS.secondary);
    const database = readDatabase(reader, 'secondary', section, configFile);
    // Not checked against the primary here: templates written for the original tool name one
    // placeholder database twice, and they load as they always did.
    return { targets: [{ name: 'secondary', database }], fanOut: false };
  }
  // Any name is a key here (the targets' own names); each is checked below.
  const entries = reader.section(
    many,
    'databases.secondaries',
    many && typeof many === 'object' ? Object.keys(many) : [],
  );
  const names = Object.keys(entries);
  if (names.length === 0) {
    reader.problem(
      'databases.secondaries',
      'lists no target: name at least one (target name → host, port, dbname, ...)',
    );
  }
  const targets: (TargetConfig & { where: string })[] = [];
  for (const name of names) {
    const where = `databases.secondaries.${name}`;
    if (!TARGET_NAME.test(name) || RESERVED_TARGET_NAMES.includes(name))
      reader.problem(
        where,
        `'${name}' is not a usable target name: lower-case letters, digits and underscores, starting with a letter or underscore, and none of ${RESERVED_TARGET_NAMES.join(', ')} (Bucardo records the target as ${replicationName || '<replication_name>'}_${name})`,
      );
    else if (replicationName && `${replicationName}_${name}`.length > 63)
      reader.problem(
        where,
        `'${name}' makes the record name ${replicationName}_${name} longer than 63 characters: use a shorter target name`,
      );
    const section = reader.section(entries[name], where, ROLE_KEYS.secondary);
    const database = readDatabase(reader, 'secondary', section, configFile);
    if (database.cascade)
      reader.problem(
        `${where}.cascade`,
        'a job with several targets cannot also be the first hop of a cascade: run the cascade as its own job with databases.secondary, or leave cascade out here',
      );
    targets.push({ name, database, where });
  }
  checkDistinct(reader, primary, targets);
  if (targets.length === 0) {
    const database = readDatabase(reader, 'secondary', {}, configFile);
    return { targets: [{ name: 'secondary', database }], fanOut: true };
  }
  return { targets: targets.map(({ name, database }) => ({ name, database })), fanOut: true };
}

/** A target that is the primary itself, or the same database as another target, would replicate onto itself. */
function checkDistinct(
  reader: ConfigReader,
  primary: DatabaseConfig,
  targets: (TargetConfig & { where: string })[],
): void {
  const spot = (db: DatabaseConfig) => `${sameHost(db.host)}:${db.port}/${db.dbname}`;
  const seen = new Map<string, string>();
  for (const target of targets) {
    if (!target.database.dbname || !primary.dbname) continue;
    const at = spot(target.database);
    if (at === spot(primary))
      reader.problem(
        target.where,
        `is the primary itself (${target.database.host}:${target.database.port}/${target.database.dbname}): a target must be another database, or the job would replicate the primary onto itself`,
      );
    const earlier = seen.get(at);
    if (earlier)
      reader.problem(
        target.where,
        `is the same database as ${earlier} (${target.database.host}:${target.database.port}/${target.database.dbname}): every target must be a database of its own`,
      );
    seen.set(at, target.where);
  }
}

/** localhost, 127.0.0.1 and ::1 reach the same server; other spellings of one host are not guessed. */
function sameHost(host: string): string {
  const lower = host.toLowerCase();
  return ['localhost', '127.0.0.1', '::1'].includes(lower) ? 'localhost' : lower;
}

/** The kicker's Prometheus endpoint (docs/status-and-monitoring.md): off unless metrics.listen is set. */
function readMetrics(reader: ConfigReader, value: unknown): MetricsSettings {
  const raw = reader.section(value, 'metrics', ['listen', 'per_table']);
  const perTable = reader.boolean(raw, 'per_table', 'metrics', false);
  const listen = reader.string(raw, 'listen', 'metrics');
  if (listen === undefined) return { perTable };
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(listen);
  if (!match || Number(match[2]) > 65_535) {
    reader.problem(
      'metrics.listen',
      `'${listen}' is not host:port; example: 127.0.0.1:9187 (keep it on a local or private address: the metrics are not protected)`,
    );
    return { perTable };
  }
  return { listen: { host: match[1]!, port: Number(match[2]) }, perTable };
}

/** With bucardo.syncs N > 1 the syncs are <name>_1 ... <name>_N: the longest must stay within the limit too. */
function validateSyncNames(reader: ConfigReader, name: string, syncs: number): void {
  if (syncs <= 1 || !name || name.length > MAX_REPLICATION_NAME) return;
  const longest = `${name}_${syncs}`;
  if (longest.length > MAX_REPLICATION_NAME)
    reader.problem(
      'bucardo.syncs',
      `with ${syncs} syncs the sync names run up to '${longest}' (${longest.length} characters); Bucardo keeps trigger names stable only up to ${MAX_REPLICATION_NAME}: shorten bucardo.replication_name to ${MAX_REPLICATION_NAME - 1 - String(syncs).length} characters or use fewer syncs`,
    );
}

function validateReplicationName(reader: ConfigReader, name: string): void {
  if (!name) return;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    reader.problem(
      'bucardo.replication_name',
      `'${name}' must start with a letter or underscore and contain only letters, digits and underscores (it names the Bucardo sync, relgroup, pid dir and log files)`,
    );
  } else if (name.length > MAX_REPLICATION_NAME) {
    reader.problem(
      'bucardo.replication_name',
      `'${name}' is ${name.length} characters; at most ${MAX_REPLICATION_NAME} keep Bucardo's trigger names stable (longer names get random trigger names that change on every validate)`,
    );
  }
}

function readDatabase(
  reader: ConfigReader,
  role: DatabaseRole,
  explicit: Raw,
  configFile: string,
): DatabaseConfig {
  const where = `databases.${role}`;
  const service = reader.string(explicit, 'service', where);
  // As in libpq, keys given in the config win over the service's, and the service's over the defaults.
  const raw: Raw = { ...(service ? serviceKeys(reader, role, service, where) : {}), ...explicit };
  const databaseOwner = reader.string(
    raw,
    'database_owner',
    where,
    role === 'bucardo' ? 'bucardo' : 'postgres',
  );
  const passwordEnv = reader.string(raw, 'password_env', where);
  if (passwordEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(passwordEnv))
    reader.problem(`${where}.password_env`, `'${passwordEnv}' is not an environment variable name`);
  const sslmode = reader.oneOf(
    raw,
    'sslmode',
    where,
    SSL_MODES,
    (process.env['PGSSLMODE'] as never) ?? 'prefer',
  );
  // Relative paths in the config are relative to the config file's folder, like pid_dir and log_dir;
  // those that came from a service file are relative to the working directory, as libpq reads them.
  const filePath = (key: string) => {
    const value = reader.string(raw, key, where);
    if (value === undefined) return undefined;
    return key in explicit ? resolvePath(value, configFile) : path.resolve(value);
  };
  const sslrootcert = filePath('sslrootcert');
  const passfile = filePath('passfile');
  return {
    role,
    host: reader.string(raw, 'host', where, 'localhost'),
    port: reader.integer(raw, 'port', where, 5432, 1, 65535),
    dbname: role === 'bucardo' ? 'bucardo' : reader.requiredString(raw, 'dbname', where),
    databaseOwner,
    schemaOwner: reader.string(raw, 'schema_owner', where, databaseOwner),
    ...(passwordEnv ? { passwordEnv } : {}),
    ...(passfile ? { passfile } : {}),
    sslmode,
    ...(sslrootcert ? { sslrootcert } : {}),
    ...(service ? { service } : {}),
    installUser: role === 'bucardo' ? reader.string(raw, 'install_user', where, 'postgres') : databaseOwner,
    fallbackDb: role === 'bucardo' ? reader.string(raw, 'fallback_db', where, 'postgres') : 'postgres',
    cascade: role === 'bucardo' ? false : reader.boolean(raw, 'cascade', where, false),
  };
}

/**
 * A pg_service.conf service as config keys. The metadata role has no dbname of its own: there the
 * service's dbname and user are the fallback db and the install user (the login that installs Bucardo).
 */
function serviceKeys(reader: ConfigReader, role: DatabaseRole, name: string, where: string): Raw {
  let service;
  try {
    service = findService(name);
  } catch (error) {
    reader.problem(`${where}.service`, (error as Error).message);
    return {};
  }
  if (!service) {
    const keys = `host, port${role === 'bucardo' ? '' : ', dbname'} and database_owner`;
    reader.problem(
      `${where}.service`,
      `service '${name}' is not defined in ${serviceFiles().join(' or ')}. Define it ` +
        `there (a [${name}] section), point PGSERVICEFILE or PGSYSCONFDIR at the file that has it, or give ${keys} instead`,
    );
    return {};
  }
  const s = service.settings;
  const keys: Raw = {};
  const host = s['host'] ?? s['hostaddr'];
  if (host !== undefined) keys['host'] = host;
  for (const key of ['port', 'sslmode', 'sslrootcert', 'passfile'] as const) {
    if (s[key] !== undefined) keys[key] = s[key];
  }
  if (s['dbname'] !== undefined) keys[role === 'bucardo' ? 'fallback_db' : 'dbname'] = s['dbname'];
  if (s['user'] !== undefined) keys[role === 'bucardo' ? 'install_user' : 'database_owner'] = s['user'];
  return keys;
}

export function readReplicationObjects(
  reader: ConfigReader,
  value: unknown,
  where: string,
): ReplicationObjects {
  const raw = reader.section(value, where, REPLICATION_OBJECT_KEYS);
  return {
    namespaceInclude: reader.stringList(raw, 'namespace_include', where),
    namespaceExclude: reader.stringList(raw, 'namespace_exclude', where),
    tableInclude: reader.stringList(raw, 'table_include', where),
    tableExclude: reader.stringList(raw, 'table_exclude', where),
  };
}

/**
 * A plugin's own `replication_objects` (indexes, mat_views): when given, it replaces the bucardo
 * section's scope for that plugin only; when left out, the plugin follows the bucardo section.
 */
export function readPluginScope(
  reader: ConfigReader,
  section: Raw,
  where: string,
  config: JobConfig,
): ReplicationObjects {
  const value = section['replication_objects'];
  return value !== undefined && value !== null
    ? readReplicationObjects(reader, value, `${where}.replication_objects`)
    : config.bucardo.replicationObjects;
}

function resolvePath(value: string, configFile: string): string {
  if (value.startsWith('~/')) return path.join(homedir(), value.slice(2));
  return path.resolve(path.dirname(configFile), value);
}

export type { Raw };
