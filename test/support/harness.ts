// Test bed: the shared throwaway clusters of this run (or this file's own when run alone), helpers
// to make databases and job configs, and to run the tool as an operator would. Everything a test
// starts is stopped in after(), by pid, also when the test fails.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import pg from 'pg';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURE_PLUGINS = path.join(ROOT, 'dist', 'test', 'fixtures', 'plugins');

export interface TestClusters { a: ClusterInfo; b: ClusterInfo }

let own: TestClusters | undefined;
const pidDirs = new Set<string>();
const tempDirs = new Set<string>();

/** The run's shared clusters (scripts/run-tests.js), or two of this file's own, stopped after it. */
export async function clusters(): Promise<TestClusters> {
  const shared = process.env['BUCARDO_CONSOLE_TEST_CLUSTERS'];
  if (shared) return JSON.parse(shared) as TestClusters;
  if (!own) {
    const [a, b] = await Promise.all([startCluster('fileA'), startCluster('fileB')]);
    own = { a, b };
    after(() => { stopCluster(a); stopCluster(b); });
  }
  return own;
}

after(async () => {
  // Stop every Bucardo process and kicker a test left, by the pids in its own pid dirs.
  for (const dir of pidDirs) stopProcessesIn(dir);
  if (!process.env['BUCARDO_CONSOLE_KEEP_TEST_DIRS']) for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export function stopProcessesIn(pidDir: string): void {
  let files: string[] = [];
  try { files = readdirSync(pidDir).filter((f) => f.endsWith('.pid')); } catch { return; }
  for (const file of files) {
    const pid = readPidFile(path.join(pidDir, file));
    if (pid && isProcessAlive(pid)) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
  }
}

/**
 * Leaves no trace of a job whatever state a failed test left it in: its processes (by pid) and the
 * metadata database (the next test installs into the same cluster).
 */
export async function forgetJob(job: { pidDir: string }, metadata: ClusterInfo, metadataDb = 'bucardo'): Promise<void> {
  stopProcessesIn(job.pidDir);
  for (let i = 0; i < 50; i++) {
    let alive = false;
    try {
      alive = readdirSync(job.pidDir).some((f) => f.startsWith('bucardo.mcp') && isProcessAlive(readPidFile(path.join(job.pidDir, f)) ?? 0));
    } catch { /* no pid dir */ }
    if (!alive) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await query(metadata, 'postgres', `DROP DATABASE IF EXISTS "${metadataDb}" WITH (FORCE)`).catch(() => undefined);
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `bc-test-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(cluster: ClusterInfo, database: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** (Re)creates databases, dropping leftovers of an earlier failed run first. */
export async function freshDatabase(cluster: ClusterInfo, name: string, schemaSql = ''): Promise<void> {
  await query(cluster, 'postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await query(cluster, 'postgres', `CREATE DATABASE "${name}"`);
  if (schemaSql) await query(cluster, name, schemaSql);
}

export async function dropDatabase(cluster: ClusterInfo, name: string): Promise<void> {
  await query(cluster, 'postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

export interface JobOptions {
  name: string;
  plugins?: string[];
  primary: { cluster: ClusterInfo; dbname: string; cascade?: boolean };
  secondary: { cluster: ClusterInfo; dbname: string; cascade?: boolean };
  metadata?: ClusterInfo;
  copyData?: 'always' | 'never' | 'empty';
  asynchronousKicking?: boolean;
  replicationObjects?: Record<string, string[]>;
  extra?: Record<string, unknown>;
}

/** Writes a job config in the original tool's format, with pid/log/state dirs in a temp dir. */
export function writeJobConfig(options: JobOptions): { file: string; dir: string; pidDir: string; logDir: string } {
  const dir = tempDir(options.name);
  const pidDir = path.join(dir, 'run');
  const logDir = path.join(dir, 'log');
  pidDirs.add(pidDir);
  const metadata = options.metadata ?? options.primary.cluster;
  const config = {
    plugins: options.plugins ?? ['bucardo'],
    databases: {
      bucardo: { host: metadata.host, port: metadata.port, database_owner: 'bucardo', install_user: 'postgres', fallback_db: 'postgres' },
      primary: { host: options.primary.cluster.host, port: options.primary.cluster.port, dbname: options.primary.dbname, database_owner: 'postgres', schema_owner: 'postgres', cascade: options.primary.cascade ?? false },
      secondary: { host: options.secondary.cluster.host, port: options.secondary.cluster.port, dbname: options.secondary.dbname, database_owner: 'postgres', schema_owner: 'postgres', cascade: options.secondary.cascade ?? false },
    },
    bucardo: {
      replication_name: options.name,
      copy_data: options.copyData ?? 'empty',
      asynchronous_kicking: options.asynchronousKicking ?? false,
      kick_interval: 0.2,
      lock_timeout: 2000,
      pid_dir: pidDir,
      log_dir: logDir,
      state_dir: path.join(dir, 'state'),
      replication_objects: options.replicationObjects ?? {},
    },
    ...options.extra,
  };
  const file = path.join(dir, `${options.name}.yml`);
  writeFileSync(file, yaml.dump(config));
  return { file, dir, pidDir, logDir };
}

export interface ToolResult { code: number; stdout: string; stderr: string }

/** Runs `node wrapper.js ARGS` as an operator would (no terminal, no colours). */
export function runTool(args: string[], options: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'wrapper.js'), ...args], {
      cwd: ROOT, env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`wrapper.js ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, options.timeoutMs ?? 180_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code: code ?? 1, stdout, stderr }); });
  });
}

export async function waitFor<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Rows of a table as sorted JSON lines, for row-by-row comparison of primary and secondary. */
export async function tableRows(cluster: ClusterInfo, database: string, qualifiedTable: string): Promise<string[]> {
  const rows = await query<{ r: string }>(cluster, database, `SELECT row_to_json(t)::text AS r FROM ${qualifiedTable} t`);
  return rows.map((row) => row.r).sort();
}
