// Driving the tool and the databases from tests and benchmarks: run wrapper.js as an operator
// would, write job configs, query a cluster, wait for a condition, compare tables.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import pg from 'pg';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { FIXTURE_PLUGINS, ROOT } from './paths.js';

/** Longest a test's own statement may run (the longest, loading test data, take seconds alone). */
const TEST_STATEMENT_TIMEOUT_MS = 300_000;

/**
 * Idle sessions of the test's own queries, per server and database, kept for a few seconds. On these
 * VMs a PostgreSQL backend's start costs some 25 ms of CPU (a fork and its page faults), and tests ask
 * thousands of short questions (waitFor polls five a second): a session per question was a large share
 * of the suite's CPU. Each query still gets a session of its own while it runs (one that blocks on a
 * lock does not hold up the next), and leaves it as a fresh one would: DISCARD ALL ends what it set,
 * locked or listened to, and a session that failed or ended inside a transaction is closed.
 */
const pools = new Map<string, pg.Pool>();

function poolFor(cluster: ClusterInfo, database: string): pg.Pool {
  // An SSL-only cluster takes TCP logins with SSL and a password only: the test's own sessions use its socket.
  const host = cluster.caFile ? cluster.socketDir : cluster.host;
  const key = `${host}:${cluster.port}/${database}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new pg.Pool({
      host,
      port: cluster.port,
      user: 'postgres',
      database,
      // A test's statement blocked by the code under test (a lock it holds) fails instead of hanging.
      statement_timeout: TEST_STATEMENT_TIMEOUT_MS,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 5_000,
      max: 50,
      // Idle sessions never keep a test file's process alive.
      allowExitOnIdle: true,
    });
    // An idle session ended by the server (a restart, DROP DATABASE ... WITH (FORCE), a terminated
    // backend) is dropped from the pool; nothing waits on it.
    pool.on('error', () => undefined);
    pools.set(key, pool);
  }
  return pool;
}

/** Closes the kept sessions of a server's databases other than `database` (bounded: 5 s). */
async function endOtherPools(cluster: ClusterInfo, database: string): Promise<void> {
  const host = cluster.caFile ? cluster.socketDir : cluster.host;
  const ending: Promise<void>[] = [];
  for (const [key, pool] of pools) {
    if (key.startsWith(`${host}:${cluster.port}/`) && key !== `${host}:${cluster.port}/${database}`) {
      pools.delete(key);
      ending.push(pool.end());
    }
  }
  // A pool with a query still running (one blocked on a lock) ends when it returns: not waited for.
  await Promise.race([Promise.all(ending), new Promise((r) => setTimeout(r, 5_000).unref())]);
}

/** A session that died while idle in the pool: the statement never reached the server. */
const deadSession = (error: unknown) =>
  /not queryable|Connection terminated|ECONNRESET|EPIPE/.test((error as Error).message ?? '') ||
  ['57P01', '57P02', '57P03'].includes((error as { code?: string }).code ?? '');

export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(
  cluster: ClusterInfo,
  database: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  // CREATE DATABASE ... TEMPLATE, DROP or ALTER DATABASE need nobody else on the database they name:
  // the idle sessions kept on that server's other databases go first (the server waits a few seconds
  // for a session that is ending).
  if (/\b(CREATE|DROP|ALTER)\s+DATABASE\b/i.test(text)) await endOtherPools(cluster, database);
  for (let attempt = 1; ; attempt++) {
    const client = await poolFor(cluster, database).connect();
    const pooled = usedSessions.has(client);
    let reusable = false;
    try {
      const rows = (await client.query<T>(text, params)).rows;
      // A query text that left a transaction open (BEGIN without COMMIT) fails DISCARD ALL: closed.
      await client.query('DISCARD ALL');
      reusable = true;
      usedSessions.add(client);
      return rows;
    } catch (error) {
      // A pooled session the server ended while it was idle: ask again on a new one, once.
      if (attempt === 1 && pooled && deadSession(error)) continue;
      throw error;
    } finally {
      client.release(!reusable);
    }
  }
}

/** Sessions that answered before: only such a one can have died while idle. */
const usedSessions = new WeakSet<pg.PoolClient>();
export interface JobOptions {
  name: string;
  plugins?: string[];
  primary: { cluster: ClusterInfo; dbname: string; cascade?: boolean };
  secondary: { cluster: ClusterInfo; dbname: string; cascade?: boolean };
  metadata?: ClusterInfo;
  copyData?: 'always' | 'never' | 'empty' | 'parallel';
  asynchronousKicking?: boolean;
  replicationObjects?: Record<string, string[]>;
  kickInterval?: number;
  /** More keys for the bucardo section (watchdog_seconds, lock_timeout, ...). */
  bucardoSettings?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

export interface WrittenJob {
  file: string;
  dir: string;
  pidDir: string;
  logDir: string;
}

/** Writes a job config in the original tool's format, with pid/log/state dirs inside `dir`. */
export function writeJobConfigIn(dir: string, options: JobOptions): WrittenJob {
  const pidDir = path.join(dir, 'run');
  const logDir = path.join(dir, 'log');
  const metadata = options.metadata ?? options.primary.cluster;
  const config = {
    plugins: options.plugins ?? ['bucardo'],
    databases: {
      bucardo: {
        host: metadata.host,
        port: metadata.port,
        database_owner: 'bucardo',
        install_user: 'postgres',
        fallback_db: 'postgres',
      },
      primary: {
        host: options.primary.cluster.host,
        port: options.primary.cluster.port,
        dbname: options.primary.dbname,
        database_owner: 'postgres',
        schema_owner: 'postgres',
        cascade: options.primary.cascade ?? false,
      },
      secondary: {
        host: options.secondary.cluster.host,
        port: options.secondary.cluster.port,
        dbname: options.secondary.dbname,
        database_owner: 'postgres',
        schema_owner: 'postgres',
        cascade: options.secondary.cascade ?? false,
      },
    },
    bucardo: {
      replication_name: options.name,
      copy_data: options.copyData ?? 'empty',
      asynchronous_kicking: options.asynchronousKicking ?? false,
      kick_interval: options.kickInterval ?? 0.2,
      lock_timeout: 2000,
      pid_dir: pidDir,
      log_dir: logDir,
      state_dir: path.join(dir, 'state'),
      replication_objects: options.replicationObjects ?? {},
      ...options.bucardoSettings,
    },
    ...options.extra,
  };
  const file = path.join(dir, `${options.name}.yml`);
  writeFileSync(file, yaml.dump(config));
  return { file, dir, pidDir, logDir };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The tool processes running now: a test file stopped from outside kills them first (harness.ts). */
export const runningTools = new Set<ChildProcess>();

/** Runs `node wrapper.js ARGS` as an operator would (no terminal, no colours). */
export function runTool(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'wrapper.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    runningTools.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdin.end(options.input ?? '');
    // Generous: a long list takes seconds on an idle machine but minutes while other test lanes (and
    // other work) share its cores; the bound only catches a hang.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wrapper.js ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 360_000);
    child.on('exit', (code) => {
      runningTools.delete(child);
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const began = Date.now();
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    // A probe that runs the tool (a node process, its sessions) costs a second of CPU: waiting as long
    // as it took keeps a poll from taking a core while the lanes beside it need one (the suite is
    // CPU-bound); a cheap probe (one query) is asked again after 200 ms.
    await new Promise((r) => setTimeout(r, Math.min(2_000, Math.max(200, Date.now() - began))));
  }
}

/** Rows of a table as sorted JSON lines, for row-by-row comparison of primary and secondary. */
export async function tableRows(
  cluster: ClusterInfo,
  database: string,
  qualifiedTable: string,
): Promise<string[]> {
  const rows = await query<{ r: string }>(
    cluster,
    database,
    `SELECT row_to_json(t)::text AS r FROM ${qualifiedTable} t`,
  );
  return rows.map((row) => row.r).sort();
}

/**
 * A table's row count and the sum of its rows' hashes, computed on the server: no sort and nothing
 * sent to the test. Cheap enough to poll; equal on both sides all but proves the same rows, and
 * `sameRowsEventually` proves it with `tableRows` once the digests agree.
 */
export async function tableDigest(
  cluster: ClusterInfo,
  database: string,
  qualifiedTable: string,
): Promise<string> {
  const [row] = await query<{ d: string }>(
    cluster,
    database,
    `SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) AS d FROM ${qualifiedTable} t`,
  );
  return row!.d;
}

/**
 * Waits (bounded) until every table holds the same rows on both sides, then compares them row by row.
 * The wait polls `tableDigest` (a few ms of server CPU), not every row: a poll that fetched and sorted
 * whole tables five times a second cost whole seconds of CPU per wait (the suite is CPU-bound).
 */
export async function sameRowsEventually(
  source: [ClusterInfo, string],
  target: [ClusterInfo, string],
  tables: string[],
  timeoutMs: number,
  what: string,
): Promise<void> {
  await waitFor(
    async () => {
      for (const table of tables) {
        const [x, y] = await Promise.all([tableDigest(...source, table), tableDigest(...target, table)]);
        if (x !== y) return false;
      }
      return true;
    },
    timeoutMs,
    what,
  );
  for (const table of tables) {
    const [x, y] = await Promise.all([tableRows(...source, table), tableRows(...target, table)]);
    const [onSource, onTarget] = [new Set(x), new Set(y)];
    const lost = x.filter((row) => !onTarget.has(row)).length;
    const extra = y.filter((row) => !onSource.has(row)).length;
    assert.deepEqual({ lost, extra }, { lost: 0, extra: 0 }, `${what}: ${table} differs`);
  }
}

export interface ProcessSecret {
  pid: number;
  where: 'cmdline' | 'environ';
  cmdline: string;
}

/**
 * Every process whose command line or environment holds one of the secrets. With `scope` (a job's
 * directory), only the processes of that job: its tool runs name its config on their command line,
 * Bucardo's processes have HOME=<its state dir>, the kicker its spec file (other test runs on the
 * same machine may use the same test passwords).
 */
export function processesHolding(secrets: string[], scope?: string): ProcessSecret[] {
  const found: ProcessSecret[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (scope !== undefined && !cmdline.includes(scope) && !environ.includes(scope)) continue;
      for (const [where, text] of [
        ['cmdline', cmdline],
        ['environ', environ],
      ] as const) {
        if (secrets.some((secret) => text.includes(secret)))
          found.push({ pid: Number(pid), where, cmdline: cmdline.replace(/\0/g, ' ').slice(0, 200) });
      }
    } catch {
      /* exited meanwhile */
    }
  }
  return found;
}
