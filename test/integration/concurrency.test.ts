// The concurrency plugin on real clusters and the real Bucardo daemon: two jobs with their own
// metadata databases in one cluster replicate side by side; stopping or uninstalling one leaves the
// other working; nothing under /usr or /etc changes; wrong orders and clashes are refused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import yaml from 'js-yaml';
import { compareJobs } from '../../plugins/concurrency/clashes.js';
import type { JobFootprint } from '../../plugins/concurrency/records.js';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  freshDatabase,
  query,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const SYSTEM_FILES = ['/usr/bin/bucardo', '/usr/share/bucardo/bucardo.schema', '/etc/bucardorc'];
const SCHEMA = `CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL, added timestamptz DEFAULT now());`;
const SOURCES = ['conc_a', 'conc_x', 'conc_m'];
const TARGETS = ['conc_b', 'conc_y', 'conc_n'];
const METADATA = [
  'bucardo_conc_ab',
  'bucardo_conc_xy',
  'bucardo_conc_w1',
  'bucardo_conc_w2',
  'bucardo_conc_p1',
  'bucardo_conc_p2',
  'bucardo_conc_p3',
];

const registry = tempDir('registry');
const env = { BUCARDO_CONSOLE_JOB_REGISTRY: registry };
const tool = (args: string[], extraEnv: Record<string, string> = {}) =>
  runTool(args, { env: { ...env, ...extraEnv } });

let a: ClusterInfo;
let b: ClusterInfo;
let before_: Record<string, string>;
type Config = ReturnType<typeof writeJobConfig>;
let ab: Config;
let xy: Config;

function checksums(): Record<string, string> {
  return Object.fromEntries(
    SYSTEM_FILES.map((file) => [
      file,
      existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'missing',
    ]),
  );
}

function output(result: ToolResult): string {
  return `${result.stdout}\n${result.stderr}`;
}

function jobConfig(
  name: string,
  primary: string,
  secondary: string,
  dbname: string,
  options: { asynchronousKicking?: boolean; cascade?: boolean } = {},
): Config {
  return writeJobConfig({
    name,
    plugins: ['bucardo', 'concurrency'],
    primary: { cluster: a, dbname: primary, cascade: options.cascade ?? false },
    secondary: { cluster: b, dbname: secondary },
    metadata: a,
    asynchronousKicking: options.asynchronousKicking ?? false,
    extra: { concurrency: { bucardo_dbname: dbname } },
  });
}

/** Edits a written config as an operator would edit the YAML. */
function editConfig(file: string, change: (config: Record<string, any>) => void): void {
  const config = yaml.load(readFileSync(file, 'utf8')) as Record<string, any>;
  change(config);
  writeFileSync(file, yaml.dump(config));
}

async function databaseExists(name: string): Promise<boolean> {
  return (await query(a, 'postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

async function syncsIn(metadataDb: string): Promise<string[]> {
  return (await query<{ name: string }>(a, metadataDb, 'SELECT name FROM bucardo.sync ORDER BY 1')).map(
    (r) => r.name,
  );
}

function livePid(pidDir: string): number | undefined {
  const pid = readPidFile(path.join(pidDir, 'bucardo.mcp.pid'));
  return pid !== undefined && isProcessAlive(pid) ? pid : undefined;
}

async function insertRow(database: string, label: string): Promise<void> {
  await query(a, database, 'INSERT INTO public.items (label) VALUES ($1)', [label]);
}

async function arrives(database: string, label: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => (await query(b, database, 'SELECT 1 FROM public.items WHERE label = $1', [label])).length > 0,
    timeoutMs,
    `row '${label}' in ${database}`,
  );
}

async function present(database: string, label: string): Promise<boolean> {
  return (await query(b, database, 'SELECT 1 FROM public.items WHERE label = $1', [label])).length > 0;
}

before(async () => {
  before_ = checksums();
  ({ a, b } = await clusters());
  for (const name of METADATA) await dropDatabase(a, name);
  for (const name of SOURCES) {
    await freshDatabase(a, name, SCHEMA);
    await query(
      a,
      name,
      `INSERT INTO public.items (label) SELECT '${name}-seed-' || g FROM generate_series(1, 50) g`,
    );
  }
  for (const name of TARGETS) await freshDatabase(b, name, SCHEMA);
  ab = jobConfig('conc_ab', 'conc_a', 'conc_b', 'bucardo_conc_ab');
  // The second job kicks asynchronously: its kicker must find its own metadata database too.
  xy = jobConfig('conc_xy', 'conc_x', 'conc_y', 'bucardo_conc_xy', { asynchronousKicking: true });
});

after(async () => {
  // Daemons are stopped by the harness (by the pids in each job's pid dir); then the databases go.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const name of [...METADATA]) await dropDatabase(a, name).catch(() => undefined);
  for (const name of SOURCES) await dropDatabase(a, name).catch(() => undefined);
  for (const name of TARGETS) await dropDatabase(b, name).catch(() => undefined);
});

test('concurrency.bucardo_dbname is checked when the config loads', async () => {
  const cases: [unknown, RegExp][] = [
    [undefined, /concurrency.bucardo_dbname: is required with the concurrency plugin/],
    ['Bucardo_AB', /concurrency.bucardo_dbname: 'Bucardo_AB' must be lower case/],
    ['bucardo', /concurrency.bucardo_dbname: 'bucardo' is Bucardo's default name/],
    ['conc_a', /concurrency.bucardo_dbname: 'conc_a' is the primary database itself/],
    ['postgres', /concurrency.bucardo_dbname: 'postgres' is databases.bucardo.fallback_db/],
  ];
  for (const [name, pattern] of cases) {
    const job = jobConfig('conc_cfg', 'conc_a', 'conc_b', 'placeholder');
    editConfig(job.file, (c) => {
      if (name === undefined) delete c['concurrency'];
      else c['concurrency'].bucardo_dbname = name;
    });
    const result = await tool(['-c', job.file, '-l', 'concurrency.install']);
    assert.equal(result.code, 2, output(result));
    assert.match(output(result), pattern);
  }
});

test('localhost and 127.0.0.1 are one server; a chain without cascade flags is a warning', () => {
  const spot = (host: string, dbname: string, cascade = false) => ({ host, port: 5432, dbname, cascade });
  const footprint = (
    name: string,
    host: string,
    primary: string,
    secondary: string,
    cascade: { primary?: boolean; secondary?: boolean } = {},
  ): JobFootprint => ({
    replicationName: name,
    configFile: `/etc/jobs/${name}.yml`,
    metadata: { host, port: 5432, dbname: `bucardo_${name}` },
    pidDir: `/run/${name}`,
    logDir: '/var/log/bucardo',
    stateDir: `/state/${name}`,
    primary: spot(host, primary, cascade.primary),
    secondary: spot(host, secondary, cascade.secondary),
  });
  const mine = footprint('ab', 'localhost', 'a', 'b');
  const same = compareJobs(mine, [
    {
      footprint: {
        ...footprint('cd', '127.0.0.1', 'a', 'd'),
        metadata: { host: '127.0.0.1', port: 5432, dbname: 'bucardo_ab' },
      },
      origin: 'job cd',
    },
  ]);
  assert.deepEqual(same.clashes.map((c) => c.kind).sort(), ['metadata database', 'primary']);
  const chain = compareJobs(mine, [{ footprint: footprint('bc', '127.0.0.1', 'b', 'c'), origin: 'job bc' }]);
  assert.deepEqual(chain.clashes, []);
  assert.match(
    chain.warnings.join(),
    /secondary localhost:5432\/b is the primary of job bc, but it is not marked as a cascade middle hop/,
  );
  const cascade = compareJobs(footprint('ab', 'localhost', 'a', 'b', { secondary: true }), [
    { footprint: footprint('bc', '127.0.0.1', 'b', 'c', { primary: true }), origin: 'job bc' },
  ]);
  assert.deepEqual([cascade.clashes, cascade.warnings], [[], []]);
});

test('bucardo.install before concurrency.install is refused and creates no metadata database', async () => {
  const defaultExisted = await databaseExists('bucardo');
  const result = await tool(['-c', ab.file, '-l', 'bucardo.install']);
  assert.equal(result.code, 1, output(result));
  assert.match(
    output(result),
    /conc_ab uses the concurrency plugin \(metadata database 'bucardo_conc_ab'\) but has not been prepared: run concurrency.install before bucardo.install/,
  );
  assert.equal(await databaseExists('bucardo_conc_ab'), false);
  assert.equal(await databaseExists('bucardo'), defaultExisted, 'nothing may land in the default database');
});

test('two jobs with their own metadata databases in one cluster replicate at the same time', async () => {
  for (const job of [ab, xy]) {
    const result = await tool([
      '-c',
      job.file,
      '-l',
      'concurrency.install bucardo.install bucardo.add_triggers bucardo.start',
    ]);
    assert.equal(result.code, 0, output(result));
    assert.match(result.stdout, /Check: bucardo commands use metadata database bucardo_conc_(ab|xy) Pass/);
  }
  assert.deepEqual(await syncsIn('bucardo_conc_ab'), ['conc_ab']);
  assert.deepEqual(await syncsIn('bucardo_conc_xy'), ['conc_xy']);
  const piddirs = await query<{ setting: string }>(
    a,
    'bucardo_conc_ab',
    "SELECT setting FROM bucardo.bucardo_config WHERE name = 'piddir'",
  );
  assert.equal(piddirs[0]!.setting, ab.pidDir);

  const abPid = livePid(ab.pidDir);
  const xyPid = livePid(xy.pidDir);
  assert.ok(abPid && xyPid && abPid !== xyPid, `two live daemons: ${abPid}, ${xyPid}`);
  // Both daemons are connected, each to its own metadata database.
  const sessions = await query<{ datname: string; n: string }>(
    a,
    'postgres',
    "SELECT datname, count(*)::text AS n FROM pg_stat_activity WHERE datname IN ('bucardo_conc_ab', 'bucardo_conc_xy') GROUP BY 1 ORDER BY 1",
  );
  assert.deepEqual(
    sessions.map((s) => s.datname),
    ['bucardo_conc_ab', 'bucardo_conc_xy'],
  );

  await waitFor(
    async () =>
      (await query<{ n: number }>(b, 'conc_b', 'SELECT count(*)::int AS n FROM public.items'))[0]!.n === 50,
    30_000,
    'initial copy into conc_b',
  );
  await waitFor(
    async () =>
      (await query<{ n: number }>(b, 'conc_y', 'SELECT count(*)::int AS n FROM public.items'))[0]!.n === 50,
    30_000,
    'initial copy into conc_y',
  );
  await insertRow('conc_a', 'ab-live-1');
  await insertRow('conc_x', 'xy-live-1');
  await Promise.all([arrives('conc_b', 'ab-live-1'), arrives('conc_y', 'xy-live-1')]);
  assert.equal(await present('conc_y', 'ab-live-1'), false, 'no cross-talk between the jobs');
  assert.ok(
    existsSync(path.join(ab.logDir, 'log.bucardo.conc_ab')) &&
      existsSync(path.join(xy.logDir, 'log.bucardo.conc_xy')),
    'each job logs to its own file',
  );
  assert.ok(existsSync(path.join(xy.pidDir, 'kicker.conc_xy.pid')), 'the asynchronous job runs its kicker');
});

test('stopping one job leaves the other replicating', async () => {
  const xyPid = livePid(xy.pidDir);
  const result = await tool(['-c', ab.file, '-l', 'bucardo.stop']);
  assert.equal(result.code, 0, output(result));
  assert.equal(livePid(ab.pidDir), undefined);
  assert.equal(livePid(xy.pidDir), xyPid, 'the other daemon is untouched');
  for (let i = 1; i <= 3; i++) {
    await insertRow('conc_x', `xy-after-stop-${i}`);
    await insertRow('conc_a', `ab-after-stop-${i}`);
    await arrives('conc_y', `xy-after-stop-${i}`);
  }
  assert.equal(await present('conc_b', 'ab-after-stop-1'), false, 'the stopped job replicates nothing');
});

test("uninstalling one job leaves the other's metadata database, daemon and files intact", async () => {
  const xyPid = livePid(xy.pidDir);
  const xyFiles = [
    path.join(xy.pidDir, 'bucardo.mcp.pid'),
    path.join(xy.pidDir, 'kicker.conc_xy.pid'),
    path.join(xy.logDir, 'log.bucardo.conc_xy'),
    path.join(xy.dir, 'state', 'concurrency.json'),
    path.join(registry, 'conc_xy.json'),
  ];
  const logSize = statSync(xyFiles[2]!).size;
  const markerBefore = readFileSync(xyFiles[3]!, 'utf8');

  const early = await tool(['-c', ab.file, '-l', 'concurrency.uninstall']);
  assert.equal(early.code, 1, output(early));
  assert.match(
    output(early),
    /The metadata database 'bucardo_conc_ab' of conc_ab still exists .* Run bucardo.uninstall first/,
  );

  const result = await tool(['-c', ab.file, '-l', 'bucardo.uninstall concurrency.uninstall']);
  assert.equal(result.code, 0, output(result));
  assert.equal(await databaseExists('bucardo_conc_ab'), false);
  assert.equal(existsSync(path.join(registry, 'conc_ab.json')), false);
  assert.equal(existsSync(path.join(ab.dir, 'state', 'concurrency.json')), false);

  assert.deepEqual(await syncsIn('bucardo_conc_xy'), ['conc_xy']);
  assert.equal(livePid(xy.pidDir), xyPid, 'the other daemon is untouched');
  for (const file of xyFiles) assert.ok(existsSync(file), `${file} is still there`);
  assert.equal(readFileSync(xyFiles[3]!, 'utf8'), markerBefore);
  await insertRow('conc_x', 'xy-after-uninstall');
  await arrives('conc_y', 'xy-after-uninstall');
  assert.ok(statSync(xyFiles[2]!).size >= logSize);

  // Back to unprepared: the uninstalled job's bucardo commands refuse instead of using 'bucardo'.
  const start = await tool(['-c', ab.file, '-l', 'bucardo.start']);
  assert.equal(start.code, 1, output(start));
  assert.equal(livePid(ab.pidDir), undefined);
  assert.match(output(start), /has not been prepared: run concurrency.install before bucardo.install/);
});

test('configs that would share a metadata database, pid dir, replication name or primary are refused', async () => {
  const refused = async (args: string[], pattern: RegExp, extraEnv: Record<string, string> = {}) => {
    const result = await tool(args, extraEnv);
    assert.equal(result.code, 1, output(result));
    assert.match(output(result), pattern);
    assert.match(output(result), /Nothing was changed/);
  };
  const sameDb = jobConfig('conc_m1', 'conc_m', 'conc_n', 'bucardo_conc_xy');
  await refused(
    ['-c', sameDb.file, '-l', 'concurrency.install'],
    /metadata database 'bucardo_conc_xy' on 127\.0\.0\.1:\d+ is also used by job conc_xy/,
  );
  assert.equal(
    existsSync(path.join(sameDb.dir, 'state', 'concurrency.json')),
    false,
    'a refused job is not prepared',
  );

  const samePidDir = jobConfig('conc_m2', 'conc_m', 'conc_n', 'bucardo_conc_m2');
  editConfig(samePidDir.file, (c) => {
    c['bucardo'].pid_dir = xy.pidDir;
  });
  await refused(
    ['-c', samePidDir.file, '-l', 'concurrency.install'],
    new RegExp(`pid dir ${xy.pidDir} is also used by job conc_xy`),
  );

  const sameName = jobConfig('conc_xy', 'conc_m', 'conc_n', 'bucardo_conc_m3');
  await refused(
    ['-c', sameName.file, '-l', 'concurrency.install'],
    /replication name 'conc_xy' is also used by job conc_xy \(prepared from .*xy/,
  );

  const samePrimary = jobConfig('conc_m4', 'conc_x', 'conc_n', 'bucardo_conc_m4');
  await refused(
    ['-c', samePrimary.file, '-l', 'concurrency.install'],
    /primary 127\.0\.0\.1:\d+\/conc_x is also the primary of job conc_xy .*share its bucardo_delta triggers and delta tables/,
  );

  // Two configs of one session are compared with each other, installed or not.
  const first = jobConfig('conc_s1', 'conc_m', 'conc_n', 'bucardo_conc_s');
  const second = jobConfig('conc_s2', 'conc_a', 'conc_b', 'bucardo_conc_s');
  await refused(
    ['-c1', first.file, '-c2', second.file, '-l', 'c1.concurrency.install'],
    /metadata database 'bucardo_conc_s' .* is also used by c2 \(conc_s2\), loaded in this session/,
  );

  // A job another user installed is not in this user's registry: the metadata server itself tells.
  const emptyRegistry = { BUCARDO_CONSOLE_JOB_REGISTRY: tempDir('registry-empty') };
  await refused(
    ['-c', sameDb.file, '-l', 'concurrency.install'],
    /metadata database 'bucardo_conc_xy' on 127\.0\.0\.1:\d+ already holds another Bucardo job \(relgroup\/sync conc_xy\)/,
    emptyRegistry,
  );
  await refused(
    ['-c', samePidDir.file, '-l', 'concurrency.install'],
    new RegExp(
      `pid dir ${xy.pidDir} is the pid dir of the Bucardo job\\(s\\) in metadata database 'bucardo_conc_xy'`,
    ),
    emptyRegistry,
  );
  await refused(
    ['-c', samePrimary.file, '-l', 'concurrency.install'],
    /primary 127\.0\.0\.1:\d+\/conc_x is also a source of the Bucardo job\(s\) in metadata database 'bucardo_conc_xy'/,
    emptyRegistry,
  );
});

test('a cascade middle hop both jobs declare may be shared', async () => {
  const first = jobConfig('conc_h1', 'conc_m', 'conc_n', 'bucardo_conc_h1', { cascade: true });
  const second = jobConfig('conc_h2', 'conc_m', 'conc_b', 'bucardo_conc_h2', { cascade: true });
  const result = await tool([
    '-c1',
    first.file,
    '-c2',
    second.file,
    '-l',
    'c1.concurrency.install c2.concurrency.install c1.concurrency.uninstall c2.concurrency.uninstall',
  ]);
  assert.equal(result.code, 0, output(result));
  editConfig(second.file, (c) => {
    c['databases'].primary.cascade = false;
  });
  const oneSided = await tool(['-c1', first.file, '-c2', second.file, '-l', 'c1.concurrency.install']);
  assert.equal(oneSided.code, 1, output(oneSided));
  assert.match(output(oneSided), /only this job marks it as a cascade middle hop/);
});

test('a prepared job refuses a disabled plugin, a changed name and metadata left in another database', async () => {
  const job = jobConfig('conc_w', 'conc_m', 'conc_n', 'bucardo_conc_w1');
  const install = await tool(['-c', job.file, '-l', 'concurrency.install bucardo.install']);
  assert.equal(install.code, 0, output(install));

  editConfig(job.file, (c) => {
    c['plugins'] = ['bucardo'];
  });
  const disabled = await tool(['-c', job.file, '-l', 'bucardo.uninstall']);
  assert.notEqual(disabled.code, 0, output(disabled));
  assert.match(
    output(disabled),
    /prepared by concurrency.install for the metadata database 'bucardo_conc_w1' .* but 'concurrency' is not in plugins/,
  );
  assert.ok(await databaseExists('bucardo_conc_w1'), 'nothing was uninstalled');
  // The same without the concurrency section left in the file: the plugin still refuses the job.
  let section: unknown;
  editConfig(job.file, (c) => {
    section = c['concurrency'];
    delete c['concurrency'];
  });
  const noSection = await tool(['-c', job.file, '-l', 'bucardo.uninstall']);
  assert.equal(noSection.code, 2, output(noSection));
  assert.match(
    output(noSection),
    /prepared by concurrency.install for the metadata database 'bucardo_conc_w1' .* but 'concurrency' is not in plugins/,
  );
  assert.ok(await databaseExists('bucardo_conc_w1'), 'nothing was uninstalled');
  editConfig(job.file, (c) => {
    c['concurrency'] = section;
  });

  editConfig(job.file, (c) => {
    c['plugins'] = ['bucardo', 'concurrency'];
    c['concurrency'].bucardo_dbname = 'bucardo_conc_w2';
  });
  const renamed = await tool(['-c', job.file, '-l', 'bucardo.start']);
  assert.equal(renamed.code, 1, output(renamed));
  assert.match(
    output(renamed),
    /prepared by concurrency.install for the metadata database 'bucardo_conc_w1' .* but concurrency.bucardo_dbname now says 'bucardo_conc_w2'/,
  );
  const reprepare = await tool(['-c', job.file, '-l', 'concurrency.install']);
  assert.equal(reprepare.code, 1, output(reprepare));
  assert.match(output(reprepare), /prepared for the metadata database 'bucardo_conc_w1', which still exists/);

  // With the marker lost (a new state dir), the metadata server still shows where the job lives.
  rmSync(path.join(job.dir, 'state', 'concurrency.json'));
  const lost = await tool(['-c', job.file, '-l', 'concurrency.install']);
  assert.equal(lost.code, 1, output(lost));
  assert.match(
    output(lost),
    /already installed in metadata database 'bucardo_conc_w1' .* not in 'bucardo_conc_w2'/,
  );

  editConfig(job.file, (c) => {
    c['concurrency'].bucardo_dbname = 'bucardo_conc_w1';
  });
  const cleanup = await tool([
    '-c',
    job.file,
    '-l',
    'concurrency.install bucardo.uninstall concurrency.uninstall',
  ]);
  assert.equal(cleanup.code, 0, output(cleanup));
  assert.equal(await databaseExists('bucardo_conc_w1'), false);
  assert.equal(await databaseExists('bucardo_conc_w2'), false);
});

test('bucardo.uninstall alone frees the primary for a new job; an entry whose metadata database was dropped by hand is pruned', async () => {
  const entry = (name: string) => path.join(registry, `${name}.json`);
  const first = jobConfig('conc_p1', 'conc_m', 'conc_n', 'bucardo_conc_p1');
  const installed = await tool(['-c', first.file, '-l', 'concurrency.install bucardo.install']);
  assert.equal(installed.code, 0, output(installed));
  assert.match(output(installed), /concurrency: conc_p1 recorded as installed in /);
  assert.ok(
    JSON.parse(readFileSync(entry('conc_p1'), 'utf8')).installedAt,
    'bucardo.install marks the entry installed',
  );

  // Only bucardo.uninstall, as an operator who is done with the job would run it.
  const removed = await tool(['-c', first.file, '-l', 'bucardo.uninstall']);
  assert.equal(removed.code, 0, output(removed));
  assert.match(output(removed), /concurrency: removed conc_p1's registry entry .*conc_p1\.json/);
  assert.equal(existsSync(entry('conc_p1')), false);

  // A new job on the same primary is not refused because of the removed one.
  const second = jobConfig('conc_p2', 'conc_m', 'conc_n', 'bucardo_conc_p2');
  const next = await tool(['-c', second.file, '-l', 'concurrency.install bucardo.install']);
  assert.equal(next.code, 0, output(next));
  assert.doesNotMatch(output(next), /conc_p1/);

  // Its metadata database dropped by hand: its entry stays behind, stale, and must not refuse a third job.
  await query(a, 'postgres', 'DROP DATABASE bucardo_conc_p2 WITH (FORCE)');
  assert.ok(existsSync(entry('conc_p2')));
  const third = jobConfig('conc_p3', 'conc_m', 'conc_n', 'bucardo_conc_p3');
  const pruned = await tool(['-c', third.file, '-l', 'concurrency.install']);
  assert.equal(pruned.code, 0, output(pruned));
  assert.match(
    output(pruned),
    /removed the stale registry entry of job conc_p2 \(.*conc_p2\.json\): its metadata database 'bucardo_conc_p2' no longer exists on 127\.0\.0\.1:\d+, though bucardo\.install installed it at /,
  );
  assert.equal(existsSync(entry('conc_p2')), false);
  assert.ok(existsSync(entry('conc_p3')));

  // A job that is prepared but not installed yet has no database either: it is not stale.
  const fourth = jobConfig('conc_p4', 'conc_m', 'conc_n', 'bucardo_conc_p4');
  const refused = await tool(['-c', fourth.file, '-l', 'concurrency.install']);
  assert.equal(refused.code, 1, output(refused));
  assert.match(output(refused), /primary 127\.0\.0\.1:\d+\/conc_m is also the primary of job conc_p3/);

  for (const job of [third, second, first]) {
    const cleanup = await tool(['-c', job.file, '-l', 'bucardo.uninstall concurrency.uninstall']);
    assert.equal(cleanup.code, 0, output(cleanup));
  }
  for (const name of ['conc_p1', 'conc_p2', 'conc_p3']) assert.equal(existsSync(entry(name)), false);
});

test('the last job stops and uninstalls cleanly; no file under /usr or /etc changed', async () => {
  const result = await tool(['-c', xy.file, '-l', 'bucardo.uninstall concurrency.uninstall']);
  assert.equal(result.code, 0, output(result));
  assert.equal(livePid(xy.pidDir), undefined);
  assert.equal(await databaseExists('bucardo_conc_xy'), false);
  assert.deepEqual(checksums(), before_);
  for (const name of ['conc_ab', 'conc_xy', 'conc_w']) {
    assert.equal(
      existsSync(path.join(homedir(), '.bucardo-console', 'installed-jobs', `${name}.json`)),
      false,
      'tests never write the real registry',
    );
  }
});
