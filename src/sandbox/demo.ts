// `node wrapper.js --demo`: three local clusters A, B and C with sample data, configs for A→B and
// B→C, the shell on both (c1./c2.), and everything stopped when the shell exits.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { CliOptions } from '../shell/args.js';
import { CommandOptions } from '../core/arguments.js';
import type { Job } from '../core/job.js';
import { style, write, writeError } from '../shell/output.js';
import { isProcessAlive, stopProcessesIn } from '../core/process.js';
import { PG_BIN, startCluster, stopAllClusters, type ClusterInfo } from './cluster.js';
import { startPooler, type PoolerInfo } from './pgbouncer.js';
import { SAMPLE_SCHEMA, sampleData } from './sample-data.js';
import { pgBinFor, SYSTEM_MAJOR } from './versions.js';

function psql(cluster: ClusterInfo, database: string, sql: string): void {
  execFileSync(
    path.join(PG_BIN, 'psql'),
    [
      '-h',
      cluster.host,
      '-p',
      String(cluster.port),
      '-U',
      'postgres',
      '-d',
      database,
      '-v',
      'ON_ERROR_STOP=1',
      '-qAtX',
    ],
    { input: sql, stdio: ['pipe', 'ignore', 'pipe'] },
  );
}

/**
 * Every plugin the demo's walk-through uses is enabled: retry (triggers under a lock timeout),
 * indexes (sales.orders is over 128 kB even with DEMO_ORDERS=5000), mat_views, cutover (a short
 * settle time: the demo is not under load). Not concurrency: each hop's metadata database sits in a
 * cluster of its own, so nothing clashes.
 */
export function demoConfig(
  name: string,
  primary: ClusterInfo,
  secondary: ClusterInfo,
  dir: string,
  cascade: { primary: boolean; secondary: boolean },
  metadata: ClusterInfo = primary,
  pooler?: DemoPooler,
): string {
  // With the pooler the application reaches A through, cutover.finish pauses it, repoints it at B
  // and resumes it: no question about writes, no client error (docs/cutover.md#with-a-pooler-in-front).
  const poolerLine = pooler
    ? `\n  pgbouncer: {host: ${pooler.host}, port: ${pooler.port}, user: ${pooler.adminUser}, passfile: ${pooler.passfile}, databases: [shop], config_file: ${pooler.configFile}}`
    : '';
  return `# Demo job ${name}: written by node wrapper.js --demo (see configs/example.yml for every key)
plugins: [bucardo, retry, indexes, mat_views, cutover]
databases:
  bucardo:   {host: ${metadata.host}, port: ${metadata.port}, database_owner: bucardo, install_user: postgres, fallback_db: postgres}
  primary:   {host: ${primary.host}, port: ${primary.port}, dbname: shop, database_owner: postgres, cascade: ${cascade.primary}}
  secondary: {host: ${secondary.host}, port: ${secondary.port}, dbname: shop, database_owner: postgres, cascade: ${cascade.secondary}}
bucardo:
  replication_name: ${name}
  copy_data: empty
  asynchronous_kicking: true
  kick_interval: 0.2
  pid_dir: ${path.join(dir, name, 'run')}
  log_dir: ${path.join(dir, name, 'log')}
  state_dir: ${path.join(dir, name, 'state')}
retry: {timeout: 2000, attempts: 5, backoff: 500}
indexes: {larger_than: 128 kB, jobs: 2}
mat_views: {jobs: 2}
cutover:
  settle_time: 2
  max_lag: 5
  drain_timeout: 60${poolerLine}
`;
}

/** The walk-through printed under the sandbox's addresses (docs/demo.md explains each step). */
export function demoBanner(b: ClusterInfo, pooler?: DemoPooler): string[] {
  const psqlB = `psql -h ${b.host} -p ${b.port} -U postgres shop`;
  const finish = pooler
    ? '    c1.cutover.finish                                               PAUSE the pooler, final check, point it at B, RESUME'
    : '    c1.cutover.finish                                               the guided switch (answer y once writes stop)';
  return [
    '  The whole migration, A -> B (c1), with B -> C (c2) cascading behind it:',
    '    c1.bucardo.install  c1.retry.install  c1.retry.add_triggers     record A, put triggers on it table by table',
    "    c2.bucardo.install  c2.retry.install  c2.retry.add_triggers     the cascade: B is the second hop's primary",
    '    c1.indexes.install  c1.indexes.drop                             the copy into B runs without secondary indexes',
    '    c1.bucardo.start  c1.bucardo.wait_for_copy                     watch: c1.status, or status --watch in another shell',
    '    c1.indexes.recreate  c1.mat_views.refresh  c2.bucardo.start  c2.bucardo.wait_for_copy',
    '    c1.cutover.verify                                               A and B compared, key range by key range',
    `    break a row on B:  ${psqlB} -c "UPDATE sales.orders SET amount = 0 WHERE id = 7"`,
    '    c1.cutover.verify  c1.cutover.repair  c1.cutover.check           found, re-applied, ready',
    finish,
    '    c2.status                                                       B -> C keeps replicating after A is retired',
  ];
}

/** Stops every Bucardo daemon and kicker the demo's jobs started, by the pids in their own pid dirs. */
function stopDemoDaemons(dir: string): void {
  for (const job of ['a_to_b', 'b_to_c']) stopProcessesIn(path.join(dir, job, 'run'));
}

async function stopJobs(jobs: Job[]): Promise<void> {
  const { stopDaemon } = await import('../core/bucardo/daemon.js');
  const { Activity } = await import('../core/activity.js');
  const { withCommandDatabases } = await import('../core/context.js');
  for (const job of jobs) {
    const activity = new Activity();
    await withCommandDatabases(activity, async (databases) => {
      const context: Parameters<typeof stopDaemon>[1] = {
        job,
        jobs,
        activity,
        db: databases.for(job),
        databases: (other: Job) => databases.for(other),
        forJob: () => context,
        progress: () => undefined,
        log: () => undefined,
        options: new CommandOptions(),
        args: [],
        prompt: undefined as never,
        // Stopping a daemon announces nothing.
        announce: { tableCopied: async () => [] },
      };
      await stopDaemon(job, context).catch(() => undefined);
    });
  }
}

/**
 * The one place the demo's clusters are made: A, B and C with the sample schema, rows on A only.
 * (A later option choosing the primary's PostgreSQL version belongs here.)
 */
async function startDemoClusters(
  dir: string,
  primaryVersion?: number,
): Promise<[ClusterInfo, ClusterInfo, ClusterInfo]> {
  const pgBinOf = (name: string) =>
    name === 'A' && primaryVersion ? { pgBin: pgBinFor(primaryVersion) } : {};
  const [a, b, c] = await Promise.all(
    ['A', 'B', 'C'].map((name) => startCluster(name, { parentDir: dir, ...pgBinOf(name) })),
  );
  for (const cluster of [a!, b!, c!]) {
    psql(cluster, 'postgres', 'CREATE DATABASE shop');
    psql(cluster, 'shop', SAMPLE_SCHEMA);
  }
  psql(a!, 'shop', sampleData(Number(process.env['DEMO_ORDERS'] ?? 300_000)));
  return [a!, b!, c!];
}

/** The demo's pooler and the libpq password file that logs in to it (its admin user and postgres). */
export type DemoPooler = PoolerInfo & { passfile: string };

/**
 * The application's way in: a PgBouncer (Debian's) in front of A's shop, for the cutover without a
 * write stop by hand. Its password is made here and written only to a 0600 password file in the
 * sandbox, which the job's config names (libpq's convention; never a command line or a log).
 */
async function startDemoPooler(a: ClusterInfo, dir: string): Promise<DemoPooler> {
  const password = randomBytes(12).toString('hex');
  const pooler = await startPooler({
    databases: { shop: { host: a.host, port: a.port, dbname: 'shop' } },
    users: { pgbouncer: password, postgres: password },
    adminUser: 'pgbouncer',
  });
  const passfile = path.join(dir, 'pooler.pgpass');
  writeFileSync(
    passfile,
    ['pgbouncer', 'postgres'].map((user) => `${pooler.host}:${pooler.port}:*:${user}:${password}\n`).join(''),
    { mode: 0o600 },
  );
  return { ...pooler, passfile };
}

export async function runDemo(options: CliOptions): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bucardo-console-demo-'));
  // The clusters live inside, and their server runs as the postgres user: it must be able to pass through.
  chmodSync(dir, 0o711);
  let pooler: DemoPooler | undefined;
  const cleanup = () => {
    stopDemoDaemons(dir);
    // By its pid (SIGINT: it closes its connections and exits at once), never by name.
    if (pooler && isProcessAlive(pooler.pid)) process.kill(pooler.pid, 'SIGINT');
    stopAllClusters();
    rmSync(dir, { recursive: true, force: true });
    if (pooler) rmSync(pooler.dir, { recursive: true, force: true });
  };
  let jobs: Job[] = [];
  process.on('exit', cleanup);
  try {
    write(
      style.heading('Starting the demo sandbox: three PostgreSQL clusters A, B and C on this machine...'),
    );
    // --primary-version: A on an old (or newer) major version, as the primary of an upgrade. The sample
    // schema has a primary key on a partitioned table, which PostgreSQL 10 cannot create.
    if (options.primaryVersion !== undefined && options.primaryVersion < 11) {
      throw new Error(
        `--primary-version ${options.primaryVersion}: the demo's sample schema needs PostgreSQL 11 or later` +
          ' (a primary key on a partitioned table); the test bed runs 10 (npm run test:versions).',
      );
    }
    const [a, b, c] = await startDemoClusters(dir, options.primaryVersion);
    pooler = await startDemoPooler(a, dir);
    for (const name of ['a_to_b', 'b_to_c']) mkdirSync(path.join(dir, name), { recursive: true });
    const aToB = path.join(dir, 'a_to_b.yml');
    const bToC = path.join(dir, 'b_to_c.yml');
    // Bucardo's metadata database needs PL/Perl, which only Debian's server has: on C (B holds b_to_c's)
    // when A runs another version.
    const aToBMetadata = options.primaryVersion && options.primaryVersion !== SYSTEM_MAJOR ? c : undefined;
    writeFileSync(
      aToB,
      demoConfig('a_to_b', a, b, dir, { primary: false, secondary: true }, aToBMetadata, pooler),
    );
    writeFileSync(bToC, demoConfig('b_to_c', b, c, dir, { primary: true, secondary: false }));
    write(
      `  A: 127.0.0.1:${a.port}  B: 127.0.0.1:${b.port}  C: 127.0.0.1:${c.port}  (database "shop", user postgres)`,
    );
    write(
      `  The application's way in, PgBouncer in front of A (pid ${pooler.pid}): PGPASSFILE=${pooler.passfile} psql -h ${pooler.host} -p ${pooler.port} -U postgres shop`,
    );
    write(`  Configs: ${aToB} (c1) and ${bToC} (c2)`);
    for (const line of demoBanner(b, pooler)) write(line);
    write(`  Everything is stopped and removed when you exit.\n`);
    const { Session } = await import('../shell/session.js');
    const session = await Session.load([aToB, bToC]);
    jobs = session.jobs;
    if (options.list) {
      const { runList } = await import('../shell/list.js');
      return await runList(session, options.list, options.json);
    }
    const { runShell } = await import('../shell/repl.js');
    return await runShell(session);
  } catch (error) {
    writeError(`The demo could not start: ${(error as Error).message}`);
    return 1;
  } finally {
    write(style.dim('Stopping the demo: Bucardo daemons, kickers and clusters...'));
    // A clean stop first (the stop file stops the controllers and workers too); pids are the fallback.
    await stopJobs(jobs);
    process.off('exit', cleanup);
    cleanup();
  }
}
