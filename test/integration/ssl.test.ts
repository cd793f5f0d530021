// SSL-only servers with scram passwords, as a cloud database with forced SSL: the whole flow works
// with every password only in a wildcard password file given through PGPASSFILE, with sslmode require
// and with verify-full; every client session on the servers (the tool's and Bucardo's daemon's) is
// encrypted; every login Bucardo makes finds its password in the job's private password file; no
// password is on any process's command line or in its environment; a wrong CA is named with its fix.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import yaml from 'js-yaml';
import { matchPassword, readPgpass } from '../../src/core/pgpass.js';
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  forgetJob,
  processesHolding,
  query,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
  type WrittenJob,
} from '../support/harness.js';

const INSTALL_PASSWORD = 'inst:all\\pw #1';
const APP_PASSWORD = 'app ssl:pw\\2';
let primaryServer: ClusterInfo;
let secondaryServer: ClusterInfo;
let passfile: string;

const escapePgpass = (value: string) => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
const sqlLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

before(async () => {
  // The metadata database lives on the primary's server; log_connections records every login.
  const settings = { log_connections: 'on', log_line_prefix: '%m %h ' };
  [primaryServer, secondaryServer] = await Promise.all([
    startCluster('sslA', { sslOnly: true, settings }),
    startCluster('sslB', { sslOnly: true, settings }),
  ]);
  for (const server of [primaryServer, secondaryServer]) {
    await query(server, 'postgres', `ALTER ROLE postgres PASSWORD ${sqlLiteral(INSTALL_PASSWORD)}`);
    await query(server, 'postgres', `CREATE ROLE app LOGIN PASSWORD ${sqlLiteral(APP_PASSWORD)}`);
    await query(server, 'postgres', 'GRANT SET ON PARAMETER session_replication_role TO app');
  }
  // Every password only here, with wildcard database (and host/port) fields, as in most ~/.pgpass files.
  passfile = path.join(tempDir('ssl-pgpass'), 'pgpass');
  writeFileSync(
    passfile,
    [
      "# the operator's own password file",
      `127.0.0.1:*:*:postgres:${escapePgpass(INSTALL_PASSWORD)}`,
      `*:*:*:app:${escapePgpass(APP_PASSWORD)}`,
    ].join('\n') + '\n',
    { mode: 0o600 },
  );
});
after(() => {
  stopCluster(primaryServer);
  stopCluster(secondaryServer);
});

/**
 * Each flow starts from a server without the bucardo role: Bucardo's installer creates it with a
 * generated password that only that job's private password file knows (uninstall keeps the role).
 */
async function forgetBucardoRole(): Promise<void> {
  await query(primaryServer, 'postgres', 'DROP DATABASE IF EXISTS bucardo WITH (FORCE)');
  await query(primaryServer, 'postgres', 'DROP ROLE IF EXISTS bucardo');
}

async function freshData(): Promise<void> {
  for (const [server, db] of [
    [primaryServer, 'ssl_a'],
    [secondaryServer, 'ssl_b'],
  ] as const) {
    await query(server, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await query(server, 'postgres', `CREATE DATABASE ${db} OWNER app`);
    await query(server, db, 'SET ROLE app; CREATE TABLE public.accounts (id int PRIMARY KEY, owner text)');
  }
  await query(
    primaryServer,
    'ssl_a',
    "INSERT INTO public.accounts SELECT g, 'o' || g FROM generate_series(1, 200) g",
  );
}

/** A job on the SSL-only pair: app owns both databases, postgres installs Bucardo; `ssl` keys on every database. */
function sslJob(name: string, ssl: Record<string, string>, asynchronousKicking = false): WrittenJob {
  const job = writeJobConfig({
    name,
    asynchronousKicking,
    primary: { cluster: primaryServer, dbname: 'ssl_a' },
    secondary: { cluster: secondaryServer, dbname: 'ssl_b' },
  });
  const config = yaml.load(readFileSync(job.file, 'utf8')) as {
    databases: Record<string, Record<string, unknown>>;
  };
  for (const [role, db] of Object.entries(config.databases)) {
    Object.assign(db, ssl);
    if (role !== 'bucardo') Object.assign(db, { database_owner: 'app', schema_owner: 'app' });
  }
  writeFileSync(job.file, yaml.dump(config));
  return job;
}

const env = () => ({ PGPASSFILE: passfile });

interface Session {
  application_name: string;
  usename: string;
  datname: string;
  ssl: boolean | null;
}

/** Every TCP client session on a server with whether it is encrypted (the test's own use the Unix socket). */
async function tcpSessions(server: ClusterInfo): Promise<Session[]> {
  return query<Session>(
    server,
    'postgres',
    `
    SELECT a.application_name, a.usename, a.datname, s.ssl
      FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s ON s.pid = a.pid
     WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL`,
  );
}

/** user@database of every TCP login the server authorized (log_connections), and whether it used SSL. */
function authorizedLogins(server: ClusterInfo): Map<string, boolean> {
  const logins = new Map<string, boolean>();
  const text = readFileSync(server.logFile, 'utf8');
  for (const match of text.matchAll(
    / 127\.0\.0\.1 LOG: {2}connection authorized: user=(\S+) database=(\S+)(.*)/g,
  )) {
    const login = `${match[1]}@${match[2]}`;
    logins.set(login, (logins.get(login) ?? true) && /SSL enabled/.test(match[3]!));
  }
  return logins;
}

async function wholeFlow(job: WrittenJob, kicker = false): Promise<void> {
  const flow = await runTool(
    ['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy'],
    { env: env() },
  );
  assert.equal(flow.code, 0, flow.stdout + flow.stderr);
  assert.deepEqual(await query(secondaryServer, 'ssl_b', 'SELECT count(*)::int AS n FROM public.accounts'), [
    { n: 200 },
  ]);

  await query(
    primaryServer,
    'ssl_a',
    "INSERT INTO public.accounts VALUES (1001, 'new'); UPDATE public.accounts SET owner = 'changed' WHERE id = 7; DELETE FROM public.accounts WHERE id = 8",
  );
  await waitFor(
    async () => {
      const rows = await query<{ id: number; owner: string }>(
        secondaryServer,
        'ssl_b',
        'SELECT id, owner FROM public.accounts WHERE id IN (7, 8, 1001) ORDER BY id',
      );
      return (
        JSON.stringify(rows) ===
        JSON.stringify([
          { id: 7, owner: 'changed' },
          { id: 1001, owner: 'new' },
        ])
      );
    },
    30_000,
    'an insert, an update and a delete to reach the SSL-only secondary',
  );

  // While the daemon runs: every TCP session on both servers is encrypted, and Bucardo's are among them.
  const [onPrimary, onSecondary] = await Promise.all([
    tcpSessions(primaryServer),
    tcpSessions(secondaryServer),
  ]);
  const all = [...onPrimary, ...onSecondary];
  assert.deepEqual(
    all.filter((s) => s.ssl !== true),
    [],
    'no unencrypted client session',
  );
  const names = all.map((s) => s.application_name);
  for (const role of ['MCP', 'CTL', 'KID', 'VAC'])
    assert.ok(
      names.some((n) => n.startsWith(`bucardo ${role}`)),
      `a Bucardo ${role} session in ${names.join(', ')}`,
    );
  assert.ok(
    onSecondary.some((s) => s.application_name.startsWith('bucardo KID')),
    'the KID reaches the secondary over SSL',
  );
  if (kicker)
    assert.ok(
      names.some((n) => n.startsWith('bucardo-console kicker')),
      `the kicker's session in ${names.join(', ')}`,
    );
  // On the command line of no process at all; in the environment of none of this job's.
  assert.deepEqual(
    processesHolding([INSTALL_PASSWORD, APP_PASSWORD]).filter((p) => p.where === 'cmdline'),
    [],
  );
  assert.deepEqual(
    processesHolding([INSTALL_PASSWORD, APP_PASSWORD], job.dir),
    [],
    "no password in this job's environments",
  );
  // Nor in a log: Bucardo's and the kicker's (the job's log dir) and both servers'.
  const jobLogs = readdirSync(job.logDir)
    .map((f) => path.join(job.logDir, f))
    .filter((f) => statSync(f).isFile());
  const logs = [...jobLogs, primaryServer.logFile, secondaryServer.logFile];
  for (const file of logs) {
    const text = readFileSync(file, 'utf8');
    assert.ok(
      ![INSTALL_PASSWORD, APP_PASSWORD].some((secret) => text.includes(secret)),
      `no password in ${file}`,
    );
  }

  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall'], { env: env() });
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
  assert.deepEqual(
    await query(primaryServer, 'postgres', "SELECT datname FROM pg_database WHERE datname = 'bucardo'"),
    [],
  );
  assert.deepEqual(
    await query(primaryServer, 'ssl_a', "SELECT nspname FROM pg_namespace WHERE nspname = 'bucardo'"),
    [],
  );
  assert.deepEqual(
    await query(primaryServer, 'ssl_a', "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'"),
    [],
  );
  assert.deepEqual(
    (await Promise.all([tcpSessions(primaryServer), tcpSessions(secondaryServer)]))
      .flat()
      .filter((s) => s.application_name.startsWith('bucardo ')),
    [],
    'no Bucardo session left',
  );

  // Every login the servers saw from Bucardo (install's psql and its schema script, add db, add sync's
  // validate_sync, the daemon, stop) finds a password in the job's private file.
  const privateEntries = readPgpass(path.join(job.dir, 'state', '.pgpass'));
  for (const server of [primaryServer, secondaryServer]) {
    const logins = authorizedLogins(server);
    assert.ok(logins.size > 0, `log_connections recorded logins on ${server.name}`);
    assert.deepEqual(
      [...logins].filter(([, ssl]) => !ssl),
      [],
      `every login on ${server.name} used SSL`,
    );
    for (const login of logins.keys()) {
      const [user, database] = login.split('@') as [string, string];
      assert.notEqual(
        matchPassword(privateEntries, '127.0.0.1', server.port, database, user),
        undefined,
        `a password for ${login} on ${server.name}`,
      );
    }
  }
}

test('sslmode require: install, copy, replicate, uninstall over SSL only, passwords from a wildcard PGPASSFILE', async (t) => {
  await freshData();
  const job = sslJob('ssl_req', { sslmode: 'require' });
  t.after(async () => {
    await forgetJob(job, primaryServer);
    await forgetBucardoRole();
  });
  await wholeFlow(job);
  t.diagnostic(
    `logins on the metadata/primary server: ${[...authorizedLogins(primaryServer).keys()].sort().join(', ')}`,
  );
  t.diagnostic(
    `logins on the secondary server: ${[...authorizedLogins(secondaryServer).keys()].sort().join(', ')}`,
  );
});

test('sslmode verify-full with sslrootcert: the tool, bucardo, the daemon and validate_sync all verify the server', async (t) => {
  await freshData();
  // With the asynchronous kicker, the tool's long-lived session, whose encryption is checked too.
  const job = sslJob('ssl_full', { sslmode: 'verify-full', sslrootcert: primaryServer.caFile! }, true);
  t.after(async () => {
    await forgetJob(job, primaryServer);
    await forgetBucardoRole();
  });
  // Both servers' certificates come from their own test CAs: give each database its own.
  const config = yaml.load(readFileSync(job.file, 'utf8')) as {
    databases: Record<string, Record<string, unknown>>;
  };
  config.databases['secondary']!['sslrootcert'] = secondaryServer.caFile!;
  writeFileSync(job.file, yaml.dump(config));
  await wholeFlow(job, true);
});

test('a wrong root certificate is named with its fix; relative sslrootcert/passfile follow the config file; services', async (t) => {
  await freshData();
  const job = sslJob('ssl_bad', { sslmode: 'verify-full' });
  t.after(() => forgetJob(job, primaryServer));
  // Another CA, that signed neither server; and the files beside the config, named relatively.
  const wrongCa = path.join(job.dir, 'certs', 'wrong-ca.crt');
  mkdirSync(path.dirname(wrongCa));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      path.join(job.dir, 'certs', 'wrong.key'),
      '-out',
      wrongCa,
      '-days',
      '1',
      '-subj',
      '/CN=some other CA',
    ],
    { stdio: 'ignore' },
  );
  copyFileSync(primaryServer.caFile!, path.join(job.dir, 'certs', 'right-ca.crt'));
  copyFileSync(passfile, path.join(job.dir, 'pgpass'));
  const setKeys = (keys: Record<string, string>) => {
    const config = yaml.load(readFileSync(job.file, 'utf8')) as {
      databases: Record<string, Record<string, unknown>>;
    };
    Object.assign(config.databases['bucardo']!, keys);
    writeFileSync(job.file, yaml.dump(config));
  };

  setKeys({ sslrootcert: 'certs/wrong-ca.crt', passfile: 'pgpass' });
  const wrong = await runTool(['-c', job.file, '-l', 'bucardo.install'], {
    env: { PGPASSFILE: '/nonexistent' },
  });
  assert.equal(wrong.code, 1);
  const expected = new RegExp(
    [
      'metadata host reachable: SSL connection to the bucardo database "postgres" on 127\\.0\\.0\\.1:\\d+ as postgres failed: ',
      "certificate verify failed: the server's certificate is not signed by the root certificate \\S+/certs/wrong-ca\\.crt .*",
      " Set databases\\.bucardo\\.sslrootcert \\(or PGSSLROOTCERT\\) to the CA file that signed the server's certificate",
    ].join(''),
  );
  assert.match(wrong.stdout, expected, 'cause and fix in one line of the preflight report');
  assert.equal(
    (await query(primaryServer, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'")).length,
    0,
    'nothing installed',
  );

  // The right CA and the password file, both named relative to the config's folder (the tool runs elsewhere);
  // the primary's settings only from a pg_service.conf service (its password from the service too).
  setKeys({ sslrootcert: 'certs/right-ca.crt', passfile: 'pgpass' });
  const config = yaml.load(readFileSync(job.file, 'utf8')) as {
    databases: Record<string, Record<string, unknown>>;
  };
  config.databases['primary'] = { service: 'ssl_primary' };
  writeFileSync(job.file, yaml.dump(config));
  const serviceFile = path.join(job.dir, 'pg_service.conf');
  writeFileSync(
    serviceFile,
    [
      "# the operator's services",
      '[ssl_primary]',
      'host=127.0.0.1',
      `port=${primaryServer.port}`,
      'dbname=ssl_a',
      'user=app',
      `password=${APP_PASSWORD}`,
      'sslmode=verify-full',
      `sslrootcert=${primaryServer.caFile}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const right = await runTool(['-c', job.file, '-l', 'bucardo.install'], {
    env: { PGPASSFILE: '/nonexistent', PGSERVICEFILE: serviceFile },
  });
  assert.match(right.stdout, /metadata host reachable: 127\.0\.0\.1:\d+ as postgres/, right.stdout);
  assert.match(
    right.stdout,
    /primary reachable as database owner: 127\.0\.0\.1:\d+\/ssl_a as app/,
    right.stdout,
  );
});
