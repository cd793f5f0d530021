// Password files, service files and the job's private password file, by libpq's rules.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { DatabaseConfig } from '../../src/config/types.js';
import { privatePgpassEntries } from '../../src/core/credentials.js';
import { formatPgpassLine, matchPassword, parsePgpassLine, readPgpass } from '../../src/core/pgpass.js';
import { findService, parseServiceSection, serviceFiles } from '../../src/core/pgservice.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { FIXTURE_PLUGINS, tempDir } from '../support/harness.js';

const dir = tempDir('credentials-unit');

function withEnv<T>(env: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    return fn();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

function secretFile(name: string, lines: string[], mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  chmodSync(file, mode);
  return file;
}

function database(role: DatabaseConfig['role'], overrides: Partial<DatabaseConfig> = {}): DatabaseConfig {
  return {
    role,
    host: 'db.example',
    port: 5432,
    dbname: role === 'bucardo' ? 'bucardo' : 'app',
    databaseOwner: 'app',
    schemaOwner: 'app',
    sslmode: 'prefer',
    installUser: 'admin',
    fallbackDb: 'postgres',
    cascade: false,
    ...overrides,
  };
}

test('pgpass lines as libpq reads them: the password ends at an unescaped colon, \\* is a literal star, CRLF', () => {
  assert.equal(parsePgpassLine('h:5432:*:u:secret:ignored')?.password, 'secret');
  assert.equal(parsePgpassLine('h:5432:*:u:se\\:cret\r')?.password, 'se:cret');
  assert.equal(parsePgpassLine('h:5432:db:u'), undefined, 'four fields are no line');
  const literalStar = parsePgpassLine('h:5432:\\*:u:pw')!;
  assert.equal(
    matchPassword([literalStar], 'h', 5432, 'anything', 'u'),
    undefined,
    'an escaped star matches only a database named *',
  );
  assert.equal(matchPassword([literalStar], 'h', 5432, '*', 'u'), 'pw');
  assert.equal(formatPgpassLine(literalStar), 'h:5432:\\*:u:pw');
});

test('pgpass matching: first matching line wins; the default socket is "localhost"; a readable file is ignored', () => {
  const entries = ['h:5432:sales:u:first', 'h:*:*:u:second', '*:*:*:*:last'].map((line) =>
    parsePgpassLine(line)!,
  );
  assert.equal(matchPassword(entries, 'h', 5432, 'sales', 'u'), 'first');
  assert.equal(matchPassword(entries, 'h', 6000, 'sales', 'u'), 'second');
  assert.equal(matchPassword(entries, 'other', 5432, 'x', 'v'), 'last');
  const local = [parsePgpassLine('localhost:5432:*:u:sock')!];
  assert.equal(matchPassword(local, '/var/run/postgresql', 5432, 'd', 'u'), 'sock');
  assert.equal(matchPassword(local, '/tmp/elsewhere', 5432, 'd', 'u'), undefined);
  assert.deepEqual(readPgpass(secretFile('open', ['h:*:*:u:pw'], 0o644)), []);
  assert.equal(readPgpass(secretFile('closed', ['h:*:*:u:pw'])).length, 1);
});

test("the private file keeps the operator's wildcard lines per server and user, after exact lines for known logins", () => {
  const operator = secretFile('operator', [
    '# mine',
    'db.example:5432:reports:app:reports-pw',
    'db.example:*:*:app:app-pw',
    '*:*:*:admin:admin-pw',
    'elsewhere:5432:*:app:not-this-server',
  ]);
  const bucardo = database('bucardo', { databaseOwner: 'bucardo' });
  const primary = database('primary');
  const entries = withEnv({ PGPASSFILE: operator, PGPASSWORD: undefined }, () =>
    privatePgpassEntries([
      { db: bucardo, user: 'admin', database: 'postgres' },
      { db: bucardo, user: 'admin', database: 'bucardo' },
      { db: primary, user: 'app', database: 'app' },
    ]),
  ).map(formatPgpassLine);
  assert.deepEqual(entries, [
    'db.example:5432:postgres:admin:admin-pw',
    'db.example:5432:bucardo:admin:admin-pw',
    'db.example:5432:app:app:app-pw',
    'db.example:5432:*:admin:admin-pw',
    'db.example:5432:reports:app:reports-pw',
    'db.example:5432:*:app:app-pw',
  ]);
  // Any database the schema script or daemon reconnects to as these users finds the same password libpq would.
  const parsed = entries.map((line) => parsePgpassLine(line)!);
  assert.equal(matchPassword(parsed, 'db.example', 5432, 'bucardo_custom', 'admin'), 'admin-pw');
  assert.equal(matchPassword(parsed, 'db.example', 5432, 'reports', 'app'), 'reports-pw');
});

test('the private file: password_env and PGPASSWORD cover every database and end the search; passfile comes before PGPASSFILE', () => {
  const passfile = secretFile('passfile', ['*:*:sales:app:from-passfile']);
  const operator = secretFile('operator2', ['*:*:*:app:from-operator']);
  const primary = database('primary', { passfile });
  const secondary = database('secondary', { host: 'db.other', passwordEnv: 'SECONDARY_PW' });
  const entries = withEnv({ PGPASSFILE: operator, PGPASSWORD: undefined, SECONDARY_PW: 'from-env' }, () =>
    privatePgpassEntries([
      { db: primary, user: 'app', database: 'app' },
      { db: secondary, user: 'app', database: 'app' },
    ]),
  ).map(formatPgpassLine);
  assert.deepEqual(entries, [
    'db.example:5432:app:app:from-operator',
    'db.other:5432:app:app:from-env',
    'db.example:5432:sales:app:from-passfile',
    'db.example:5432:*:app:from-operator',
    'db.other:5432:*:app:from-env',
  ]);
  const withPgpassword = withEnv({ PGPASSFILE: operator, PGPASSWORD: 'from-pgpassword' }, () =>
    privatePgpassEntries([{ db: database('primary'), user: 'app', database: 'app' }]),
  ).map(formatPgpassLine);
  assert.deepEqual(withPgpassword, [
    'db.example:5432:app:app:from-pgpassword',
    'db.example:5432:*:app:from-pgpassword',
  ]);
  const emptyPgpassword = withEnv({ PGPASSFILE: operator, PGPASSWORD: '' }, () =>
    privatePgpassEntries([{ db: database('primary'), user: 'app', database: 'app' }]),
  ).map(formatPgpassLine);
  assert.deepEqual(
    emptyPgpassword,
    ['db.example:5432:app:app:from-operator', 'db.example:5432:*:app:from-operator'],
    'an empty PGPASSWORD is none',
  );
});

test('service files: sections, key=value, first value wins, errors named; PGSERVICEFILE before PGSYSCONFDIR', () => {
  const text =
    '# services\n[other]\nhost=nope\n\n[sales]\n  host=db.sales\nport=6432\nport=7000\nsslmode=verify-full\n[after]\nhost=later\n';
  assert.deepEqual(parseServiceSection(text, 'sales'), {
    host: 'db.sales',
    port: '6432',
    sslmode: 'verify-full',
  });
  assert.equal(parseServiceSection(text, 'missing'), undefined);
  assert.throws(
    () => parseServiceSection('[s]\nhost db\n', 's', 'f.conf'),
    /syntax error in service file f\.conf, line 2/,
  );
  assert.throws(() => parseServiceSection('[s]\nservice=t\n', 's'), /nested service/);

  const sysconf = path.join(dir, 'sysconf');
  mkdirSync(sysconf);
  writeFileSync(
    path.join(sysconf, 'pg_service.conf'),
    '[sales]\nhost=system\n[reports]\nhost=reports.system\n',
  );
  const userFile = path.join(dir, 'user_service.conf');
  writeFileSync(userFile, '[sales]\nhost=user\npassword=svc-pw\n');
  const env = { PGSERVICEFILE: userFile, PGSYSCONFDIR: sysconf };
  assert.deepEqual(serviceFiles(env), [userFile, path.join(sysconf, 'pg_service.conf')]);
  assert.equal(findService('sales', env)?.settings['host'], 'user');
  assert.equal(findService('reports', env)?.settings['host'], 'reports.system');
  assert.equal(findService('nothing', env), undefined);
  assert.equal(serviceFiles({ HOME: '/home/op' })[0], '/home/op/.pg_service.conf');
});

const catalog = new PluginCatalog([path.join(process.cwd(), 'dist', 'plugins'), FIXTURE_PLUGINS]);
const CONFIG = (primary: string) => `
plugins: [bucardo]
databases:
  bucardo: {host: meta.example, port: 5432}
  primary: {${primary}}
  secondary: {host: db-b, port: 5433, dbname: app}
bucardo: {replication_name: creds}
`;

test("config: relative passfile and sslrootcert are relative to the config file's folder, not the working directory", async () => {
  const folder = path.join(dir, 'job');
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, 'job.yml');
  writeFileSync(file, CONFIG('host: db-a, dbname: app, passfile: secrets/pgpass, sslrootcert: certs/ca.crt'));
  const config = await loadConfig(file, catalog);
  assert.equal(config.databases.primary.passfile, path.join(folder, 'secrets', 'pgpass'));
  assert.equal(config.databases.primary.sslrootcert, path.join(folder, 'certs', 'ca.crt'));
});

test('config: a service fills host, port, dbname, user and SSL keys; explicit keys win; an unknown service is named', async () => {
  const serviceFile = path.join(dir, 'pg_service.conf');
  writeFileSync(
    serviceFile,
    '[sales]\nhost=db.sales\nport=6432\ndbname=sales\nuser=sales_owner\nsslmode=verify-full\nsslrootcert=/etc/ssl/sales-ca.crt\n',
  );
  const file = path.join(dir, 'service.yml');
  writeFileSync(file, CONFIG('service: sales, port: 7000'));
  const config = await withEnv({ PGSERVICEFILE: serviceFile }, () => loadConfig(file, catalog));
  const primary = config.databases.primary;
  assert.deepEqual(
    [
      primary.host,
      primary.port,
      primary.dbname,
      primary.databaseOwner,
      primary.sslmode,
      primary.sslrootcert,
      primary.service,
    ],
    ['db.sales', 7000, 'sales', 'sales_owner', 'verify-full', '/etc/ssl/sales-ca.crt', 'sales'],
  );
  writeFileSync(file, CONFIG('service: nosuch'));
  await assert.rejects(
    withEnv({ PGSERVICEFILE: serviceFile, PGSYSCONFDIR: dir }, () => loadConfig(file, catalog)),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.problems.some((p) =>
        p.startsWith(
          `databases.primary.service: service 'nosuch' is not defined in ${serviceFile} or ${path.join(dir, 'pg_service.conf')}`,
        ),
      ),
  );
});
