// Everything bucardo.install checks before it changes anything, as a list of checks (PREFLIGHT_CHECKS)
// run in order: each is a small function returning its findings, and each finding names the problem
// and its fix; install stops when any finding is a blocker. A new check is one more function and one
// more entry in the list.
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { bucardoVersion } from '../../src/core/bucardo/run.js';
import type { DatabaseContext } from '../../src/core/context.js';
import type { Client } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import { targetViews, type Job } from '../../src/core/job.js';
import type { DatabaseConfig } from '../../src/config/types.js';
import {
  displayName,
  findReplicationObjects,
  tableColumns,
  type ReplicationScope,
} from '../../src/core/objects.js';
import type { Activity } from '../../src/core/activity.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { compareServers, OLDEST_PRIMARY, serverFacts } from './server-pair.js';

export interface Finding {
  item: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface PreflightReport {
  findings: Finding[];
  scope?: ReplicationScope;
  passed: boolean;
}

/** Bucardo's CLI treats '=' as an argument and '*'/'%' as wildcards, so it cannot address such names. */
const CLI_UNSAFE_NAME = /[=*%]/;

/** What the checks share: the job, its targets, and the scope once a check could read it. */
interface PreflightRun {
  job: Job;
  /** The command's shared sessions of the job, and of each target (fan-out), opened as each check needs them. */
  db: DatabaseContext;
  sessionsOf: (view: Job) => DatabaseContext;
  activity: Activity;
  progress: (text: string) => void;
  /** Every target is checked (fan-out: each of databases.secondaries, named in its findings). */
  views: Job[];
  /** Read on the primary by `connections`; the checks after it that need it are skipped without it. */
  scope?: ReplicationScope;
}

type PreflightCheck = (run: PreflightRun) => Promise<Finding[]>;

const sideOf = (run: PreflightRun, view: Job) =>
  run.job.config.fanOut ? `target ${view.target}` : 'secondary';

async function bucardoExecutable({ job, progress }: PreflightRun): Promise<Finding[]> {
  progress('checking the bucardo executable');
  const version = await bucardoVersion(job.config.bucardo.executable).catch(() => undefined);
  if (!version)
    return [
      {
        item: 'bucardo executable',
        ok: false,
        detail: `'${job.config.bucardo.executable}' not found`,
        fix: 'Install it: apt-get install bucardo (or run scripts/setup.sh), or set bucardo.executable.',
      },
    ];
  const ok = /^5\./.test(version);
  return [
    {
      item: 'bucardo executable',
      ok,
      detail: `version ${version}`,
      ...(ok ? {} : { fix: "This tool is built for Bucardo 5.x; install Debian's bucardo package." }),
    },
  ];
}

async function metadataHost({ job, db, progress }: PreflightRun): Promise<Finding[]> {
  const { bucardo } = job.config.databases;
  progress('checking the metadata host');
  try {
    const server = await db.metadataServer();
    const row = (
      await server.query<{ superuser: boolean; plperl: boolean }>(
        `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
                EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plperlu') AS plperl`,
      )
    ).rows[0]!;
    return [
      {
        item: 'metadata host reachable',
        ok: true,
        detail: `${bucardo.host}:${bucardo.port} as ${bucardo.installUser}`,
      },
      row.superuser
        ? { item: 'install user is a superuser', ok: true, detail: bucardo.installUser }
        : {
            item: 'install user is a superuser',
            ok: false,
            detail: `${bucardo.installUser} is not a superuser`,
            fix: "Bucardo's installer creates a superuser role and the plperlu language: set databases.bucardo.install_user to a superuser.",
          },
      row.plperl
        ? { item: 'plperl on the metadata host', ok: true, detail: 'plperlu is available' }
        : {
            item: 'plperl on the metadata host',
            ok: false,
            detail: 'plperlu is not available',
            fix: `Install PL/Perl on ${bucardo.host}: apt-get install postgresql-plperl-15 (the package matching the server's major version).`,
          },
    ];
  } catch (error) {
    return [{ item: 'metadata host reachable', ok: false, detail: errorMessage(error) }];
  }
}

/**
 * Bucardo applies rows with session_replication_role = replica (so the target's triggers and foreign
 * keys do not fire); a role that may not set it makes every run fail. set_config(..., true) outside a
 * transaction: the setting ends with the statement, so the probe can run on the shared session.
 */
async function replicationRole(client: Client, db: DatabaseConfig, side: string): Promise<Finding> {
  const item = `${side} role may set session_replication_role`;
  try {
    await client.query("SELECT set_config('session_replication_role', 'replica', true)");
    return { item, ok: true, detail: db.databaseOwner };
  } catch (error) {
    return {
      item,
      ok: false,
      detail: errorMessage(error),
      fix: `Bucardo writes to the ${side} with session_replication_role = replica: make ${db.databaseOwner} a superuser, or on PostgreSQL 15+ run GRANT SET ON PARAMETER session_replication_role TO ${db.databaseOwner} on the secondary.`,
    };
  }
}

/** The primary's version, the tables in scope (kept in run.scope) and publications Bucardo trips over. */
async function primaryFacts(client: Client, run: PreflightRun): Promise<Finding[]> {
  const { versionNum, version } = await serverFacts(client);
  if (versionNum < OLDEST_PRIMARY)
    return [
      {
        item: 'primary version supported',
        ok: false,
        detail: `PostgreSQL ${version}: this console's catalog queries need PostgreSQL 10 or later`,
        fix: 'Upgrade the primary to 10 or later first (pg_upgrade), or drive Bucardo by hand (docs/major-version-upgrade.md).',
      },
    ];
  run.scope = await findReplicationObjects(client, run.job.config.bucardo.replicationObjects);
  const { rows } = await client.query<{ pubname: string }>(
    'SELECT pubname FROM pg_publication WHERE puballtables',
  );
  return [
    rows.length === 0
      ? { item: 'no FOR ALL TABLES publication on the primary', ok: true, detail: 'none' }
      : {
          item: 'no FOR ALL TABLES publication on the primary',
          ok: false,
          detail: `found: ${rows.map((r) => r.pubname).join(', ')}`,
          fix: "A FOR ALL TABLES publication makes Bucardo's delta tables part of it and UPDATE/DELETE on tables without a replica identity fail; drop it (DROP PUBLICATION ...) or turn it into a publication with an explicit table list.",
        },
  ];
}

/** Every login to the primary and each target, with what is checked on the database owner's session. */
async function connections(run: PreflightRun): Promise<Finding[]> {
  const { job, progress } = run;
  const findings: Finding[] = [];
  const sides = [
    { db: job.config.databases.primary, of: job, side: 'primary' },
    ...run.views.map((view) => ({ db: view.config.databases.secondary, of: view, side: sideOf(run, view) })),
  ];
  for (const { db, of, side } of sides) {
    const logins =
      db.schemaOwner === db.databaseOwner
        ? (['database_owner'] as const)
        : (['database_owner', 'schema_owner'] as const);
    for (const login of logins) {
      progress(`connecting to the ${side} as ${login.replace('_', ' ')}`);
      const reachable = `${side} reachable as ${login.replace('_', ' ')}`;
      try {
        const client = await (of === job ? run.db : run.sessionsOf(of)).session({
          role: db.role as 'primary' | 'secondary',
          login,
        });
        if (login === 'database_owner' && db.role === 'secondary')
          findings.push(await replicationRole(client, db, side));
        if (login === 'database_owner' && db.role === 'primary')
          findings.push(...(await primaryFacts(client, run)));
        findings.push({
          item: reachable,
          ok: true,
          detail: `${db.host}:${db.port}/${db.dbname} as ${login === 'schema_owner' ? db.schemaOwner : db.databaseOwner}`,
        });
      } catch (error) {
        findings.push({ item: reachable, ok: false, detail: errorMessage(error) });
      }
    }
  }
  return findings;
}

async function tablesInScope({ scope }: PreflightRun): Promise<Finding[]> {
  if (!scope) return [];
  return [
    scope.tables.length > 0
      ? {
          item: 'tables in scope',
          ok: true,
          detail: `${scope.tables.length} table(s), ${scope.sequences.length} sequence(s)`,
        }
      : {
          item: 'tables in scope',
          ok: false,
          detail: 'no table matches bucardo.replication_objects on the primary',
          fix: 'Check namespace_include / table_include (names are case-sensitive) and databases.primary.dbname.',
        },
  ];
}

async function primaryKeys({ scope }: PreflightRun): Promise<Finding[]> {
  if (!scope) return [];
  const withoutKey = scope.tables.filter((t) => !t.hasPrimaryKey).map(displayName);
  return [
    withoutKey.length === 0
      ? { item: 'every table has a primary key', ok: true, detail: 'yes' }
      : {
          item: 'every table has a primary key',
          ok: false,
          detail: `without a primary key: ${withoutKey.join(', ')}`,
          fix: 'Bucardo identifies rows by primary key: add one (ALTER TABLE ... ADD PRIMARY KEY) or exclude these tables with bucardo.replication_objects.table_exclude.',
        },
  ];
}

async function addressableNames({ scope }: PreflightRun): Promise<Finding[]> {
  if (!scope) return [];
  const unsafe = [...scope.tables, ...scope.sequences]
    .filter((r) => CLI_UNSAFE_NAME.test(r.schema) || CLI_UNSAFE_NAME.test(r.name))
    .map(displayName);
  return [
    unsafe.length === 0
      ? { item: 'names Bucardo can address', ok: true, detail: 'yes' }
      : {
          item: 'names Bucardo can address',
          ok: false,
          detail: `names containing =, * or %: ${unsafe.join(', ')}`,
          fix: "Bucardo's command line reads = as an option and * or % as wildcards: rename these or exclude them with table_exclude.",
        },
  ];
}

/** Versions, encodings and the like of the primary against one target (server-pair.ts). */
async function serverPair(run: PreflightRun, view: Job, scope: ReplicationScope): Promise<Finding[]> {
  const { job, progress } = run;
  try {
    progress('comparing the servers');
    const pair = await compareServers(
      await run.db.primary(),
      await (view === job ? run.db : run.sessionsOf(view)).secondary(),
      scope.tables,
    );
    const side = sideOf(run, view);
    return pair.map((finding) =>
      job.config.fanOut ? { ...finding, item: `${finding.item} (${side})` } : finding,
    );
  } catch (error) {
    return [{ item: 'server versions', ok: false, detail: errorMessage(error) }];
  }
}

/** Every table in scope exists on the target with the primary's columns and types. */
async function tableDefinitions(run: PreflightRun, view: Job, scope: ReplicationScope): Promise<Finding[]> {
  const { job, progress } = run;
  const side = sideOf(run, view);
  try {
    progress(`comparing table definitions with the ${side}`);
    const [primaryColumns, secondaryColumns] = await Promise.all([
      run.db.primary().then((client) => tableColumns(client, scope.tables)),
      (view === job ? run.db : run.sessionsOf(view))
        .secondary()
        .then((client) => tableColumns(client, scope.tables)),
    ]);
    const missing: string[] = [];
    const different: string[] = [];
    const describe = (cols: { name: string; type: string }[]) =>
      cols
        .map((c) => `${c.name} ${c.type}`)
        .sort()
        .join(', ');
    for (const table of scope.tables) {
      const key = `${table.schema}.${table.name}`;
      const source = primaryColumns.get(key) ?? [];
      const target = secondaryColumns.get(key);
      if (!target) missing.push(key);
      else if (describe(source) !== describe(target))
        different.push(`${key} (primary: ${describe(source)}; ${side}: ${describe(target)})`);
    }
    return [
      missing.length === 0
        ? { item: `every table exists on the ${side}`, ok: true, detail: 'yes' }
        : {
            item: `every table exists on the ${side}`,
            ok: false,
            detail: `missing on the ${side}: ${missing.join(', ')}`,
            fix: 'Create them first, e.g. pg_dump --schema-only -t TABLE from the primary restored into the secondary, or exclude them.',
          },
      different.length === 0
        ? { item: `same columns and types on the primary and the ${side}`, ok: true, detail: 'yes' }
        : {
            item: `same columns and types on the primary and the ${side}`,
            ok: false,
            detail: different.join('; '),
            fix: `Make the ${side}'s definitions match the primary's (ALTER TABLE on the ${side}) before replicating.`,
          },
    ];
  } catch (error) {
    return [{ item: `every table exists on the ${side}`, ok: false, detail: errorMessage(error) }];
  }
}

/** The server pair and the table definitions, target by target. */
async function targets(run: PreflightRun): Promise<Finding[]> {
  const { scope } = run;
  if (!scope) return [];
  const findings: Finding[] = [];
  for (const view of run.views)
    findings.push(...(await serverPair(run, view, scope)), ...(await tableDefinitions(run, view, scope)));
  return findings;
}

/** With bucardo.syncs N > 1 the longest name is <name>_N. */
async function syncNameLength({ job }: PreflightRun): Promise<Finding[]> {
  const longest = syncNames(job).at(-1)!;
  return [
    {
      item: 'sync name keeps trigger names stable',
      ok: longest.length <= 42,
      detail: `'${longest}' has ${longest.length} characters (limit 42)`,
    },
  ];
}

/** The checks in the order their findings are listed; `connections` reads the scope the later ones use. */
const PREFLIGHT_CHECKS: PreflightCheck[] = [
  bucardoExecutable,
  metadataHost,
  connections,
  tablesInScope,
  primaryKeys,
  addressableNames,
  targets,
  syncNameLength,
];

/** Runs every check on the command's shared sessions: each server is connected to once per login. */
export async function preflight(ctx: CommandContext): Promise<PreflightReport> {
  const { job, activity, progress } = ctx;
  const run: PreflightRun = {
    job,
    db: ctx.db,
    sessionsOf: ctx.databases,
    activity,
    progress,
    views: targetViews(job),
  };
  const findings: Finding[] = [];
  for (const check of PREFLIGHT_CHECKS) findings.push(...(await check(run)));
  return { findings, scope: run.scope, passed: findings.every((f) => f.ok) };
}
