// Passwords follow libpq's conventions for every connection, the tool's and Bucardo's, against a
// cluster that really asks for them; a wrong or missing password gets a message naming the fix; no
// password ever shows up in a process's command line.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  forgetJob,
  processesHolding,
  query,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
} from '../support/harness.js';

const PASSWORD = 'app s3cret:with#odd\\chars';
let cluster: ClusterInfo;

before(async () => {
  // postgres (the test's own superuser) keeps trust; every other role must give a password.
  cluster = await startCluster('cred', {
    hba: [
      'local all all trust',
      'host all postgres 127.0.0.1/32 trust',
      'host all all 127.0.0.1/32 scram-sha-256',
    ],
  });
  await query(cluster, 'postgres', `CREATE ROLE app LOGIN PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
  for (const db of ['cred_a', 'cred_b']) {
    await query(cluster, 'postgres', `CREATE DATABASE ${db} OWNER app`);
    await query(cluster, db, 'SET ROLE app; CREATE TABLE public.accounts (id int PRIMARY KEY, owner text)');
  }
  await query(
    cluster,
    'cred_a',
    "INSERT INTO public.accounts SELECT g, 'o' || g FROM generate_series(1, 100) g",
  );
});
after(() => stopCluster(cluster));

function jobFile(): ReturnType<typeof writeJobConfig> {
  const job = writeJobConfig({
    name: 'cred',
    primary: { cluster, dbname: 'cred_a' },
    secondary: { cluster, dbname: 'cred_b' },
  });
  const text = readFileSync(job.file, 'utf8').replace(
    /database_owner: postgres\n(\s+)schema_owner: postgres/g,
    'database_owner: app\n$1schema_owner: app\n$1password_env: APP_PW',
  );
  writeFileSync(job.file, text);
  return job;
}

function commandLinesMentioning(secret: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(secret)) found.push(`${pid}: ${cmdline}`);
    } catch {
      /* exited */
    }
  }
  return found;
}

test('a missing or wrong password is named with where to put the right one; nothing is installed', async () => {
  const job = jobFile();
  const missing = await runTool(['-c', job.file, '-l', 'bucardo.install'], {
    env: { PGPASSFILE: '/nonexistent' },
  });
  assert.equal(missing.code, 1);
  assert.match(
    missing.stdout,
    /primary reachable as database owner: .*(asks for a password and none was found|Password authentication failed).* databases\.primary\.password_env/,
  );
  const wrong = await runTool(['-c', job.file, '-l', 'bucardo.install'], { env: { APP_PW: 'not it' } });
  assert.equal(wrong.code, 1);
  assert.match(
    wrong.stdout,
    /Password authentication failed for the primary database "cred_a" on 127\.0\.0\.1:\d+ as app\. Supply the right password through databases\.primary\.password_env/,
  );
  assert.equal(
    (await query(cluster, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'")).length,
    0,
  );
});

test('preflight catches a secondary role that may not set session_replication_role', async () => {
  const job = jobFile();
  const result = await runTool(['-c', job.file, '-l', 'bucardo.install'], { env: { APP_PW: PASSWORD } });
  assert.equal(result.code, 1);
  assert.match(
    result.stdout,
    /FAIL secondary role may set session_replication_role: permission denied to set parameter "session_replication_role"\n\s+fix: .*GRANT SET ON PARAMETER session_replication_role TO app/,
  );
});

test('with password_env the whole flow works, Bucardo included; then PGPASSFILE works too; no password on any command line', async (t) => {
  await query(cluster, 'postgres', 'GRANT SET ON PARAMETER session_replication_role TO app');
  const job = jobFile();
  t.after(() => forgetJob(job, cluster));
  const flow = await runTool(
    ['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy'],
    { env: { APP_PW: PASSWORD } },
  );
  assert.equal(flow.code, 0, flow.stdout + flow.stderr);
  await query(cluster, 'cred_a', "INSERT INTO public.accounts VALUES (1000, 'new')");
  await waitFor(
    async () =>
      (await query(cluster, 'cred_b', 'SELECT 1 FROM public.accounts WHERE id = 1000')).length === 1,
    20_000,
    'a change to replicate with password authentication',
  );
  assert.deepEqual(commandLinesMentioning(PASSWORD), [], 'the password is on no command line');
  // Nor in the environment of Bucardo's processes: password_env variables are not passed on to them.
  // (The kicker, the tool's own process, keeps them: it logs in with them.)
  const holders = processesHolding([PASSWORD], job.dir).filter((p) => !/kicker/.test(p.cmdline));
  assert.deepEqual(holders, [], 'no Bucardo process holds the password in its environment');

  // Bucardo's private password file: mode 0600, in the job's state dir, holding the password we resolved.
  const privateFile = path.join(job.dir, 'state', '.pgpass');
  assert.equal(statSync(privateFile).mode & 0o777, 0o600);
  assert.match(readFileSync(privateFile, 'utf8'), /:cred_a:app:/);
  assert.match(
    readFileSync(privateFile, 'utf8'),
    /^127\.0\.0\.1:\d+:\*:bucardo:/m,
    "Bucardo's installer wrote its generated password here, not into ~/.pgpass",
  );

  // The operator's own password file works the same way (libpq's PGPASSFILE).
  const passfile = path.join(tempDir('passfile'), 'pgpass');
  const escaped = PASSWORD.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  writeFileSync(passfile, `127.0.0.1:${cluster.port}:*:app:${escaped}\n`, { mode: 0o600 });
  const status = await runTool(['-c', job.file, '-l', 'bucardo.status --json'], {
    env: { PGPASSFILE: passfile },
  });
  assert.equal(status.code, 0, status.stdout + status.stderr);
  assert.equal(
    (JSON.parse(status.stdout.trim().split('\n')[0]!) as { data: { verdict: string } }).data.verdict,
    'caught up',
  );

  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall'], { env: { APP_PW: PASSWORD } });
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
});

test('a scram install user whose password is only on a wildcard line of PGPASSFILE installs Bucardo', async (t) => {
  // Bucardo's schema script reconnects (\\c) to the new metadata database as the install user: that
  // login must find the password too (it once failed with "fe_sendauth: no password supplied").
  const adminPassword = 'adm:in\\pw';
  await query(
    cluster,
    'postgres',
    `CREATE ROLE admin SUPERUSER LOGIN PASSWORD '${adminPassword.replace(/'/g, "''")}'`,
  );
  // The bucardo role of an earlier test has a password only that test's job knew: start without it.
  await query(cluster, 'postgres', 'DROP ROLE IF EXISTS bucardo');
  const job = jobFile();
  writeFileSync(
    job.file,
    readFileSync(job.file, 'utf8').replace('install_user: postgres', 'install_user: admin'),
  );
  t.after(async () => {
    await forgetJob(job, cluster);
    await query(cluster, 'postgres', 'DROP ROLE IF EXISTS bucardo');
    await query(cluster, 'postgres', 'DROP ROLE IF EXISTS admin');
  });
  const passfile = path.join(tempDir('wildcard'), 'pgpass');
  const escape = (value: string) => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  writeFileSync(
    passfile,
    `127.0.0.1:${cluster.port}:*:admin:${escape(adminPassword)}\n*:*:*:app:${escape(PASSWORD)}\n`,
    { mode: 0o600 },
  );
  const install = await runTool(['-c', job.file, '-l', 'bucardo.install'], { env: { PGPASSFILE: passfile } });
  assert.equal(install.code, 0, install.stdout + install.stderr);
  assert.deepEqual(
    await query(cluster, 'bucardo', 'SELECT count(*)::int AS n FROM bucardo.db'),
    [{ n: 2 }],
    'primary and secondary recorded',
  );
  const privateFile = readFileSync(path.join(job.dir, 'state', '.pgpass'), 'utf8');
  assert.match(
    privateFile,
    new RegExp(`^127\\.0\\.0\\.1:${cluster.port}:\\*:admin:`, 'm'),
    'the wildcard line stays a wildcard line',
  );
  assert.deepEqual(processesHolding([adminPassword, PASSWORD], job.dir), []);
  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall'], {
    env: { PGPASSFILE: passfile },
  });
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
});
