// A job's records in Bucardo's metadata database, and the other jobs' beside them. Every record a job
// makes carries its name (names.ts: syncs and relgroups <name>[_N], the dbgroup <name>, databases
// <name>_primary and <name>_secondary, the way back's <name>_back), so jobs sharing a metadata
// database never share one by accident. A metadata database may still hold records that are tied to
// another job's: a job installed before the names carried the job's (every job's databases were
// primary_db and secondary_db, and `bucardo add sync ... dbs=` reuses any dbgroup with the same
// databases, docs/how-bucardo-behaves.md §20), a job with the same replication name on other
// databases, or records made by hand. This module reads them all once per command and
//  - adopts the names the job's recorded syncs and relgroups use (adoptRecordedNames), so a job
//    installed with the old names keeps working;
//  - groups the records of other jobs (otherJobs), for bucardo.install to list;
//  - finds the records a command would change although another job uses them (sharedRecords), and
//    refuses that change (refuseSharedRecords);
//  - creates the job's dbgroup explicitly (ensureDbgroup), so `add sync` never picks another one.
import type { Activity } from '../activity.js';
import type { DatabaseConfig } from '../../config/types.js';
import { DatabaseContext } from '../context.js';
import { withTransaction, type Client } from '../db.js';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';
import { metadataDatabaseExists, withMetadata } from './metadata.js';
import { databaseRecordNames, isJobSyncName, LEGACY_DATABASE_NAMES } from './names.js';
import { followSyncName } from './follow.js';
import { reverseJob, reverseSyncName } from './reverse.js';
import { jobSyncs, syncNames } from './syncs.js';

export interface DatabaseRecord {
  name: string;
  host: string;
  port: string;
  dbname: string;
}

export interface DbgroupRecord {
  name: string;
  members: { db: string; role: string }[];
}

export interface SyncRecord {
  name: string;
  relgroup: string | null;
  dbgroup: string | null;
}

export interface RelgroupRecord {
  name: string;
  /** The database records its tables and sequences are recorded on (Bucardo allows one). */
  databases: string[];
}

/** Every database, dbgroup, sync and relgroup recorded in a metadata database. */
export interface MetadataRecords {
  databases: DatabaseRecord[];
  dbgroups: DbgroupRecord[];
  syncs: SyncRecord[];
  relgroups: RelgroupRecord[];
}

export async function readRecords(client: Client): Promise<MetadataRecords> {
  const databases = await client.query<DatabaseRecord>(
    `SELECT name, coalesce(dbhost, '') AS host, coalesce(dbport, '')::text AS port, coalesce(dbname, '') AS dbname
       FROM bucardo.db ORDER BY name`,
  );
  const dbgroups = await client.query<DbgroupRecord>(
    `SELECT g.name, coalesce(json_agg(json_build_object('db', m.db, 'role', m.role) ORDER BY m.db)
                              FILTER (WHERE m.db IS NOT NULL), '[]') AS members
       FROM bucardo.dbgroup g LEFT JOIN bucardo.dbmap m ON m.dbgroup = g.name GROUP BY g.name ORDER BY 1`,
  );
  const syncs = await client.query<SyncRecord>(
    'SELECT name, herd AS relgroup, dbs AS dbgroup FROM bucardo.sync ORDER BY name',
  );
  const relgroups = await client.query<RelgroupRecord>(
    `SELECT h.name, coalesce(array_agg(DISTINCT g.db) FILTER (WHERE g.db IS NOT NULL), '{}') AS databases
       FROM bucardo.herd h LEFT JOIN bucardo.herdmap m ON m.herd = h.name
       LEFT JOIN bucardo.goat g ON g.id = m.goat GROUP BY h.name ORDER BY 1`,
  );
  return {
    databases: databases.rows,
    dbgroups: dbgroups.rows,
    syncs: syncs.rows,
    relgroups: relgroups.rows,
  };
}

/** The names a job's records carry, as found in the metadata database (undefined: not recorded). */
export interface RecordedNames {
  databases?: { primary: string; secondary: string };
  dbgroup?: string;
  wayBackDbgroup?: string;
}

/**
 * Which names this job's records carry: the dbgroup of its recorded syncs and the databases in it
 * (source: the primary, target: the secondary); before any sync, the database its relgroups' tables
 * are recorded on, when that is the old primary_db; and the dbgroup of its recorded way back.
 */
export function recordedNames(records: MetadataRecords, job: Job): RecordedNames {
  const names: RecordedNames = {};
  const own = syncNames(job);
  const sync = records.syncs.find((s) => own.includes(s.name) && s.dbgroup);
  if (sync) {
    names.dbgroup = sync.dbgroup!;
    const members = records.dbgroups.find((g) => g.name === sync.dbgroup)?.members ?? [];
    const source = members.filter((m) => m.role === 'source');
    const target = members.filter((m) => m.role === 'target');
    if (source.length === 1 && target.length === 1)
      names.databases = { primary: source[0]!.db, secondary: target[0]!.db };
  } else {
    const relgroups = new Set(jobSyncs(job).map((s) => s.relgroup));
    const onDatabases = new Set(
      records.relgroups.filter((r) => relgroups.has(r.name)).flatMap((r) => r.databases),
    );
    if (onDatabases.size === 1 && onDatabases.has(LEGACY_DATABASE_NAMES.primary))
      names.databases = { ...LEGACY_DATABASE_NAMES };
  }
  const wayBack = records.syncs.find((s) => s.name === reverseSyncName(job) && s.dbgroup);
  if (wayBack) names.wayBackDbgroup = wayBack.dbgroup!;
  return names;
}

/** Sets the job's record names to what the records say, or to the names after the job. */
export function applyRecordedNames(job: Job, names: RecordedNames): void {
  // A fan-out job's records were never named otherwise: each view keeps its own target's name.
  job.bucardoDbName = job.config.fanOut
    ? { primary: databaseRecordNames(job.name).primary, secondary: job.bucardoDbName.secondary }
    : (names.databases ?? databaseRecordNames(job.name));
  job.dbgroupName = names.dbgroup ?? job.name;
  if (names.wayBackDbgroup) job.recordedWayBackDbgroup = names.wayBackDbgroup;
  else delete job.recordedWayBackDbgroup;
}

/**
 * Reads every record of the metadata database and sets the job's record names from them; undefined
 * when there is no metadata database (the names are then the job's own). For commands that change
 * records: they check the records with refuseSharedRecords first, and a failure to read stops them.
 */
export async function readJobRecords(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<MetadataRecords | undefined> {
  const job = source instanceof DatabaseContext ? source.job : source;
  if (!(await metadataDatabaseExists(source, activity))) {
    applyRecordedNames(job, {});
    return undefined;
  }
  const records = await withMetadata(source, readRecords, activity);
  applyRecordedNames(job, recordedNames(records, job));
  return records;
}

/**
 * readJobRecords for commands that only read what the job's names point at (its backlog, its hold,
 * its kicker): run first by every one of them. When the metadata database cannot be read the names
 * stay as they were, and the command meets the same problem itself where it matters.
 */
export async function adoptRecordedNames(source: Job | DatabaseContext, activity?: Activity): Promise<void> {
  await readJobRecords(source, activity).catch(() => undefined);
}

/**
 * Whether a record of each kind is this job's: its databases and dbgroups by name (the way back's
 * included); its syncs and relgroups by name, and also those of another bucardo.syncs (<name>_N) when
 * their tables are recorded on this job's primary (a job named <name>_2 is another job).
 */
function ownership(job: Job, records: MetadataRecords) {
  const reverse = reverseJob(job);
  const targets = new Set(targetRecordNames(job));
  const database = (name: string) => name === job.bucardoDbName.primary || targets.has(name);
  const follow = followSyncName(job);
  const named = new Set([
    ...jobSyncs(job).flatMap((s) => [s.name, s.relgroup]),
    reverse.syncName,
    reverse.relgroupName,
    follow,
  ]);
  const strays = new Set(
    records.relgroups
      .filter(
        (r) =>
          isJobSyncName(r.name, job.relgroupName) && r.databases.length > 0 && r.databases.every(database),
      )
      .map((r) => r.name),
  );
  const relgroup = (name: string) => named.has(name) || strays.has(name);
  const straySyncs = new Set(
    records.syncs
      .filter((s) => isJobSyncName(s.name, job.syncName) && s.relgroup && strays.has(s.relgroup))
      .map((s) => s.name),
  );
  return {
    sync: (name: string) => named.has(name) || straySyncs.has(name),
    relgroup,
    dbgroup: (name: string) => name === job.dbgroupName || name === reverse.dbgroupName || name === follow,
    database,
  };
}

type Kind = 'sync' | 'relgroup' | 'dbgroup' | 'database';
const key = (kind: Kind, name: string) => `${kind}:${name}`;

/** The links between records: a sync to its relgroup and dbgroup, a dbgroup and a relgroup to their databases. */
function links(records: MetadataRecords): [string, string][] {
  const pairs: [string, string][] = [];
  for (const s of records.syncs) {
    if (s.relgroup) pairs.push([key('sync', s.name), key('relgroup', s.relgroup)]);
    if (s.dbgroup) pairs.push([key('sync', s.name), key('dbgroup', s.dbgroup)]);
  }
  for (const g of records.dbgroups)
    for (const m of g.members) pairs.push([key('dbgroup', g.name), key('database', m.db)]);
  for (const r of records.relgroups)
    for (const db of r.databases) pairs.push([key('relgroup', r.name), key('database', db)]);
  return pairs;
}

function allKeys(records: MetadataRecords): string[] {
  return [
    ...records.syncs.map((s) => key('sync', s.name)),
    ...records.relgroups.map((r) => key('relgroup', r.name)),
    ...records.dbgroups.map((g) => key('dbgroup', g.name)),
    ...records.databases.map((d) => key('database', d.name)),
  ];
}

function isOwn(job: Job, records: MetadataRecords): (recordKey: string) => boolean {
  const own = ownership(job, records);
  return (recordKey) => {
    const [kind, name] = splitKey(recordKey);
    return own[kind](name);
  };
}

function splitKey(recordKey: string): [Kind, string] {
  const at = recordKey.indexOf(':');
  return [recordKey.slice(0, at) as Kind, recordKey.slice(at + 1)];
}

/** Another job in the metadata database, as its records show it. */
export interface OtherJob {
  /** Its replication name as its records carry it (the syncs' names for a job installed with the old names). */
  name: string;
  syncs: string[];
  relgroups: string[];
  dbgroups: string[];
  databases: { name: string; where: string }[];
}

export function describeWhere(db: { host: string; port: string | number; dbname: string }): string {
  return `${db.host}:${db.port}/${db.dbname}`;
}

/**
 * The records that are not this job's, grouped into jobs: records linked to each other (a sync, its
 * relgroup and dbgroup, their databases) are one job. Links through this job's records do not join two
 * others, so two jobs tied to this one stay apart.
 */
export function otherJobs(records: MetadataRecords, job: Job): OtherJob[] {
  const own = isOwn(job, records);
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root) !== root) root = parent.get(root)!;
    parent.set(k, root);
    return root;
  };
  for (const k of allKeys(records)) if (!own(k)) parent.set(k, k);
  for (const [a, b] of links(records)) if (parent.has(a) && parent.has(b)) parent.set(find(a), find(b));
  const groups = new Map<string, string[]>();
  for (const k of parent.keys()) groups.set(find(k), [...(groups.get(find(k)) ?? []), k]);
  const where = new Map(records.databases.map((d) => [d.name, describeWhere(d)]));
  return (
    [...groups.values()]
      .map((members) => {
        const of = (kind: Kind) =>
          members
            .map(splitKey)
            .filter(([k]) => k === kind)
            .map(([, name]) => name)
            .sort();
        const databases = of('database');
        const other = { syncs: of('sync'), relgroups: of('relgroup'), dbgroups: of('dbgroup') };
        return {
          name: jobName(databases, other),
          ...other,
          databases: databases.map((name) => ({ name, where: where.get(name) ?? '?' })),
        };
      })
      // A dbgroup left empty by an earlier removal is nobody's job.
      .filter((o) => o.syncs.length + o.relgroups.length + o.databases.length > 0)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  );
}

/**
 * A job's name from its records: <name>_primary/<name>_secondary give it; for a job installed with the
 * old names, its syncs' (or relgroups') names without the ones that extend another (x_back beside x).
 */
function jobName(
  databases: string[],
  other: { syncs: string[]; relgroups: string[]; dbgroups: string[] },
): string {
  const fromDatabases = [
    ...new Set(
      databases.map((d) => /^(.+)_(?:primary|secondary)$/.exec(d)?.[1]).filter((n) => n !== undefined),
    ),
  ];
  if (fromDatabases.length) return fromDatabases.join(', ');
  const names = [other.syncs, other.relgroups, other.dbgroups, databases].find((list) => list.length) ?? [];
  return names.filter((n) => !names.some((m) => n !== m && n.startsWith(`${m}_`))).join(', ');
}

/** A record this job would change although another job uses it. */
export interface SharedRecord {
  /** "database sm_primary", "relgroup sm_1" */
  record: string;
  /** Why it is not only this job's, in words for the operator. */
  reason: string;
  /** The other job, as its records name it. */
  job: string;
  /**
   * Whether it is this job's own record that another job uses too: removing this job may keep it for
   * the other (bucardo.uninstall). Otherwise the record itself belongs to the other job.
   */
  keepable: boolean;
}

function recordsOf(job: OtherJob, kind: Kind): string[] {
  if (kind === 'database') return job.databases.map((d) => d.name);
  return kind === 'sync' ? job.syncs : kind === 'relgroup' ? job.relgroups : job.dbgroups;
}

const describeRecord = (recordKey: string) => splitKey(recordKey).join(' ');

/**
 * The records named after this job that another job uses (or that belong to another job outright):
 *  - one of its databases pointing at another database than the config's, while a relgroup or dbgroup
 *    uses it: a job with the same replication name replicates that database;
 *  - one of its records used by another job's (a dbgroup or relgroup on its database, a sync on its
 *    relgroup or dbgroup): shared, as jobs installed with the old names share primary_db;
 *  - one of its records that uses another job's record (a sync on another's relgroup or dbgroup, a
 *    relgroup or dbgroup on another's database): the record is that job's.
 */
export function sharedRecords(records: MetadataRecords, job: Job): SharedRecord[] {
  const own = isOwn(job, records);
  const others = otherJobs(records, job);
  const otherOf = (recordKey: string): string => {
    const [kind, name] = splitKey(recordKey);
    const found = others.find((o) => recordsOf(o, kind).includes(name));
    return found?.name ?? name;
  };
  const shared: SharedRecord[] = [];
  const users = new Map<string, string[]>();
  for (const [from, to] of links(records)) users.set(to, [...(users.get(to) ?? []), from]);

  const configFor: Record<string, DatabaseConfig> = {
    [job.bucardoDbName.primary]: job.config.databases.primary,
    ...Object.fromEntries(targetRecords(job).map((t) => [t.recordName, t.database])),
  };
  // The job that recorded this job's names for other databases, named by the pair it replicates.
  const recordedAt = (name: string) => {
    const db = records.databases.find((d) => d.name === name);
    return db ? describeWhere(db) : '?';
  };
  const sameNamedJob = `${job.name} (${recordedAt(job.bucardoDbName.primary)} → ${recordedAt(job.bucardoDbName.secondary)})`;
  for (const db of records.databases) {
    const wanted = configFor[db.name];
    const using = users.get(key('database', db.name)) ?? [];
    if (!wanted || using.length === 0 || sameDatabase(db, wanted)) continue;
    const role = db.name === job.bucardoDbName.primary ? 'primary' : 'target';
    shared.push({
      record: `database ${db.name}`,
      reason: `it points at ${describeWhere(db)}, not at this config's ${role} ${describeWhere(wanted)}, and ${using.map(describeRecord).join(', ')} use${using.length === 1 ? 's' : ''} it`,
      job: sameNamedJob,
      keepable: false,
    });
  }
  for (const [from, to] of links(records)) {
    if (own(from) === own(to)) continue;
    if (own(to)) {
      shared.push({
        record: describeRecord(to),
        reason: `${describeRecord(from)} of job ${otherOf(from)} uses it too`,
        job: otherOf(from),
        keepable: true,
      });
    } else {
      shared.push({
        record: describeRecord(from),
        reason: `it uses ${describeRecord(to)}, which belongs to job ${otherOf(to)}`,
        job: otherOf(to),
        keepable: false,
      });
    }
  }
  return shared;
}

function sameDatabase(recorded: DatabaseRecord, wanted: DatabaseConfig): boolean {
  return (
    recorded.host.toLowerCase() === wanted.host.toLowerCase() &&
    recorded.port === String(wanted.port) &&
    recorded.dbname === wanted.dbname
  );
}

/**
 * Refuses `command` when it would change records another job uses (`keepable` ones only when
 * `includeKeepable`: bucardo.uninstall keeps those for the other job instead). One paragraph naming
 * each record, the other job and the fix.
 */
export function refuseSharedRecords(
  job: Job,
  records: MetadataRecords,
  command: string,
  { includeKeepable = true }: { includeKeepable?: boolean } = {},
): void {
  const shared = sharedRecords(records, job).filter((s) => includeKeepable || !s.keepable);
  if (shared.length === 0) return;
  const listed = shared.map((s) => `${s.record} (${s.reason})`);
  const jobs = [...new Set(shared.map((s) => s.job))];
  const sameName = shared.some((s) => !s.keepable && s.record.startsWith('database '));
  const fix = sameName
    ? `Another job already uses the replication name ${job.name} in this metadata database: give this job another bucardo.replication_name, or its own metadata database (the concurrency plugin). If it is this job and its database moved, uninstall it with the config it was installed with first.`
    : `Its records are tied to those of ${jobs.length === 1 ? 'that job' : 'those jobs'} (jobs installed before the records carried the job's name share primary_db and secondary_db): give this job another bucardo.replication_name or its own metadata database (the concurrency plugin), or uninstall the other job first.`;
  throw new OperatorError(
    `${command} would change Bucardo records in the metadata database ${job.metadataDb} that another job uses (job ${jobs.join(', job ')}): ${listed.join('; ')}. Nothing was changed. ${fix}`,
  );
}

/**
 * Creates the job's dbgroup with its two databases (source, target) unless it is there, before any
 * sync is added: `bucardo add sync ... dbs=` would reuse any dbgroup with the same databases and roles
 * and name it after the sync only otherwise (docs/how-bucardo-behaves.md §20), so a job's sync might
 * replicate to a dbgroup made for another job. Returns what it did, if anything. The way back gets
 * its own (reverseJob).
 *
 * By SQL, the two INSERTs `bucardo add dbgroup` makes (a bucardo.dbgroup row, a bucardo.dbmap row per
 * database, under the schema's own constraints): the CLI's Perl start and session cost ~0.25 s of CPU
 * for them, and nothing loads a dbgroup before a sync names it.
 */
export async function ensureDbgroup(
  job: Job,
  activity?: Activity,
  /** The command's sessions, when they are this job's: the dbgroup is read on its metadata session. */
  db?: DatabaseContext,
): Promise<string | undefined> {
  const name = job.dbgroupName;
  const wanted = [
    { db: job.bucardoDbName.primary, role: 'source' },
    ...targetRecordNames(job).map((db) => ({ db, role: 'target' })),
  ];
  // One session for the read and the write: the command's metadata session when given, else its own.
  return withMetadata(
    db?.job === job ? db : job,
    async (client) => {
      const { rows } = await client.query<{ db: string | null; role: string | null }>(
        'SELECT m.db, m.role FROM bucardo.dbgroup g LEFT JOIN bucardo.dbmap m ON m.dbgroup = g.name WHERE g.name = $1',
        [name],
      );
      const members = rows.length ? rows.filter((r) => r.db !== null) : undefined;
      const missing = wanted.filter((w) => !members?.some((m) => m.db === w.db && m.role === w.role));
      const unexpected = (members ?? []).filter(
        (m) => !wanted.some((w) => w.db === m.db && w.role === m.role),
      );
      if (unexpected.length)
        throw new OperatorError(
          `The dbgroup ${name} in the metadata database ${job.metadataDb} holds ${unexpected.map((m) => `${m.db} as ${m.role}`).join(', ')}, but ${job.name} needs it to hold exactly ${wanted.map((w) => `${w.db} as ${w.role}`).join(' and ')}: a sync on it would replicate between other databases. Nothing was created. If it is a leftover no sync uses, remove it (bucardo remove dbgroup ${name}) and run the command again.`,
        );
      if (missing.length === 0) return undefined;
      await insertDbgroupMembers(client, job, missing);
      return members
        ? `completed dbgroup ${name} with ${missing.map((m) => m.db).join(', ')}`
        : `created dbgroup ${name} (${wanted.map((w) => `${w.db} as ${w.role}`).join(', ')})`;
    },
    activity,
  );
}

/**
 * The group's row when missing and a dbmap row per member, in one statement (a shared session runs
 * single statements): the dbmap rows' foreign key is checked at its end, after the group's row is in.
 */
async function insertDbgroupMembers(
  client: Client,
  job: Job,
  members: { db: string; role: string }[],
): Promise<void> {
  const name = job.dbgroupName;
  await client
    .query(
      `WITH made AS (INSERT INTO bucardo.dbgroup (name) SELECT $1 WHERE NOT EXISTS
                       (SELECT 1 FROM bucardo.dbgroup WHERE name = $1))
       INSERT INTO bucardo.dbmap (db, dbgroup, role) SELECT db, $1, role FROM unnest($2::text[], $3::text[]) AS m (db, role)`,
      [name, members.map((m) => m.db), members.map((m) => m.role)],
    )
    .catch((error: { code?: string; message?: string }) => {
      // What the CLI said in its words: a member not recorded, a name the schema refuses.
      if (error.code === '23503' || error.code === '23514')
        throw new OperatorError(
          `Bucardo's metadata database ${job.metadataDb} refused the dbgroup ${name} of ${members.map((m) => m.db).join(', ')} (${error.message}): ${error.code === '23503' ? 'a database of it is not recorded. Run bucardo.install first' : 'dbgroup names must match ^[a-zA-Z]\\w*$; set bucardo.replication_name accordingly'}, then run the command again.`,
        );
      throw error;
    });
}

/**
 * The job's targets with the names their records carry: a job with one target may carry the old
 * secondary_db (applyRecordedNames), a fan-out job's are always <job>_<target>.
 */
export function targetRecords(job: Job): { name: string; recordName: string; database: DatabaseConfig }[] {
  if (!job.config.fanOut)
    return [
      { name: job.target, recordName: job.bucardoDbName.secondary, database: job.config.databases.secondary },
    ];
  return job.targets;
}

export function targetRecordNames(job: Job): string[] {
  return targetRecords(job).map((t) => t.recordName);
}

/** The job's own syncs, its way back's included: the rest of bucardo.sync belongs to other jobs. */
export function ownSyncNames(job: Job): string[] {
  return [...syncNames(job), reverseSyncName(job), followSyncName(job)];
}

/** What bucardo.uninstall removes of this job in a metadata database other jobs keep using. */
export interface RemovalPlan {
  syncs: string[];
  relgroups: string[];
  dbgroups: string[];
  databases: string[];
  /** This job's records another job uses too: left for it. */
  kept: { record: string; job: string }[];
}

/**
 * This job's records, without those another job still uses: a dbgroup another job's sync replicates
 * to, and a database another job's dbgroup or relgroup holds (or that sits in a dbgroup kept for it:
 * removing it would take it out of that dbgroup).
 */
export function removalPlan(records: MetadataRecords, job: Job): RemovalPlan {
  const own = ownership(job, records);
  const kept = new Map<string, string>();
  for (const shared of sharedRecords(records, job).filter((s) => s.keepable))
    if (!kept.has(shared.record)) kept.set(shared.record, shared.job);
  for (const g of records.dbgroups) {
    const keptFor = kept.get(`dbgroup ${g.name}`);
    if (keptFor === undefined) continue;
    for (const m of g.members)
      if (own.database(m.db) && !kept.has(`database ${m.db}`)) kept.set(`database ${m.db}`, keptFor);
  }
  const mine = (kind: Kind, names: string[]) =>
    names.filter((name) => own[kind](name) && !kept.has(`${kind} ${name}`));
  return {
    syncs: mine(
      'sync',
      records.syncs.map((s) => s.name),
    ),
    relgroups: mine(
      'relgroup',
      records.relgroups.map((r) => r.name),
    ),
    dbgroups: mine(
      'dbgroup',
      records.dbgroups.map((g) => g.name),
    ),
    databases: mine(
      'database',
      records.databases.map((d) => d.name),
    ),
    kept: [...kept].map(([record, job]) => ({ record, job })),
  };
}

/**
 * Removes the records of a plan (its syncs already removed with `bucardo remove sync`) in one
 * transaction: the tables and sequences recorded only in this job's relgroups, the relgroups, the
 * dbgroups, and the databases with what is still recorded on them.
 */
export async function removeRecords(client: Client, plan: RemovalPlan): Promise<void> {
  await withTransaction(client, async () => {
    await client.query(
      `DELETE FROM bucardo.goat g
        WHERE g.id IN (SELECT goat FROM bucardo.herdmap WHERE herd = ANY($1))
          AND NOT EXISTS (SELECT 1 FROM bucardo.herdmap h WHERE h.goat = g.id AND NOT h.herd = ANY($1))`,
      [plan.relgroups],
    );
    await client.query('DELETE FROM bucardo.herd WHERE name = ANY($1)', [plan.relgroups]);
    await client.query('DELETE FROM bucardo.dbgroup WHERE name = ANY($1)', [plan.dbgroups]);
    await client.query('DELETE FROM bucardo.goat WHERE db = ANY($1)', [plan.databases]);
    await client.query('DELETE FROM bucardo.db WHERE name = ANY($1)', [plan.databases]);
  });
}
