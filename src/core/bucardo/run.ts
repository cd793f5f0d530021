// The one module that runs the `bucardo` executable, and psql where Bucardo's own installer cannot
// be used (a metadata database of another name). Arguments are always an array (never a shell
// string); every call names the metadata database explicitly and skips every bucardorc (Debian ships
// /etc/bucardorc pointing at localhost:5432); HOME is the job's private state dir, because Bucardo's
// installer appends to $HOME/.pgpass; passwords reach it only through that private .pgpass.
import { accessSync, constants, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Activity } from '../activity.js';
import { bucardoPerlLib } from './code.js';
import { writePrivatePgpass } from '../credentials.js';
import { rootCertificate } from '../db.js';
import { OperatorError } from '../errors.js';
import { metadataDbName, type Job } from '../job.js';

export interface BucardoResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  output: string;
}

export interface BucardoOptions {
  activity?: Activity;
  /** Kill after this many ms. Never set for add sync / validate: killing them leaves orphan triggers. */
  timeoutMs?: number;
  /** False for calls whose death mid-way would leave a mess; see Activity. */
  safeToStop?: boolean;
  /** Metadata database to name with -d (default: the job's). */
  metadataDb?: string;
  /** Connect as another login than the metadata db's Bucardo role (bucardo install uses the install user). */
  connection?: { dbname: string; dbuser: string };
  /** Return the result instead of throwing when Bucardo reports a failure. */
  allowFailure?: boolean;
  extraEnv?: Record<string, string>;
}

export class BucardoError extends OperatorError {
  constructor(
    readonly args: string[],
    readonly result: BucardoResult,
    hint?: string,
  ) {
    const message = bucardoMessage(result);
    super(
      `bucardo ${args.join(' ')} failed (exit code ${result.exitCode}): ${message}${hint ? ` ${hint}` : ''}`,
    );
    this.name = 'BucardoError';
  }
}

/** Texts Bucardo prints while still exiting 0 (docs/how-bucardo-behaves.md §2 and §5). */
const FAILURE_PATTERNS: RegExp[] = [
  /DBI connect\(.*\) failed/,
  /INSTALLATION FAILED/,
  /Reload of sync .* failed/,
  /reload response message never received/,
  /^Failed to /m,
  /^ERROR:/m,
  /No such (sync|database|table|relgroup|dbgroup)/i,
  /could not connect to server/i,
];

export function bucardoFailed(result: BucardoResult): boolean {
  return result.exitCode !== 0 || FAILURE_PATTERNS.some((pattern) => pattern.test(result.output));
}

/** The useful part of Bucardo's output: its error line(s), without Perl's line-number noise. */
export function bucardoMessage(result: BucardoResult): string {
  const lines = result.output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const interesting = lines.filter((line) =>
    /ERROR|FATAL|failed|Failed|INSTALLATION|No such|not|Could not|must/.test(line),
  );
  const text = (interesting.length ? interesting : lines).slice(0, 4).join(' ');
  return (
    text
      .replace(/ at \/usr\/\S+ line \d+\.?/g, '')
      .replace(/ at line \d+\.?/g, '')
      .trim() || '(no output)'
  );
}

export function baseArguments(
  job: Job,
  connection = { dbname: metadataDbName(job), dbuser: job.config.databases.bucardo.databaseOwner },
): string[] {
  const db = job.config.databases.bucardo;
  return [
    '--no-bucardorc',
    '--dbhost',
    db.host,
    '--dbport',
    String(db.port),
    '--dbname',
    connection.dbname,
    '--dbuser',
    connection.dbuser,
  ];
}

/** The environment of every bucardo process: private HOME, no PGPASSWORD/PGPASSFILE, the metadata db's sslmode. */
export function bucardoEnvironment(job: Job, extra: Record<string, string> = {}): Record<string, string> {
  mkdirSync(job.paths.stateDir, { recursive: true, mode: 0o700 });
  writePrivatePgpass(job);
  const env: Record<string, string> = {};
  // The variables the config names as password holders stay out too: a process's environment can be
  // read by its owner and root (/proc/<pid>/environ), and Bucardo's processes live for days.
  const passwordVariables = new Set(Object.values(job.config.databases).flatMap((d) => d.passwordEnv ?? []));
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || passwordVariables.has(key)) continue;
    if (!/^PG(PASSWORD|PASSFILE|HOST|PORT|DATABASE|USER|SERVICE)$/.test(key)) env[key] = value;
  }
  const db = job.config.databases.bucardo;
  env['HOME'] = job.paths.stateDir;
  // For the metadata database, whose DSN Bucardo builds itself; the other databases carry their
  // sslmode and sslrootcert in their dbconn (plugins/bucardo/install.ts dbconnFor).
  env['PGSSLMODE'] = db.sslmode;
  const rootCert = rootCertificate(db) ?? db.sslrootcert;
  if (rootCert) env['PGSSLROOTCERT'] = rootCert;
  env['PGCONNECT_TIMEOUT'] ??= '10';
  // Perl's module path starts at the job's copy of Bucardo.pm (the packaged code with the commit fence,
  // or the job's fork of it), for the CLI and every process it forks or execs (src/core/bucardo/code.ts).
  env['PERL5LIB'] = [bucardoPerlLib(job), env['PERL5LIB']].filter(Boolean).join(':');
  return { ...env, ...extra };
}

export async function runBucardo(
  job: Job,
  args: string[],
  options: BucardoOptions = {},
): Promise<BucardoResult> {
  const { execa } = await import('execa');
  const connection =
    options.connection ??
    (options.metadataDb
      ? { dbname: options.metadataDb, dbuser: job.config.databases.bucardo.databaseOwner }
      : undefined);
  const fullArgs = [...baseArguments(job, connection), ...args];
  const child = execa(job.bucardoFork?.executable ?? job.config.bucardo.executable, fullArgs, {
    env: bucardoEnvironment(job, options.extraEnv),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    all: true,
    ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}),
    cwd: job.paths.stateDir,
    // Its own process group: a Ctrl-C at the terminal must not kill bucardo mid-way (a killed
    // `add sync` leaves orphan triggers); the runner decides what to stop.
    detached: true,
  });
  const untrack = options.activity?.trackChild({
    description: `bucardo ${args.slice(0, 2).join(' ')}`,
    pid: child.pid,
    safeToStop: options.safeToStop ?? true,
    stop: () => child.kill('SIGTERM'),
  });
  let completed;
  try {
    completed = await child;
  } finally {
    untrack?.();
  }
  if (
    (completed as { code?: string }).code === 'ENOENT' ||
    /ENOENT/.test(String((completed as { originalMessage?: string }).originalMessage ?? ''))
  ) {
    throw new OperatorError(
      `The bucardo executable '${job.config.bucardo.executable}' was not found. Install it (apt-get install bucardo, or run scripts/setup.sh) or set bucardo.executable to its path.`,
    );
  }
  const result: BucardoResult = {
    stdout: String(completed.stdout ?? ''),
    stderr: String(completed.stderr ?? ''),
    output: String(completed.all ?? ''),
    exitCode: typeof completed.exitCode === 'number' ? completed.exitCode : -1,
  };
  if (completed.timedOut)
    throw new BucardoError(args, {
      ...result,
      output: `${result.output}\n(timed out after ${options.timeoutMs} ms)`,
    });
  if (!options.allowFailure && bucardoFailed(result)) throw new BucardoError(args, result);
  return result;
}

/**
 * psql -f on the metadata server, in the environment of a bucardo process (the private .pgpass, no
 * password in the environment or on the command line). The script's own failures are the caller's to
 * read from the output: Bucardo's schema file runs on after an error and psql exits 0.
 */
export async function runPsqlFile(
  job: Job,
  file: string,
  options: { connection: { dbname: string; dbuser: string }; activity?: Activity },
): Promise<{ exitCode: number | undefined; output: string }> {
  const { execa } = await import('execa');
  const db = job.config.databases.bucardo;
  const args = ['-h', db.host, '-p', String(db.port), '-U', options.connection.dbuser];
  args.push('-d', options.connection.dbname, '-AX', '-qt', '-f', file);
  const child = execa('psql', args, {
    env: bucardoEnvironment(job),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    all: true,
    // Its own process group, like bucardo's: a Ctrl-C at the terminal must not stop it half-way.
    detached: true,
  });
  const untrack = options.activity?.trackChild({
    description: `psql -f ${file}`,
    pid: child.pid,
    safeToStop: false,
    stop: () => child.kill('SIGTERM'),
  });
  try {
    const result = await child;
    return { exitCode: result.exitCode, output: String(result.all ?? '') };
  } finally {
    untrack?.();
  }
}

/**
 * The version of the bucardo executable, "5.6.0", or undefined when it is missing. Bucardo is a Perl
 * script that declares `our $VERSION = '…'` near its top: read there, it costs no Perl start (~0.2 s of
 * CPU, paid by every bucardo.install's preflight). Anything else found under that name (a wrapper, a
 * build without the line) is asked with `--version`, as Bucardo prints it.
 */
export async function bucardoVersion(executable: string): Promise<string | undefined> {
  const declared = declaredVersion(executable);
  if (declared) return declared;
  const { execa } = await import('execa');
  const result = await execa(executable, ['--version'], { reject: false, stdin: 'ignore' });
  if (result.failed && result.exitCode === undefined) return undefined;
  return /version\s+(\S+)/.exec(String(result.stdout))?.[1];
}

function declaredVersion(executable: string): string | undefined {
  const file = executablePath(executable);
  if (!file) return undefined;
  try {
    const head = readFileSync(file, { encoding: 'latin1' }).slice(0, 16_384);
    if (!head.startsWith('#!') || !/perl/.test(head.slice(0, head.indexOf('\n')))) return undefined;
    return /^our \$VERSION = '([^']+)';/m.exec(head)?.[1];
  } catch {
    return undefined;
  }
}

/** Where the executable is, as execve would find it: a path as given, a bare name on PATH. */
function executablePath(executable: string): string | undefined {
  const candidates = executable.includes('/')
    ? [executable]
    : (process.env['PATH'] ?? '').split(':').map((dir) => path.join(dir || '.', executable));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
