// Major-version upgrades on real servers of other versions (src/sandbox/versions.ts): for each pair
// in BUCARDO_CONSOLE_VERSION_PAIRS ("11:17" by default; `npm run test:versions` passes the whole
// matrix) a primary and a secondary of those versions, the metadata database on a 15 server (Bucardo
// needs plperl: the pair's own when one side is 15, else a third server), each database with its own
// DateStyle, float digits, interval and bytea styles and time zone. Each pair goes the whole way:
// install, triggers, start, initial copy, live changes of every kind, sequences, verify (also of
// values whose text differs between versions), finish, uninstall.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';
import { SYSTEM_MAJOR, pgBinFor } from '../../src/sandbox/versions.js';
import { compareServers, VERSION_MATRIX_FILE, versionMatrix } from '../../plugins/bucardo/server-pair.js';
import { query, runTool, waitFor, writeJobConfig, forgetJob, type ToolResult } from '../support/harness.js';

// One pair with both ends of what `npm test` covers: the oldest primary the matrix runs and the newest
// secondary. Each pair costs a whole job's life on its own servers (~25 s of CPU): the matrix's other
// pairs run in `npm run test:versions`.
export const DEFAULT_PAIRS = '11:17';

function pairs(): { primary: number; secondary: number }[] {
  const text = process.env['BUCARDO_CONSOLE_VERSION_PAIRS'] ?? DEFAULT_PAIRS;
  return text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const [primary, secondary] = p.split(':').map(Number);
      assert.ok(
        primary && secondary,
        `BUCARDO_CONSOLE_VERSION_PAIRS: '${p}' is not PRIMARY:SECONDARY (e.g. 11:15)`,
      );
      return { primary, secondary };
    });
}

// Types whose text differs between versions or settings: floats (digits), timestamps (TimeZone,
// DateStyle), intervals (IntervalStyle), bytea (bytea_output), plus arrays, numeric and jsonb.
const SCHEMA = `
CREATE SCHEMA app;
CREATE TABLE app.samples (id int PRIMARY KEY, f4 real, f8 double precision, n numeric(30,10), ts timestamptz,
  iv interval, b bytea, f8s double precision[], tags text[], doc jsonb);
CREATE TABLE app.events (id bigserial PRIMARY KEY, note text);
CREATE SEQUENCE app.ticket_no;
`;
const DATA = `
INSERT INTO app.samples SELECT g, (g / 7.0)::real, g / 7.0 + 1e-9, g / 3.0, TIMESTAMPTZ '2024-03-01 12:00+02' + g * interval '1 hour 7 seconds',
  g * interval '1 day 3 hours' - interval '1 month', decode(md5(g::text), 'hex'), ARRAY[g / 11.0, 0.1, -1e-300],
  ARRAY['a' || g, NULL], jsonb_build_object('g', g, 'half', g / 2.0, 'list', jsonb_build_array(g, 0.1))
  FROM generate_series(1, 3000) g;
INSERT INTO app.events (note) SELECT 'event ' || g FROM generate_series(1, 500) g;
SELECT setval('app.ticket_no', 700);
`;

/** Row text that is the same on every version: floats by their bits, times in UTC, explicit styles. */
const COMPARABLE = `SELECT id, encode(float4send(f4), 'hex') AS f4, encode(float8send(f8), 'hex') AS f8, n::text AS n,
    to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS ts, iv::text AS iv, encode(b, 'hex') AS b,
    array_dims(f8s) || (SELECT string_agg(coalesce(encode(float8send(x), 'hex'), 'null'), ',' ORDER BY o)
      FROM unnest(f8s) WITH ORDINALITY AS u(x, o)) AS f8s,
    tags::text AS tags, doc::text AS doc
  FROM app.samples ORDER BY id`;

async function samples(cluster: ClusterInfo, database: string): Promise<string[]> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database });
  await client.connect();
  try {
    // The databases print intervals in other styles (below): read them in one.
    await client.query("SET IntervalStyle = 'postgres'");
    return (await client.query(COMPARABLE)).rows.map((r) => JSON.stringify(r));
  } finally {
    await client.end();
  }
}

// Each side prints values its own way, as servers in the field do: dates day first on the primary and
// month first on the secondary (02/03 would swap), floats with 15 digits, other interval and bytea
// styles, other time zones. Replication and verify must not depend on any of them.
const PRIMARY_STYLE = `ALTER DATABASE va SET DateStyle = 'SQL, DMY'; ALTER DATABASE va SET extra_float_digits = 0;
  ALTER DATABASE va SET IntervalStyle = 'iso_8601'; ALTER DATABASE va SET bytea_output = 'escape';
  ALTER DATABASE va SET TimeZone = 'America/New_York'`;
const SECONDARY_STYLE = `ALTER DATABASE vb SET DateStyle = 'SQL, MDY'; ALTER DATABASE vb SET extra_float_digits = 0;
  ALTER DATABASE vb SET IntervalStyle = 'sql_standard'; ALTER DATABASE vb SET bytea_output = 'escape';
  ALTER DATABASE vb SET TimeZone = 'Asia/Kolkata'`;

async function events(cluster: ClusterInfo, database: string): Promise<string> {
  return JSON.stringify(await query(cluster, database, 'SELECT id, note FROM app.events ORDER BY id'));
}

function outcome(result: ToolResult): { ok: boolean; data?: any; error?: string } {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

/** The pairs that went the whole way in this run, as PRIMARY:SECONDARY. */
const passed = new Set<string>();

const started: ClusterInfo[] = [];
after(() => {
  for (const cluster of started) stopCluster(cluster);
});

// Pairs wait mostly on Bucardo and the servers: three at a time (the matrix run) take little longer than one.
const concurrency = Number(process.env['BUCARDO_CONSOLE_VERSION_CONCURRENCY'] ?? 1);

describe('major-version pairs', { concurrency }, () => {
  for (const pair of pairs()) {
    test(`PostgreSQL ${pair.primary} → ${pair.secondary}: install, copy, live changes, sequences, verify, finish, uninstall`, async () => {
      const t0 = Date.now();
      const [a, b] = await Promise.all([
        startCluster(`v${pair.primary}a`, { pgBin: pgBinFor(pair.primary) }),
        startCluster(`v${pair.secondary}b`, { pgBin: pgBinFor(pair.secondary) }),
      ]);
      started.push(a, b);
      // Bucardo's metadata database needs plperl, which only Debian's server here has.
      const metadata =
        pair.primary === SYSTEM_MAJOR
          ? a
          : pair.secondary === SYSTEM_MAJOR
            ? b
            : started[started.push(await startCluster('vmeta')) - 1]!;
      await query(a, 'postgres', 'CREATE DATABASE va');
      await query(b, 'postgres', 'CREATE DATABASE vb');
      await query(a, 'va', `${SCHEMA}${DATA}`);
      await query(b, 'vb', SCHEMA);
      await query(a, 'va', PRIMARY_STYLE);
      await query(b, 'vb', SECONDARY_STYLE);
      const job = writeJobConfig({
        name: `ver${pair.primary}_${pair.secondary}`,
        plugins: ['bucardo', 'cutover'],
        metadata,
        primary: { cluster: a, dbname: 'va' },
        secondary: { cluster: b, dbname: 'vb' },
        extra: { cutover: { settle_time: 5, max_lag: 10, sequence_margin: 1000 } },
      });
      const tool = (list: string) => runTool(['-c', job.file, '-l', list], { timeoutMs: 240_000 });
      try {
        const setup = await tool('bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
        assert.equal(setup.code, 0, setup.stdout + setup.stderr);
        assert.match(
          setup.stdout,
          new RegExp(
            `ok {3}server versions: primary ${pair.primary}\\.\\d+, secondary ${pair.secondary}\\.\\d+`,
          ),
        );
        const inMatrix = versionMatrix().pairs.some(
          (p) => p.primary === pair.primary && p.secondary === pair.secondary,
        );
        assert.match(
          setup.stdout,
          inMatrix
            ? /ok {3}version pair tested: \d+ → \d+ is in the version matrix; last run of the version matrix: \d{4}-\d{2}-\d{2}/
            : /ok {3}version pair tested: \d+ → \d+ is not in the version matrix/,
        );
        const primaryRows = await samples(a, 'va');
        assert.equal(primaryRows.length, 3000);
        await waitFor(
          async () => JSON.stringify(await samples(b, 'vb')) === JSON.stringify(primaryRows),
          60_000,
          'the initial copy, bit for bit',
        );
        const copied = Date.now();

        // Live changes of every kind, including TRUNCATE, arrive.
        await query(
          a,
          'va',
          `
          INSERT INTO app.samples VALUES (5001, 1.17549435e-38, 2.2250738585072014e-308, -0.0000000001, '1999-12-31 23:59:59.999999+14',
            '-3 years 2 mons -1 days 04:05:06.7', '\\x00ff', '{{1.5,NULL},{-0.1,1e300}}', '{}', '{"k": [1.10, 2e-5]}');
          UPDATE app.samples SET f8 = f8 * 3.3, f4 = f4 / 3, iv = iv * 2, doc = doc || '{"u": true}' WHERE id % 10 = 0;
          DELETE FROM app.samples WHERE id % 10 = 5;
          TRUNCATE app.events;
          INSERT INTO app.events (note) VALUES ('after truncate');
          SELECT nextval('app.ticket_no') FROM generate_series(1, 50);`,
        );
        const changedRows = await samples(a, 'va');
        await waitFor(
          async () => JSON.stringify(await samples(b, 'vb')) === JSON.stringify(changedRows),
          60_000,
          'INSERT, UPDATE and DELETE to arrive',
        );
        const primaryEvents = await events(a, 'va');
        await waitFor(
          async () => (await events(b, 'vb')) === primaryEvents,
          60_000,
          'TRUNCATE and the insert after it to arrive',
        );
        const [seqB] = await query<{ last_value: string }>(
          b,
          'vb',
          'SELECT last_value::text FROM app.ticket_no',
        );
        assert.equal(seqB!.last_value, '750', 'Bucardo replicates the sequence');

        // Verify: replicated rows are identical on both versions; a change in the last bit of a float is found.
        const clean = await tool('cutover.verify --json');
        assert.equal(clean.code, 0, clean.stdout + clean.stderr);
        const cleanData = outcome(clean).data;
        assert.equal(cleanData.clean, true, cleanData.verdict);
        assert.equal(
          cleanData.method,
          Math.min(pair.primary, pair.secondary) >= 11 ? 'hashtextextended(row text)' : 'md5(row text)',
        );
        assert.deepEqual(
          cleanData.sequences.map((s: any) => [s.sequence, s.status]),
          [
            ['app.events_id_seq', 'match'],
            ['app.ticket_no', 'match'],
          ],
        );
        await query(b, 'vb', 'UPDATE app.samples SET f8 = f8 * (1 + 2e-16) WHERE id = 3');
        const [bits] = await query<{ differ: boolean }>(
          b,
          'vb',
          'SELECT float8send(f8) <> float8send((3 / 7.0 + 1e-9)::float8) AS differ FROM app.samples WHERE id = 3',
        );
        assert.equal(bits!.differ, true, "the secondary's value changed in its last bits");
        const found = await tool('cutover.verify settle=0 --json');
        assert.equal(found.code, 1, found.stdout + found.stderr);
        const samplesReport = outcome(found).data.tables.find((t: any) => t.table === 'app.samples');
        assert.deepEqual(samplesReport.keys, [{ key: { id: '3' }, difference: 'changed', inFlight: false }]);
        // Touching the row on the primary makes Bucardo copy it over again.
        await query(a, 'va', 'UPDATE app.samples SET n = n WHERE id = 3');
        const touched = await samples(a, 'va');
        await waitFor(
          async () => JSON.stringify(await samples(b, 'vb')) === JSON.stringify(touched),
          60_000,
          'the repaired row',
        );
        const verified = Date.now();

        const finished = await tool('cutover.verify cutover.finish --writes-stopped');
        assert.equal(finished.code, 0, finished.stdout + finished.stderr);
        assert.match(finished.stdout, /Cutover finished: replication is stopped, its triggers are gone/);
        assert.deepEqual(
          await query(
            a,
            'va',
            "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%' AND tgrelid::regclass::text NOT LIKE 'bucardo.%'",
          ),
          [],
        );
        const [next] = await query<{ n: string }>(b, 'vb', "SELECT nextval('app.ticket_no')::text AS n");
        assert.equal(next!.n, '1751', "the secondary hands out values past the primary's with the margin");

        const uninstall = await tool('bucardo.uninstall');
        assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
        assert.deepEqual(
          await query(a, 'va', "SELECT nspname FROM pg_namespace WHERE nspname = 'bucardo'"),
          [],
        );
        assert.deepEqual(
          await query(metadata, 'postgres', `SELECT datname FROM pg_database WHERE datname = 'bucardo'`),
          [],
        );
        const seconds = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
        console.log(
          `  ${pair.primary} → ${pair.secondary}: copy ${seconds(copied - t0)}, changes and verify ${seconds(verified - copied)}, ` +
            `finish and uninstall ${seconds(Date.now() - verified)}`,
        );
        passed.add(`${pair.primary}:${pair.secondary}`);
      } finally {
        await forgetJob(job, metadata).catch(() => undefined);
        for (const cluster of [a, b]) stopCluster(cluster);
      }
    });
  }
});

test('preflight names what the secondary lacks: an extension, a type the new version removed, the encoding, the collation', async () => {
  const oldest = Math.min(...pairs().map((p) => p.primary));
  const [a, b] = await Promise.all([
    startCluster(`p${oldest}a`, { pgBin: pgBinFor(oldest) }),
    startCluster('p15b'),
  ]);
  started.push(a, b);
  const clients: pg.Client[] = [];
  try {
    await query(a, 'postgres', 'CREATE DATABASE pa');
    await query(
      b,
      'postgres',
      "CREATE DATABASE pb ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8' TEMPLATE template0",
    );
    await query(
      b,
      'postgres',
      "CREATE DATABASE pc ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    );
    // abstime went away in 12: only an older primary can have such a column.
    const removedType = oldest < 12 ? ', since abstime' : '';
    await query(
      a,
      'pa',
      `CREATE EXTENSION citext; CREATE TABLE public.t (id int PRIMARY KEY, name citext, tags citext[]${removedType})`,
    );
    const [primary, secondary, latin1] = [
      new pg.Client({ ...connection(a), database: 'pa' }),
      new pg.Client({ ...connection(b), database: 'pb' }),
      new pg.Client({ ...connection(b), database: 'pc' }),
    ];
    clients.push(primary, secondary, latin1);
    await Promise.all([primary.connect(), secondary.connect(), latin1.connect()]);
    const findings = await compareServers(primary, secondary, [{ schema: 'public', name: 't' }]);
    const finding = (item: string) => findings.find((f) => f.item === item)!;
    assert.deepEqual(finding('same encoding'), { item: 'same encoding', ok: true, detail: 'UTF8' });
    assert.equal(finding('same collation').ok, false);
    assert.match(
      finding('same collation').detail,
      /^primary LC_COLLATE C, LC_CTYPE C; secondary LC_COLLATE C\.utf8, LC_CTYPE C\.utf8: /,
    );
    const encoding = (await compareServers(primary, latin1, [{ schema: 'public', name: 't' }])).find(
      (f) => f.item === 'same encoding',
    )!;
    assert.equal(encoding.ok, false);
    assert.match(encoding.detail, /^primary UTF8, secondary LATIN1: /);
    assert.equal(finding('extensions on the secondary').ok, false);
    assert.match(finding('extensions on the secondary').fix!, /On the secondary: CREATE EXTENSION "citext";/);
    if (oldest < 12) {
      assert.equal(finding('column types exist on the secondary').ok, false);
      assert.match(
        finding('column types exist on the secondary').detail,
        /^not on the secondary: abstime \(public\.t\.since\)$/,
      );
    }
    await secondary.query('CREATE EXTENSION citext');
    const fixed = await compareServers(primary, secondary, [{ schema: 'public', name: 't' }]);
    assert.deepEqual(
      fixed.find((f) => f.item === 'extensions on the secondary'),
      { item: 'extensions on the secondary', ok: true, detail: 'present: citext' },
    );
  } finally {
    for (const client of clients) await client.end().catch(() => undefined);
    for (const cluster of [a, b]) stopCluster(cluster);
  }
});

// npm run test:versions over the whole matrix (scripts/run-tests.js sets BUCARDO_CONSOLE_VERSION_MATRIX):
// a pair of the table that did not pass fails the matrix; when all did, the run's date and commit are
// written to the table's file (commit it), and preflight prints that date as the matrix's last run.
test(
  'the version matrix: every pair of its table passed in this run, which becomes its last run',
  {
    skip:
      process.env['BUCARDO_CONSOLE_VERSION_MATRIX'] !== '1' &&
      'only for the whole matrix (npm run test:versions)',
  },
  () => {
    const matrix = versionMatrix();
    const missing = matrix.pairs
      .filter((p) => !p.refused && !passed.has(`${p.primary}:${p.secondary}`))
      .map((p) => `${p.primary} → ${p.secondary}`);
    assert.deepEqual(missing, [], `pairs of ${VERSION_MATRIX_FILE} that did not pass in this run`);
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const lastRun = { date: new Date().toISOString().slice(0, 10), commit };
    writeFileSync(VERSION_MATRIX_FILE, `${JSON.stringify({ ...matrix, lastRun }, null, 2)}\n`);
    console.log(
      `  version matrix: ${passed.size} pair(s) passed; last run recorded as ${lastRun.date} (${commit})`,
    );
  },
);

function connection(cluster: ClusterInfo): pg.ClientConfig {
  return { host: cluster.host, port: cluster.port, user: 'postgres' };
}
