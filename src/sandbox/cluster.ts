// Throwaway PostgreSQL clusters for tests, benchmarks and the demo: initdb/pg_ctl as the postgres
// user (PostgreSQL refuses to run as root), a free port, a temporary directory, and a registry that
// stops every cluster this process started, by its postmaster pid, even when the process fails.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isProcessAlive } from '../core/process.js';

export const PG_BIN = process.env['PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

export interface ClusterInfo {
  name: string;
  host: string;
  port: number;
  dataDir: string;
  socketDir: string;
  logFile: string;
  baseDir: string;
  postmasterPid: number;
  /** SSL-only clusters: the test CA that signed the server's certificate (for sslrootcert). */
  caFile?: string;
  /** The server's bin directory when it is not PG_BIN (another major version: src/sandbox/versions.ts). */
  pgBin?: string;
}

const running = new Map<string, ClusterInfo>();
let exitHookInstalled = false;
let signalHooks = true;

/** For a caller that handles SIGTERM/SIGHUP itself (and calls stopAllClusters when it is done). */
export function handleSignalsYourself(): void {
  signalHooks = false;
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('there is no postgres user: run scripts/setup.sh (it installs postgresql-15)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL binary as the postgres user when we are root (argument array, no shell). */
function runAsPostgres(binary: string, args: string[], options: { timeout?: number } = {}): string {
  const ids = postgresIds();
  const [command, fullArgs] = ids ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
  return execFileSync(command, fullArgs, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: options.timeout ?? 60_000,
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  /** Extra server settings (-c name=value). */
  settings?: Record<string, string | number>;
  /** Where to create the cluster's directory (default: a new temp dir). */
  parentDir?: string;
  /** pg_hba.conf lines replacing initdb's trust-everything default (tests of password handling). */
  hba?: string[];
  /**
   * SSL only, as a cloud server with forced SSL: a test CA and a server certificate for 127.0.0.1 and
   * localhost (so verify-full passes), TCP logins only over SSL with scram passwords, plain TCP
   * refused; Unix-socket logins stay trusted for the test's own superuser sessions.
   */
  sslOnly?: boolean;
  /** The bin directory of another PostgreSQL version (pgBinFor in src/sandbox/versions.ts); default PG_BIN. */
  pgBin?: string;
}

const SSL_ONLY_HBA = [
  'local all all trust',
  'hostssl all all 127.0.0.1/32 scram-sha-256',
  'host all all 127.0.0.1/32 reject',
];

/** A throwaway CA and a server certificate it signed, made with openssl in dir/ssl; returns the files. */
function makeCertificates(
  baseDir: string,
  ids: { uid: number; gid: number } | undefined,
): { caFile: string; certFile: string; keyFile: string } {
  const dir = path.join(baseDir, 'ssl');
  mkdirSync(dir);
  const file = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) =>
    execFileSync('openssl', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '7',
    '-subj',
    '/CN=bucardo-console test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl([
    'req',
    ...ecKey,
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  writeFileSync(
    file('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  openssl([
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.crt'),
    '-days',
    '7',
    '-extfile',
    file('server.ext'),
  ]);
  // PostgreSQL refuses a key file that others may read or that it does not own.
  chmodSync(file('server.key'), 0o600);
  if (ids)
    for (const name of ['', 'server.key', 'server.crt', 'ca.crt']) chownSync(file(name), ids.uid, ids.gid);
  return { caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key') };
}

const INITDB_ARGS = ['-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'];

/**
 * What initdb makes for these server binaries, made once per machine and copied for each cluster:
 * initdb costs ~1.1 s of CPU (the server's bootstrap and single-user runs), the copy of its ~40 MB a
 * tenth of that, and the suite and the demo start dozens of clusters. It stays in the temp dir, named
 * by the binaries' identity (their directory, the postgres executable's size and mtime) and initdb's
 * arguments: another version or a reinstalled package gets its own. Made in a staging directory and
 * renamed into place, so a start beside it (the runner's lanes start at once) sees none or a whole one.
 */
function initdbTemplate(pgBin: string, ids: { uid: number; gid: number } | undefined): string {
  const server = statSync(path.join(pgBin, 'postgres'));
  const identity = `${pgBin}\n${server.size}\n${server.mtimeMs}\n${INITDB_ARGS.join(' ')}`;
  const key = createHash('sha256').update(identity).digest('hex').slice(0, 16);
  const template = path.join(tmpdir(), `bucardo-console-initdb-${key}`);
  if (existsSync(path.join(template, 'PG_VERSION'))) return template;
  const staging = mkdtempSync(`${template}.making-`);
  try {
    if (ids) chownSync(staging, ids.uid, ids.gid);
    runAsPostgres(path.join(pgBin, 'initdb'), ['-D', path.join(staging, 'data'), ...INITDB_ARGS]);
    try {
      renameSync(path.join(staging, 'data'), template);
    } catch (error) {
      // Another start made it meanwhile: theirs is as good.
      if (!existsSync(path.join(template, 'PG_VERSION'))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return template;
}

export async function startCluster(name: string, options: StartOptions = {}): Promise<ClusterInfo> {
  installExitHook();
  const ids = postgresIds();
  const parent = options.parentDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const baseDir = mkdtempSync(path.join(parent, `bc-${name}-`));
  const dataDir = path.join(baseDir, 'data');
  const socketDir = path.join(baseDir, 'sock');
  mkdirSync(socketDir);
  if (ids) {
    chownSync(baseDir, ids.uid, ids.gid);
    chownSync(socketDir, ids.uid, ids.gid);
  }
  const pgBin = options.pgBin ?? PG_BIN;
  runAsPostgres('cp', ['-a', initdbTemplate(pgBin, ids), dataDir]);
  const ssl = options.sslOnly ? makeCertificates(baseDir, ids) : undefined;
  const sslSettings: Record<string, string> = ssl
    ? {
        ssl: 'on',
        ssl_cert_file: ssl.certFile,
        ssl_key_file: ssl.keyFile,
        password_encryption: 'scram-sha-256',
      }
    : {};
  const hba = options.hba ?? (ssl ? SSL_ONLY_HBA : undefined);
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    // A throwaway cluster needs no crash safety; this makes tests and the demo much faster.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: 200,
    shared_buffers: '128MB',
    log_min_messages: 'warning',
    ...sslSettings,
    ...options.settings,
  };
  const conf = Object.entries(settings)
    .map(([key, value]) => `${key} = '${String(value).replace(/'/g, "''")}'`)
    .join('\n');
  if (hba) {
    writeFileSync(path.join(dataDir, 'pg_hba.conf'), `${hba.join('\n')}\n`);
    if (ids) chownSync(path.join(dataDir, 'pg_hba.conf'), ids.uid, ids.gid);
  }
  const logFile = path.join(baseDir, 'postgres.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(path.join(dataDir, 'postgresql.auto.conf'), `${conf}\nport = ${port}\n`);
    if (ids) chownSync(path.join(dataDir, 'postgresql.auto.conf'), ids.uid, ids.gid);
    try {
      runAsPostgres(path.join(pgBin, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
      const postmasterPid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const info: ClusterInfo = {
        name,
        host: '127.0.0.1',
        port,
        dataDir,
        socketDir,
        logFile,
        baseDir,
        postmasterPid,
        ...(options.pgBin ? { pgBin } : {}),
        ...(ssl ? { caFile: ssl.caFile } : {}),
      };
      running.set(baseDir, info);
      return info;
    } catch (error) {
      // Another process may have taken the port between our probe and the server's bind.
      if (attempt >= 3) {
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
        rmSync(baseDir, { recursive: true, force: true });
        throw new Error(`could not start PostgreSQL cluster ${name}: ${(error as Error).message}\n${log}`);
      }
    }
  }
}

/** Stops the cluster (fast shutdown) and removes its directory. Safe to call twice. */
export function stopCluster(info: ClusterInfo, options: { keepFiles?: boolean } = {}): void {
  try {
    if (existsSync(path.join(info.dataDir, 'postmaster.pid'))) {
      runAsPostgres(path.join(info.pgBin ?? PG_BIN, 'pg_ctl'), [
        '-D',
        info.dataDir,
        '-m',
        'fast',
        '-w',
        '-t',
        '30',
        'stop',
      ]);
    }
  } catch {
    // pg_ctl failed: stop this cluster's own postmaster by its pid (never by name).
    if (isProcessAlive(info.postmasterPid)) {
      try {
        process.kill(info.postmasterPid, 'SIGQUIT');
      } catch {
        /* already gone */
      }
    }
  }
  running.delete(info.baseDir);
  if (!options.keepFiles) rmSync(info.baseDir, { recursive: true, force: true });
}

/** Restarts a cluster in place (fault-injection tests): same port, same data. */
export function restartCluster(info: ClusterInfo): ClusterInfo {
  runAsPostgres(path.join(info.pgBin ?? PG_BIN, 'pg_ctl'), [
    '-D',
    info.dataDir,
    '-l',
    info.logFile,
    '-m',
    'fast',
    '-w',
    '-t',
    '60',
    'restart',
  ]);
  info.postmasterPid = Number(readFileSync(path.join(info.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return info;
}

export function stopAllClusters(): void {
  for (const info of [...running.values()]) stopCluster(info);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', stopAllClusters);
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      if (!signalHooks) return;
      stopAllClusters();
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export function connectionUrl(info: ClusterInfo, database = 'postgres', user = 'postgres'): string {
  return `postgresql://${encodeURIComponent(user)}@${info.host}:${info.port}/${encodeURIComponent(database)}`;
}
