// Preflight's comparison of the two servers, for moves between major versions: versions and whether
// the pair was tested, encoding and collation (they change how text compares and sorts), and what the
// replicated tables' columns need on the secondary (types, extensions). docs/major-version-upgrade.md
// explains each finding and its fix.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Client } from '../../src/core/db.js';
import type { Relation } from '../../src/core/objects.js';

export interface PairFinding {
  item: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** The oldest primary this console's own catalog queries support (relispartition, pg_sequence, backend_type). */
export const OLDEST_PRIMARY = 100000;

/** A pair of major versions in the version matrix; `refused`: Bucardo 5.6 cannot do it, and why. */
export interface MatrixPair {
  primary: number;
  secondary: number;
  refused?: string;
}

/**
 * The version matrix (version-matrix.json beside this file, the one list of pairs): `npm run
 * test:versions` runs every pair not refused end to end (test/integration/versions.test.ts: install,
 * copy, live changes, sequences, verify, finish, uninstall) with Bucardo 5.6, fails when one of them
 * does not pass, and only then records its date and commit as `lastRun`. Preflight names the pair and
 * that date, never a date of its own.
 */
export interface VersionMatrix {
  lastRun: { date: string; commit: string | null };
  pairs: MatrixPair[];
}

export const VERSION_MATRIX_FILE = fileURLToPath(
  new URL('../../../plugins/bucardo/version-matrix.json', import.meta.url),
);

let matrix: VersionMatrix | undefined;

/** The version matrix, read once per process. */
export function versionMatrix(): VersionMatrix {
  matrix ??= JSON.parse(readFileSync(VERSION_MATRIX_FILE, 'utf8')) as VersionMatrix;
  return matrix;
}

export interface ServerFacts {
  versionNum: number;
  version: string;
  encoding: string;
  /** Provider, LC_COLLATE and LC_CTYPE (and the ICU locale) of the database, as one comparable text. */
  locale: string;
}

export async function serverFacts(client: Client): Promise<ServerFacts> {
  const {
    rows: [base],
  } = await client.query<{ num: string; version: string; encoding: string }>(
    `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version,
            current_setting('server_encoding') AS encoding`,
  );
  const versionNum = Number(base!.num);
  // The database's locale provider exists from 15; its ICU locale column was renamed in 17.
  const icu = versionNum >= 170000 ? 'datlocale' : versionNum >= 150000 ? 'daticulocale' : undefined;
  const {
    rows: [locale],
  } = await client.query<{ locale: string }>(
    `SELECT ${icu ? `CASE WHEN datlocprovider = 'i' THEN 'ICU ' || ${icu} || ', ' ELSE '' END || ` : ''}
            'LC_COLLATE ' || datcollate || ', LC_CTYPE ' || datctype AS locale
       FROM pg_database WHERE datname = current_database()`,
  );
  return {
    versionNum,
    version: base!.version.split(' ')[0]!,
    encoding: base!.encoding,
    locale: locale!.locale,
  };
}

/** 110022 → 11; before 10 the major has two parts: 90624 → 9.6. */
export const major = (versionNum: number): number =>
  versionNum >= 100000
    ? Math.floor(versionNum / 10000)
    : Math.floor(versionNum / 10000) + (Math.floor(versionNum / 100) % 100) / 10;

/** The types (and the extensions that own them) of the replicated tables' columns on the primary. */
async function columnTypes(
  client: Client,
  tables: Pick<Relation, 'schema' | 'name'>[],
): Promise<{ type: string; extension: string | null; columns: string }[]> {
  const { rows } = await client.query<{ type: string; extension: string | null; columns: string }>(
    `
    SELECT format_type(t.oid, NULL) AS type, min(e.extname) AS extension,
           string_agg(DISTINCT n.nspname || '.' || c.relname || '.' || a.attname, ', ') AS columns
      FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
      JOIN pg_namespace n ON n.nspname = wanted.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.deptype = 'e'
            AND d.objid IN (t.oid, t.typelem, t.typbasetype)
      LEFT JOIN pg_extension e ON e.oid = d.refobjid
     GROUP BY t.oid ORDER BY 1`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows;
}

/** Every finding about the pair of servers; each failing one carries its fix. */
export async function compareServers(
  primary: Client,
  secondary: Client,
  tables: Pick<Relation, 'schema' | 'name'>[],
): Promise<PairFinding[]> {
  const findings: PairFinding[] = [];
  const [ours, theirs] = await Promise.all([serverFacts(primary), serverFacts(secondary)]);
  const [from, to] = [major(ours.versionNum), major(theirs.versionNum)];
  const direction =
    from < to
      ? ` (an upgrade from ${from} to ${to})`
      : from > to
        ? ` (a downgrade from ${from} to ${to})`
        : '';
  findings.push({
    item: 'server versions',
    ok: true,
    detail: `primary ${ours.version}, secondary ${theirs.version}${direction}`,
  });
  findings.push(testedPair(from, to, versionMatrix()));

  const encoding = 'same encoding';
  findings.push(
    ours.encoding === theirs.encoding
      ? { item: encoding, ok: true, detail: ours.encoding }
      : {
          item: encoding,
          ok: false,
          detail: `primary ${ours.encoding}, secondary ${theirs.encoding}: text one of them cannot represent fails to copy, and text compares differently`,
          fix:
            `Create the secondary database with the primary's encoding: CREATE DATABASE ... ENCODING '${ours.encoding}' ` +
            'TEMPLATE template0 (then load the schema again).',
        },
  );

  const collation = 'same collation';
  findings.push(
    ours.locale === theirs.locale
      ? { item: collation, ok: true, detail: ours.locale }
      : {
          item: collation,
          ok: false,
          detail: `primary ${ours.locale}; secondary ${theirs.locale}: text sorts and compares differently (indexes, ORDER BY, unique keys on text)`,
          fix:
            "Create the secondary database with the primary's locale (CREATE DATABASE ... LC_COLLATE/LC_CTYPE as above, TEMPLATE template0), " +
            'or change the collation after the cutover and REINDEX.',
        },
  );

  const types = await columnTypes(primary, tables);
  const { rows: present } = await secondary.query<{ type: string; found: boolean }>(
    'SELECT type, to_regtype(type) IS NOT NULL AS found FROM unnest($1::text[]) AS type',
    [types.map((t) => t.type)],
  );
  const { rows: extensions } = await secondary.query<{ extname: string }>('SELECT extname FROM pg_extension');
  const installed = new Set(extensions.map((e) => e.extname));
  const used = [...new Set(types.map((t) => t.extension).filter((e): e is string => !!e))];
  const missingExtensions = used.filter((e) => !installed.has(e));
  findings.push(
    missingExtensions.length === 0
      ? {
          item: 'extensions on the secondary',
          ok: true,
          detail: used.length ? `present: ${used.join(', ')}` : 'none needed',
        }
      : {
          item: 'extensions on the secondary',
          ok: false,
          detail: `the replicated columns use types of extensions missing on the secondary: ${missingExtensions.join(', ')}`,
          fix:
            `On the secondary: ${missingExtensions.map((e) => `CREATE EXTENSION "${e}";`).join(' ')} ` +
            "(install the package that provides it for the secondary's version first if needed).",
        },
  );

  const missingTypes = types.filter((t) => !t.extension && !present.find((p) => p.type === t.type)?.found);
  findings.push(
    missingTypes.length === 0
      ? { item: 'column types exist on the secondary', ok: true, detail: `${types.length} type(s)` }
      : {
          item: 'column types exist on the secondary',
          ok: false,
          detail: `not on the secondary: ${missingTypes.map((t) => `${t.type} (${t.columns})`).join('; ')}`,
          fix:
            'Create these types on the secondary (pg_dump --schema-only of the primary), or, for types the new version removed ' +
            '(abstime, reltime, tinterval: gone in 12), change the columns on the primary (ALTER TABLE ... TYPE timestamptz / interval) ' +
            'or exclude the tables.',
        },
  );
  return findings;
}

export function testedPair(from: number, to: number, { lastRun, pairs }: VersionMatrix): PairFinding {
  const item = 'version pair tested';
  const tested = pairs.find((p) => p.primary === from && p.secondary === to);
  if (!tested) {
    return {
      item,
      ok: true,
      detail: `${from} → ${to} is not in the version matrix (docs/major-version-upgrade.md): expected to work, untested; rehearse it on copies first`,
    };
  }
  if (!tested.refused)
    return {
      item,
      ok: true,
      detail: `${from} → ${to} is in the version matrix; last run of the version matrix: ${lastRun.date} (every pair passed end to end)`,
    };
  return {
    item,
    ok: false,
    detail: `${from} → ${to} does not work with Bucardo 5.6: ${tested.refused}`,
    fix: 'Replicate to a secondary of a version in the version matrix (docs/major-version-upgrade.md), then upgrade that one with pg_upgrade.',
  };
}
