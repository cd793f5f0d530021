// Everything bucardo.install checks before it changes anything. Each finding names the problem and
// its fix; install stops when any finding is a blocker.
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { bucardoVersion } from '../../src/core/bucardo/run.js';
import { withClient } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import { targetViews, type Job } from '../../src/core/job.js';
import {
  displayName,
  findReplicationObjects,
  tableColumns,
  type ReplicationScope,
} from '../../src/core/objects.js';
import type { Activity } from '../../src/core/activity.js';
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

export async function preflight(
  job: Job,
  activity: Activity,
  progress: (text: string) => void,
): Promise<PreflightReport> {
  const findings: Finding[] = [];
  const add = (finding: Finding) => findings.push(finding);
  const { bucardo, primary } = job.config.databases;
  // Every target is checked (fan-out: each of databases.secondaries, named in its findings).
  const views = targetViews(job);
  const sideOf = (view: Job) => (job.config.fanOut ? `target ${view.target}` : 'secondary');

  progress('checking the bucardo executable');
  const version = await bucardoVersion(job.config.bucardo.executable).catch(() => undefined);
  add(
    version
      ? {
          item: 'bucardo executable',
          ok: /^5\./.test(version),
          detail: `version ${version}`,
          ...(/^5\./.test(version)
            ? {}
            : { fix: "This tool is built for Bucardo 5.x; install Debian's bucardo package." }),
        }
      : {
          item: 'bucardo executable',
          ok: false,
          detail: `'${job.config.bucardo.executable}' not found`,
          fix: 'Install it: apt-get install bucardo (or run scripts/setup.sh), or set bucardo.executable.',
        },
  );

  progress('checking the metadata host');
  try {
    await withClient(
      job,
      { role: 'bucardo', login: 'install_user', database: bucardo.fallbackDb, activity },
      async (client) => {
        const { rows } = await client.query<{ superuser: boolean; plperl: boolean }>(
          `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
                EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plperlu') AS plperl`,
        );
        const row = rows[0]!;
        add({
          item: 'metadata host reachable',
          ok: true,
          detail: `${bucardo.host}:${bucardo.port} as ${bucardo.installUser}`,
        });
        add(
          row.superuser
            ? { item: 'install user is a superuser', ok: true, detail: bucardo.installUser }
            : {
                item: 'install user is a superuser',
                ok: false,
                detail: `${bucardo.installUser} is not a superuser`,
                fix: "Bucardo's installer creates a superuser role and the plperlu language: set databases.bucardo.install_user to a superuser.",
              },
        );
        add(
          row.plperl
            ? { item: 'plperl on the metadata host', ok: true, detail: 'plperlu is available' }
            : {
                item: 'plperl on the metadata host',
                ok: false,
                detail: 'plperlu is not available',
                fix: `Install PL/Perl on ${bucardo.host}: apt-get install postgresql-plperl-15 (the package matching the server's major version).`,
              },
        );
      },
    );
  } catch (error) {
    add({ item: 'metadata host reachable', ok: false, detail: errorMessage(error) });
  }

  let scope: ReplicationScope | undefined;
  const sides = [
    { db: primary, of: job, side: 'primary' },
    ...views.map((view) => ({ db: view.config.databases.secondary, of: view, side: sideOf(view) })),
  ];
  for (const { db, of, side } of sides) {
    const logins =
      db.schemaOwner === db.databaseOwner
        ? (['database_owner'] as const)
        : (['database_owner', 'schema_owner'] as const);
    for (const login of logins) {
      progress(`connecting to the ${side} as ${login.replace('_', ' ')}`);
      try {
        await withClient(
          of,
          { role: db.role as 'primary' | 'secondary', login, activity },
          async (client) => {
            if (db.role === 'secondary' && login === 'database_owner') {
              // Bucardo applies rows with session_replication_role = replica (so the target's triggers
              // and foreign keys do not fire); a role that may not set it makes every run fail.
              await client.query('BEGIN');
              try {
                await client.query('SET LOCAL session_replication_role = replica');
                add({
                  item: `${side} role may set session_replication_role`,
                  ok: true,
                  detail: db.databaseOwner,
                });
              } catch (error) {
                add({
                  item: `${side} role may set session_replication_role`,
                  ok: false,
                  detail: errorMessage(error),
                  fix: `Bucardo writes to the ${side} with session_replication_role = replica: make ${db.databaseOwner} a superuser, or on PostgreSQL 15+ run GRANT SET ON PARAMETER session_replication_role TO ${db.databaseOwner} on the secondary.`,
                });
              } finally {
                await client.query('ROLLBACK');
              }
            }
            if (db.role === 'primary' && login === 'database_owner') {
              const { versionNum, version } = await serverFacts(client);
              if (versionNum < OLDEST_PRIMARY) {
                add({
                  item: 'primary version supported',
                  ok: false,
                  detail: `PostgreSQL ${version}: this console's catalog queries need PostgreSQL 10 or later`,
                  fix: 'Upgrade the primary to 10 or later first (pg_upgrade), or drive Bucardo by hand (docs/major-version-upgrade.md).',
                });
                return;
              }
              scope = await findReplicationObjects(client, job.config.bucardo.replicationObjects);
              const { rows } = await client.query<{ pubname: string }>(
                'SELECT pubname FROM pg_publication WHERE puballtables',
              );
              add(
                rows.length === 0
                  ? { item: 'no FOR ALL TABLES publication on the primary', ok: true, detail: 'none' }
                  : {
                      item: 'no FOR ALL TABLES publication on the primary',
                      ok: false,
                      detail: `found: ${rows.map((r) => r.pubname).join(', ')}`,
                      fix: "A FOR ALL TABLES publication makes Bucardo's delta tables part of it and UPDATE/DELETE on tables without a replica identity fail; drop it (DROP PUBLICATION ...) or turn it into a publication with an explicit table list.",
                    },
              );
            }
          },
        );
        add({
          item: `${side} reachable as ${login.replace('_', ' ')}`,
          ok: true,
          detail: `${db.host}:${db.port}/${db.dbname} as ${login === 'schema_owner' ? db.schemaOwner : db.databaseOwner}`,
        });
      } catch (error) {
        add({
          item: `${side} reachable as ${login.replace('_', ' ')}`,
          ok: false,
          detail: errorMessage(error),
        });
      }
    }
  }

  if (scope) {
    add(
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
    );
    const withoutKey = scope.tables.filter((t) => !t.hasPrimaryKey).map(displayName);
    add(
      withoutKey.length === 0
        ? { item: 'every table has a primary key', ok: true, detail: 'yes' }
        : {
            item: 'every table has a primary key',
            ok: false,
            detail: `without a primary key: ${withoutKey.join(', ')}`,
            fix: 'Bucardo identifies rows by primary key: add one (ALTER TABLE ... ADD PRIMARY KEY) or exclude these tables with bucardo.replication_objects.table_exclude.',
          },
    );
    const unsafe = [...scope.tables, ...scope.sequences]
      .filter((r) => CLI_UNSAFE_NAME.test(r.schema) || CLI_UNSAFE_NAME.test(r.name))
      .map(displayName);
    add(
      unsafe.length === 0
        ? { item: 'names Bucardo can address', ok: true, detail: 'yes' }
        : {
            item: 'names Bucardo can address',
            ok: false,
            detail: `names containing =, * or %: ${unsafe.join(', ')}`,
            fix: "Bucardo's command line reads = as an option and * or % as wildcards: rename these or exclude them with table_exclude.",
          },
    );
    for (const view of views) {
      const side = sideOf(view);
      try {
        progress('comparing the servers');
        const pair = await withClient(job, { role: 'primary', activity }, (primaryClient) =>
          withClient(view, { role: 'secondary', activity }, (secondaryClient) =>
            compareServers(primaryClient, secondaryClient, scope!.tables),
          ),
        );
        for (const finding of pair)
          add(job.config.fanOut ? { ...finding, item: `${finding.item} (${side})` } : finding);
      } catch (error) {
        add({ item: 'server versions', ok: false, detail: errorMessage(error) });
      }
      try {
        progress(`comparing table definitions with the ${side}`);
        const [primaryColumns, secondaryColumns] = await Promise.all([
          withClient(job, { role: 'primary', activity }, (client) => tableColumns(client, scope!.tables)),
          withClient(view, { role: 'secondary', activity }, (client) => tableColumns(client, scope!.tables)),
        ]);
        const missing: string[] = [];
        const different: string[] = [];
        for (const table of scope.tables) {
          const key = `${table.schema}.${table.name}`;
          const source = primaryColumns.get(key) ?? [];
          const target = secondaryColumns.get(key);
          if (!target) {
            missing.push(key);
            continue;
          }
          const describe = (cols: { name: string; type: string }[]) =>
            cols
              .map((c) => `${c.name} ${c.type}`)
              .sort()
              .join(', ');
          if (describe(source) !== describe(target))
            different.push(`${key} (primary: ${describe(source)}; ${side}: ${describe(target)})`);
        }
        add(
          missing.length === 0
            ? { item: `every table exists on the ${side}`, ok: true, detail: 'yes' }
            : {
                item: `every table exists on the ${side}`,
                ok: false,
                detail: `missing on the ${side}: ${missing.join(', ')}`,
                fix: 'Create them first, e.g. pg_dump --schema-only -t TABLE from the primary restored into the secondary, or exclude them.',
              },
        );
        add(
          different.length === 0
            ? { item: `same columns and types on the primary and the ${side}`, ok: true, detail: 'yes' }
            : {
                item: `same columns and types on the primary and the ${side}`,
                ok: false,
                detail: different.join('; '),
                fix: `Make the ${side}'s definitions match the primary's (ALTER TABLE on the ${side}) before replicating.`,
              },
        );
      } catch (error) {
        add({ item: `every table exists on the ${side}`, ok: false, detail: errorMessage(error) });
      }
    }
  }

  // With bucardo.syncs N > 1 the longest name is <name>_N.
  const longest = syncNames(job).at(-1)!;
  add({
    item: 'sync name keeps trigger names stable',
    ok: longest.length <= 42,
    detail: `'${longest}' has ${longest.length} characters (limit 42)`,
  });
  return { findings, scope, passed: findings.every((f) => f.ok) };
}

export function formatFindings(findings: Finding[]): string[] {
  return findings.map(
    (f) =>
      `  ${f.ok ? 'ok  ' : 'FAIL'} ${f.item}: ${f.detail}${!f.ok && f.fix ? `\n       fix: ${f.fix}` : ''}`,
  );
}
