// bucardo.install: preflight, the metadata database (created once, or shared with other jobs), the
// job's paths in Bucardo's settings, the databases and the tables and sequences in scope recorded.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runBucardo, runPsqlFile } from '../../src/core/bucardo/run.js';
import { resolvePassword } from '../../src/core/credentials.js';
import { conninfoValue, rootCertificate, type Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import { targetViews, type Job } from '../../src/core/job.js';
import { bucardoRelationName } from '../../src/core/quote.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import type { Relation } from '../../src/core/objects.js';
import {
  metadataDatabaseExists,
  recordedDatabases,
  recordedPidDir,
  relgroupMembers,
} from '../../src/core/bucardo/metadata.js';
import {
  otherJobs,
  readJobRecords,
  refuseSharedRecords,
  targetRecordNames,
  type OtherJob,
} from '../../src/core/bucardo/records.js';
import { preflight, type Finding } from './preflight.js';
import { ensureDirectory, jobPathSettings, storeSettingsVerbatim } from './bucardo-config.js';
import { describeScope, type ScopeReport } from './scope.js';
import { jobSyncs, planSyncs, strayRelgroups, syncCount } from '../../src/core/bucardo/syncs.js';

export interface InstallData {
  /** What the filters select, shown before anything else (absent when the primary cannot be read). */
  scope?: ScopeReport;
  findings: Finding[];
  steps: string[];
  /** The other jobs whose records the metadata database holds (absent when there are none). */
  otherJobs?: OtherJob[];
}

/** Names per `bucardo add table` call: one Perl start per batch instead of per table. */
const ADD_BATCH = 250;
const BUCARDO_SCHEMA_FILE = '/usr/share/bucardo/bucardo.schema';

export async function install(ctx: CommandContext): Promise<CommandOutcome<InstallData>> {
  const { job, activity, progress } = ctx;
  progress('reading what bucardo.replication_objects selects on the primary');
  // An unreachable primary is one of preflight's findings, with its fix: the summary is then left out.
  const scope = await describeScope(ctx.db).catch(() => undefined);
  const report = await preflight(ctx);
  const data: InstallData = { ...(scope ? { scope } : {}), findings: report.findings, steps: [] };
  if (!report.passed || !report.scope) {
    return {
      ok: false,
      data,
      message:
        'Preflight found problems (listed above with their fixes); nothing was changed. Fix them and run bucardo.install again.',
    };
  }
  const { pidDir, logDir } = job.paths;
  progress(`reading the records of the metadata database ${job.metadataDb}`);
  // Which names this job's records carry, and whether another job uses any of them: before anything changes.
  const records = await readJobRecords(ctx.db, activity);
  if (records) {
    refuseSharedRecords(job, records, 'bucardo.install');
    const others = otherJobs(records, job);
    await refuseOtherPidDir(ctx, others);
    data.steps.push(`metadata database "${job.metadataDb}" already exists`);
    if (others.length) {
      data.otherJobs = others;
      data.steps.push(
        `it also holds ${others.length} other job(s), left as they are: ${others.map((o) => o.name).join(', ')}`,
      );
    }
  }
  ensureDirectory(pidDir, 'pid directory');
  ensureDirectory(logDir, 'log directory');

  if (!records) {
    progress(`creating the metadata database ${job.metadataDb}`);
    await createMetadataDatabase(job, ctx);
    data.steps.push(
      `created metadata database "${job.metadataDb}" on ${job.config.databases.bucardo.host}:${job.config.databases.bucardo.port}`,
    );
  }

  progress("pointing Bucardo's pid dir and log files at this job");
  await storeJobPaths(job, ctx);
  data.steps.push(`pid dir ${pidDir}, logs in ${logDir}`);

  progress('recording the databases');
  data.steps.push(...(await recordDatabases(job, ctx)));

  progress('recording tables and sequences');
  data.steps.push(...(await recordRelations(job, ctx, report.scope.tables, 'table')));
  data.steps.push(...(await recordRelations(job, ctx, report.scope.sequences, 'sequence')));
  return {
    data,
    message: `Installed Bucardo metadata for ${job.name}: ${report.scope.tables.length} table(s) and ${report.scope.sequences.length} sequence(s) recorded in relgroup${syncCount(job) > 1 ? 's' : ''} ${jobSyncs(
      job,
    )
      .map((s) => s.relgroup)
      .join(', ')}.`,
  };
}

/**
 * One daemon serves every sync of a metadata database, from the pid dir its settings record (which
 * bucardo.install sets): pointing that at this job's pid dir would lose the other jobs' running
 * daemon. bucardo.start refuses the same.
 */
async function refuseOtherPidDir(ctx: CommandContext, others: OtherJob[]) {
  const { job } = ctx;
  const syncs = others.flatMap((o) => o.syncs);
  if (syncs.length === 0) return;
  const recorded = await recordedPidDir(await ctx.db.metadata());
  if (recorded === undefined || recorded === job.paths.pidDir) return;
  throw new OperatorError(
    `The metadata database ${job.metadataDb} also holds other jobs' syncs (${syncs.join(', ')}), and its daemon keeps its pid files in ${recorded}, not in this config's bucardo.pid_dir ${job.paths.pidDir}. One daemon serves every sync of a metadata database, so bucardo.install changed nothing rather than point it elsewhere. Set bucardo.pid_dir to ${recorded} in this config, or give each job its own metadata database with the concurrency plugin.`,
  );
}

async function storeJobPaths(job: Job, ctx: CommandContext): Promise<void> {
  await storeSettingsVerbatim(job, jobPathSettings(job), ctx.activity);
}

async function createMetadataDatabase(job: Job, ctx: CommandContext): Promise<void> {
  const bucardo = job.config.databases.bucardo;
  if (job.metadataDb === 'bucardo') {
    // Bucardo's own installer: it creates the bucardo role and database, and appends the role's
    // generated password to $HOME/.pgpass, which is the job's private state dir (never ~root).
    await runBucardo(job, ['install', '--batch', '--piddir', job.paths.pidDir], {
      activity: ctx.activity,
      safeToStop: false,
      connection: { dbname: bucardo.fallbackDb, dbuser: bucardo.installUser },
    });
    return;
  }
  // Bucardo's installer hard-codes the database name (docs/how-bucardo-behaves.md §7), so a custom name is
  // installed from the packaged schema with that name substituted, applied with psql by the tool.
  const schema = customSchema(job);
  const file = path.join(job.paths.stateDir, `bucardo.${job.metadataDb}.schema`);
  mkdirSync(job.paths.stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, schema, { mode: 0o600 });
  const result = await runPsqlFile(job, file, {
    connection: { dbname: bucardo.fallbackDb, dbuser: bucardo.installUser },
    activity: ctx.activity,
  });
  const { output } = result;
  if (!output.includes('Pl/PerlU was successfully installed')) {
    throw new OperatorError(
      `Installing the metadata database "${job.metadataDb}" with psql failed (exit code ${result.exitCode}): ${
        output
          .split('\n')
          .filter((l) => /ERROR|FATAL|psql:/.test(l))
          .slice(0, 3)
          .join(' ') || output.slice(0, 300)
      }. Check that plperl is installed on the metadata host and that databases.bucardo.install_user is a superuser.`,
    );
  }
}

export function customSchema(job: Job): string {
  // A job running a forked Bucardo (fork_bucardo) installs its schema from the fork's copy.
  const schemaFile = job.bucardoFork?.files[BUCARDO_SCHEMA_FILE] ?? BUCARDO_SCHEMA_FILE;
  if (!existsSync(schemaFile)) {
    throw new OperatorError(`${schemaFile} is missing: install Debian's bucardo package (scripts/setup.sh).`);
  }
  const name = job.metadataDb;
  // The schema file uses the name unquoted, so PostgreSQL would fold capitals: allow lower case only.
  if (!/^[a-z_][a-z0-9_]*$/.test(name))
    throw new OperatorError(
      `The metadata database name '${name}' must be lower-case letters, digits and underscores (Bucardo's schema file uses it unquoted).`,
    );
  return readFileSync(schemaFile, 'utf8')
    .replace(/^CREATE DATABASE bucardo OWNER bucardo;$/m, `CREATE DATABASE ${name} OWNER bucardo;`)
    .replace(/^\\c bucardo$/m, `\\c ${name}`)
    .replace(/^ALTER DATABASE bucardo SET/m, `ALTER DATABASE ${name} SET`)
    .replace(/^piddir\|\/var\/run\/bucardo\|/m, `piddir|${job.paths.pidDir}|`);
}

/**
 * The dbconn Bucardo appends to its DSN: sslmode, and on the primary session settings. DBD::Pg turns
 * ';' into spaces outside single quotes and hands the rest to libpq, so a quoted options value may
 * carry several -c settings.
 */
export function dbconnFor(job: Job, role: 'primary' | 'secondary'): string {
  const db = job.config.databases[role];
  const parts: string[] = [];
  // Bucardo's processes get the metadata database's sslmode through PGSSLMODE, which libpq applies to
  // every connection without its own: name this database's mode whenever the two could differ.
  if (db.sslmode !== 'prefer' || job.config.databases.bucardo.sslmode !== 'prefer')
    parts.push(`sslmode=${db.sslmode}`);
  // The same CA file the tool verifies with; validate_sync reads it inside the metadata server, so
  // that server's operating-system user must be able to read it too (docs/credentials-and-ssl.md).
  const rootCert = db.sslmode === 'disable' ? undefined : (rootCertificate(db) ?? db.sslrootcert);
  if (rootCert) parts.push(`sslrootcert=${conninfoValue(rootCert)}`);
  if (role === 'primary') {
    // validate_sync creates triggers with a plain $dbh->do: without a lock_timeout it would wait on a lock forever.
    const settings = [`-clock_timeout=${job.config.bucardo.lockTimeoutMs}`];
    // Bucardo finds changes with `SELECT DISTINCT pk FROM delta WHERE NOT EXISTS (track)`. Planned as a
    // nested loop (stale statistics, LIMIT 1) the anti join is O(delta x track) (docs/how-bucardo-behaves.md §13);
    // once the DISTINCT's hash aggregate spills past work_mem, PostgreSQL 15 was seen resetting its hash
    // table for minutes at 100% CPU on 400k pending keys (a sort takes a second). Either stalls the worker
    // while changes pile up. Only Bucardo's own sessions get these settings.
    if (job.config.bucardo.robustPlans) settings.push('-cenable_nestloop=off', '-cenable_hashagg=off');
    // Bucardo copies rows as COPY text. Before PostgreSQL 12 the default extra_float_digits (0) prints
    // floats with 15 digits, so an old primary would hand the secondary rounded values; 3 prints every
    // bit on every version. ISO dates and postgres-style intervals read back the same whatever the
    // secondary's DateStyle or IntervalStyle (docs/major-version-upgrade.md).
    settings.push('-cextra_float_digits=3', '-cDateStyle=ISO', '-cIntervalStyle=postgres');
    parts.push(settings.length === 1 ? `options=${settings[0]}` : `options='${settings.join(' ')}'`);
  }
  return parts.join(';');
}

/** By SQL: the bucardo CLI's argument parser splits values at spaces, even quoted ones. */
async function storeDbconn(name: string, conn: string, ctx: CommandContext): Promise<void> {
  const metadata = await ctx.db.metadata();
  await metadata.query('UPDATE bucardo.db SET dbconn = $1 WHERE name = $2', [conn, name]);
}

async function recordDatabases(job: Job, ctx: CommandContext): Promise<string[]> {
  const steps: string[] = [];
  const metadata = await ctx.db.metadata();
  const recorded = await recordedDatabases(metadata);
  // The primary, then every target (one, or each of databases.secondaries).
  const records = [
    { role: 'primary' as const, of: job },
    ...targetViews(job).map((view) => ({ role: 'secondary' as const, of: view })),
  ];
  for (const { role, of } of records) {
    const db = of.config.databases[role];
    const name = of.bucardoDbName[role];
    const wanted = {
      dbname: db.dbname,
      host: db.host,
      port: String(db.port),
      user: db.databaseOwner,
      conn: dbconnFor(of, role),
    };
    const existing = recorded.find((r) => r.name === name);
    if (!existing) {
      // The CLI splits its arguments at spaces, quoted or not: a conn with a quoted options value goes in by SQL.
      const cliConn = wanted.conn.includes(' ') ? '' : wanted.conn;
      await runBucardo(
        job,
        [
          'add',
          'db',
          name,
          `dbname=${wanted.dbname}`,
          `host=${wanted.host}`,
          `port=${wanted.port}`,
          `user=${wanted.user}`,
          ...(cliConn ? [`conn=${cliConn}`] : []),
        ],
        { activity: ctx.activity },
      );
      if (cliConn !== wanted.conn) await storeDbconn(name, wanted.conn, ctx);
      steps.push(
        `recorded ${role === 'primary' || !job.config.fanOut ? role : `target ${of.target}`} as ${name} (${db.host}:${db.port}/${db.dbname})`,
      );
    } else if (
      existing.dbname !== wanted.dbname ||
      existing.dbhost !== wanted.host ||
      existing.dbport !== wanted.port ||
      existing.dbuser !== wanted.user ||
      existing.dbconn !== wanted.conn
    ) {
      await runBucardo(
        job,
        [
          'update',
          'db',
          name,
          `dbname=${wanted.dbname}`,
          `host=${wanted.host}`,
          `port=${wanted.port}`,
          `user=${wanted.user}`,
        ],
        { activity: ctx.activity },
      );
      await storeDbconn(name, wanted.conn, ctx);
      steps.push(`updated ${name} to match the config`);
    } else {
      steps.push(`${name} already recorded`);
    }
    // validate_sync runs inside the metadata server and connects from there: libpq in that server
    // process cannot see our password file, so Bucardo needs the password in its own table. It is
    // sent as a bind parameter: never on a command line, never in a log.
    const password = resolvePassword({ db, user: db.databaseOwner, database: db.dbname });
    if (password !== undefined)
      await metadata.query('UPDATE bucardo.db SET dbpass = $1 WHERE name = $2', [password, name]);
  }
  return steps;
}

async function recordRelations(
  job: Job,
  ctx: CommandContext,
  relations: Relation[],
  kind: 'table' | 'sequence',
): Promise<string[]> {
  if (relations.length === 0) return [];
  const syncs = jobSyncs(job);
  const metadata = await ctx.db.metadata();
  await refuseOtherSyncLayout(metadata, job);
  const members = (await Promise.all(syncs.map((s) => relgroupMembers(metadata, s.relgroup)))).flat();
  const reltype = kind === 'table' ? 'table' : 'sequence';
  const known = new Set(members.filter((m) => m.reltype === reltype).map((m) => `${m.schema}.${m.name}`));
  const missing = relations.filter((r) => !known.has(`${r.schema}.${r.name}`));
  // Sequences all go with the first sync: Bucardo copies a sequence's state with any run of its sync.
  const groups =
    kind === 'table' && syncs.length > 1
      ? await splitTables(job, ctx, relations, missing)
      : [{ relgroup: syncs[0]!.relgroup, relations: missing }];
  for (const group of groups) {
    for (let start = 0; start < group.relations.length; start += ADD_BATCH) {
      ctx.activity.throwIfInterrupted();
      const batch = group.relations.slice(start, start + ADD_BATCH);
      ctx.progress(`recording ${kind}s in relgroup ${group.relgroup}: ${start}/${group.relations.length}`);
      await runBucardo(
        job,
        [
          'add',
          kind,
          ...batch.map((r) => bucardoRelationName(r.schema, r.name)),
          `db=${job.bucardoDbName.primary}`,
          `relgroup=${group.relgroup}`,
        ],
        { activity: ctx.activity },
      );
    }
  }
  if (syncs.length === 1)
    return [
      `${missing.length} ${kind}(s) added to relgroup ${job.relgroupName}, ${relations.length - missing.length} already there`,
    ];
  const added = groups.filter((g) => g.relations.length).map((g) => `${g.relations.length} to ${g.relgroup}`);
  return [
    `${missing.length} ${kind}(s) added (${added.join(', ') || 'none'}), ${relations.length - missing.length} already recorded`,
  ];
}

/** A job installed with another bucardo.syncs: its tables sit in relgroups this config does not use. */
async function refuseOtherSyncLayout(client: Client, job: Job): Promise<void> {
  const stray = await strayRelgroups(client, job);
  if (stray.length === 0) return;
  throw new OperatorError(
    `${job.name} was installed with another bucardo.syncs: its tables are recorded in relgroup(s) ${stray.join(', ')}, which bucardo.syncs: ${syncCount(job)} does not use, so they would be left out of every sync. Nothing was changed. Set bucardo.syncs back to what it was, or move to the new number with bucardo.uninstall, then bucardo.install and bucardo.add_triggers (the initial copy runs again).`,
  );
}

/** The tables not yet recorded, by the relgroup of the sync they go to (balanced; see src/core/bucardo/syncs.ts). */
async function splitTables(
  job: Job,
  ctx: CommandContext,
  inScope: Relation[],
  missing: Relation[],
): Promise<{ relgroup: string; relations: Relation[] }[]> {
  ctx.progress(`balancing ${inScope.length} table(s) over ${syncCount(job)} syncs by size and write rate`);
  const plan = await planSyncs(job, await ctx.db.metadata(), await ctx.db.primary(), inScope);
  if (plan.empty.length)
    throw new OperatorError(
      `bucardo.syncs is ${syncCount(job)}, but the ${inScope.length} table(s) in scope make only ${syncCount(job) - plan.empty.length} group(s) (tables tied by foreign keys share a sync), so sync(s) ${plan.empty.map((s) => s.name).join(', ')} would have no table. Nothing was changed. Lower bucardo.syncs to ${syncCount(job) - plan.empty.length} or fewer.`,
    );
  const byName = new Map(missing.map((r) => [`${r.schema}.${r.name}`, r]));
  return [...plan.additions].map(([sync, tables]) => ({
    relgroup: sync.relgroup,
    relations: tables.map((t) => byName.get(t)).filter((r): r is Relation => r !== undefined),
  }));
}

export async function validateInstall(ctx: CommandContext) {
  const { job } = ctx;
  const exists = await metadataDatabaseExists(ctx.db);
  if (!exists) return [{ name: `metadata database ${job.metadataDb} exists`, pass: false }];
  const metadata = await ctx.db.metadata();
  const databases = await recordedDatabases(metadata);
  const members = (await Promise.all(jobSyncs(job).map((s) => relgroupMembers(metadata, s.relgroup)))).flat();
  const { findReplicationObjects } = await import('../../src/core/objects.js');
  const scope = await findReplicationObjects(await ctx.db.primary(), job.config.bucardo.replicationObjects);
  const recorded = new Set(members.filter((m) => m.reltype === 'table').map((m) => `${m.schema}.${m.name}`));
  const missing = scope.tables
    .filter((t) => !recorded.has(`${t.schema}.${t.name}`))
    .map((t) => `${t.schema}.${t.name}`);
  const names = databases.map((d) => d.name);
  return [
    { name: `metadata database ${job.metadataDb} exists`, pass: true },
    {
      name: job.config.fanOut
        ? `primary and ${job.targets.length} target(s) recorded`
        : 'primary and secondary recorded',
      pass:
        names.includes(job.bucardoDbName.primary) &&
        targetRecordNames(job).every((name) => names.includes(name)),
      detail: names.join(', '),
    },
    {
      name: `every table in scope recorded (${scope.tables.length})`,
      pass: missing.length === 0 && scope.tables.length > 0,
      ...(missing.length ? { detail: `missing: ${missing.join(', ')}` } : {}),
    },
  ];
}
