// A throwaway PgBouncer for tests and benchmarks: Debian's pgbouncer, run as the postgres user (it
// refuses root) on a free port in a temp dir, transaction pooling, md5 logins from its own auth file,
// one admin user. Stopped by its pid (SIGINT: it closes its connections and exits), never by name.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from '../core/activity.js';
import { isProcessAlive } from '../core/process.js';
import { freePort } from './cluster.js';

export const PGBOUNCER = process.env['PGBOUNCER'] ?? '/usr/sbin/pgbouncer';

export interface PoolerInfo {
  host: string;
  port: number;
  dir: string;
  configFile: string;
  logFile: string;
  pid: number;
  adminUser: string;
}

export interface PoolerOptions {
  /** The [databases] entries: name → where it points. */
  databases: Record<string, { host: string; port: number; dbname: string }>;
  /** Logins the pooler accepts (the admin user among them), name → password. */
  users: Record<string, string>;
  adminUser: string;
  /** Extra [pgbouncer] settings. */
  settings?: Record<string, string | number>;
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('there is no postgres user: run scripts/setup.sh');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startPooler(options: PoolerOptions): Promise<PoolerInfo> {
  if (!existsSync(PGBOUNCER))
    throw new Error(`${PGBOUNCER} is missing: run scripts/setup.sh (it installs pgbouncer)`);
  const ids = postgresIds();
  const dir = mkdtempSync(path.join(tmpdir(), 'bucardo-console-pgbouncer-'));
  chmodSync(dir, 0o755);
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const port = await freePort();
  const file = (name: string) => path.join(dir, name);
  const authFile = file('userlist.txt');
  writeFileSync(
    authFile,
    Object.entries(options.users)
      .map(([user, password]) => `"${user}" "${password}"\n`)
      .join(''),
    { mode: 0o600 },
  );
  if (ids) chownSync(authFile, ids.uid, ids.gid);
  const settings: Record<string, string | number> = {
    listen_addr: '127.0.0.1',
    listen_port: port,
    unix_socket_dir: '',
    auth_type: 'md5',
    auth_file: authFile,
    admin_users: options.adminUser,
    pool_mode: 'transaction',
    max_client_conn: 200,
    default_pool_size: 20,
    logfile: file('pgbouncer.log'),
    pidfile: file('pgbouncer.pid'),
    ...options.settings,
  };
  const text = [
    '; A throwaway pooler of bucardo-console (src/sandbox/pgbouncer.ts).',
    '[databases]',
    '; the application databases',
    ...Object.entries(options.databases).map(
      ([name, at]) => `${name} = host=${at.host} port=${at.port} dbname=${at.dbname}`,
    ),
    '',
    '[pgbouncer]',
    ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
    '',
  ].join('\n');
  const configFile = file('pgbouncer.ini');
  writeFileSync(configFile, text, { mode: 0o644 });
  const args = ['-d', configFile];
  const [command, fullArgs] = ids
    ? ['runuser', ['-u', 'postgres', '--', PGBOUNCER, ...args]]
    : [PGBOUNCER, args];
  execFileSync(command, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  const pidFile = file('pgbouncer.pid');
  for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(100);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    host: '127.0.0.1',
    port,
    dir,
    configFile,
    logFile: file('pgbouncer.log'),
    pid,
    adminUser: options.adminUser,
  };
}

/**
 * Stops the pooler by its pid and waits (at most 10 s, then SIGKILL) until it is gone, then removes its
 * temp dir (its ini, user list and log) unless asked to keep it for a post-mortem.
 */
export async function stopPooler(pooler: PoolerInfo, options: { keepFiles?: boolean } = {}): Promise<void> {
  if (isProcessAlive(pooler.pid)) {
    process.kill(pooler.pid, 'SIGINT');
    for (let i = 0; i < 100 && isProcessAlive(pooler.pid); i++) await sleep(100);
    if (isProcessAlive(pooler.pid)) process.kill(pooler.pid, 'SIGKILL');
  }
  if (!options.keepFiles && !process.env['BUCARDO_CONSOLE_KEEP_TEST_DIRS'])
    rmSync(pooler.dir, { recursive: true, force: true });
}
