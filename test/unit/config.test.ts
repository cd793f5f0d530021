// Config parsing: every problem reported at once with its key path; the original tool's format.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { FIXTURE_PLUGINS, tempDir } from '../support/harness.js';

const dir = tempDir('config');
const catalog = new PluginCatalog([path.join(process.cwd(), 'dist', 'plugins'), FIXTURE_PLUGINS]);

function file(name: string, text: string): string {
  const target = path.join(dir, name);
  writeFileSync(target, text);
  return target;
}

async function problems(text: string): Promise<string[]> {
  try {
    await loadConfig(file(`c${Math.random()}.yml`, text), catalog);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

const VALID = `
plugins: [bucardo]
databases:
  bucardo: {database_owner: bucardo, fallback_db: postgres, host: localhost, port: 5432}
  primary: {database_owner: app, dbname: app, host: db-a, port: 5432, schema_owner: app_owner, cascade: false, disable_kicking: true}
  secondary: {database_owner: app, dbname: app, host: db-b, port: 5433, schema_owner: app_owner, cascade: false}
bucardo:
  copy_data: empty
  replication_name: migrate_db
  replication_objects: {namespace_include: [], namespace_exclude: [], table_include: [], table_exclude: []}
`;

test("the original tool's config.yml format loads unchanged, with defaults filled in", async () => {
  const config = await loadConfig(file('original.yml', VALID), catalog);
  assert.equal(config.bucardo.replicationName, 'migrate_db');
  assert.equal(config.bucardo.copyData, 'empty');
  assert.equal(
    config.bucardo.asynchronousKicking,
    true,
    'databases.primary.disable_kicking turns asynchronous kicking on',
  );
  assert.equal(config.databases.primary.schemaOwner, 'app_owner');
  assert.equal(config.databases.secondary.port, 5433);
  assert.equal(config.databases.bucardo.dbname, 'bucardo');
  assert.equal(config.bucardo.pidDir, '/var/run/bucardo/migrate_db_piddir');
  assert.equal(config.bucardo.logDir, '/var/log/bucardo');
  assert.equal(config.bucardo.lockTimeoutMs, 5000);
});

test('bucardo.asynchronous_kicking is accepted as well', async () => {
  const config = await loadConfig(
    file(
      'async.yml',
      VALID.replace('disable_kicking: true', 'disable_kicking: false').replace(
        'copy_data: empty',
        'copy_data: never\n  asynchronous_kicking: true\n  kick_interval: 0.25',
      ),
    ),
    catalog,
  );
  assert.equal(config.bucardo.asynchronousKicking, true);
  assert.equal(config.bucardo.kickInterval, 0.25);
  assert.equal(config.bucardo.copyData, 'never');
});

test('the kicker maintains the bookkeeping statistics unless bucardo.maintain_statistics is false', async () => {
  assert.equal(
    (await loadConfig(file('maintain-default.yml', VALID), catalog)).bucardo.maintainStatistics,
    true,
  );
  const off = await loadConfig(
    file(
      'maintain-off.yml',
      VALID.replace('copy_data: empty', 'copy_data: empty\n  maintain_statistics: false'),
    ),
    catalog,
  );
  assert.equal(off.bucardo.maintainStatistics, false);
  const found = await problems(
    VALID.replace('copy_data: empty', 'copy_data: empty\n  maintain_statistics: sometimes'),
  );
  assert.ok(
    found.some((p) => p.startsWith('bucardo.maintain_statistics')),
    found.join('\n'),
  );
});

// Whole seconds Bucardo's daemon is given at start: a default, a value taken, and values refused.
const SECONDS_SETTINGS = [
  { key: 'purge_interval', field: 'purgeIntervalSeconds', fallback: 10, set: 30, bad: ['0', '0.5', 'often'] },
  {
    key: 'worker_check_interval',
    field: 'workerCheckSeconds',
    fallback: 2,
    set: 5,
    bad: ['0', '1.5', '601'],
  },
] as const;

for (const { key, field, fallback, set, bad } of SECONDS_SETTINGS) {
  test(`bucardo.${key} defaults to ${fallback} s and must be whole seconds in its range`, async () => {
    const withValue = (value: string) =>
      VALID.replace('copy_data: empty', `copy_data: empty\n  ${key}: ${value}`);
    assert.equal((await loadConfig(file(`${key}-default.yml`, VALID), catalog)).bucardo[field], fallback);
    assert.equal(
      (await loadConfig(file(`${key}-set.yml`, withValue(String(set))), catalog)).bucardo[field],
      set,
    );
    for (const value of bad) {
      const found = await problems(withValue(value));
      assert.ok(
        found.some((p) => p.startsWith(`bucardo.${key}`)),
        `${value}: ${found.join('\n')}`,
      );
    }
  });
}

test('a bad port, an unknown key and a bad enum are all reported at once with their key paths', async () => {
  const found = await problems(
    VALID.replace('port: 5433', 'port: abc')
      .replace('schema_owner: app_owner, cascade: false}', 'schema_ownr: x}')
      .replace('copy_data: empty', 'copy_data: sometimes'),
  );
  assert.ok(found.includes("databases.secondary.port: expected an integer, got 'abc'"), found.join('\n'));
  assert.ok(
    found.some((p) =>
      p.startsWith("databases.secondary.schema_ownr: unknown key (did you mean 'schema_owner'?)"),
    ),
    found.join('\n'),
  );
  assert.ok(
    found.includes("bucardo.copy_data: expected one of always, never, empty, parallel, got 'sometimes'"),
    found.join('\n'),
  );
  assert.equal(found.length, 3, found.join('\n'));
});

test('a missing section and a missing required key are named', async () => {
  const found = await problems(
    'plugins: [bucardo]\ndatabases:\n  bucardo: {host: h}\n  primary: {host: a}\nbucardo: {}\n',
  );
  assert.ok(found.includes('databases.primary.dbname: is required'), found.join('\n'));
  assert.ok(
    found.some((p) => p.startsWith('databases.secondary: is required')),
    found.join('\n'),
  );
  assert.ok(found.includes('bucardo.replication_name: is required'), found.join('\n'));
});

test('an unknown plugin is an error listing the available ones', async () => {
  const found = await problems(
    VALID.replace('plugins: [bucardo]', 'plugins: [bucardo, bucardoo_extra, slepeer]'),
  );
  assert.ok(
    found.some(
      (p) =>
        p.startsWith("plugins: 'bucardoo_extra' is not a plugin") && p.includes('available plugins: bucardo'),
    ),
    found.join('\n'),
  );
  assert.ok(
    found.some((p) => p.includes("'slepeer' is not a plugin (did you mean 'sleeper'?)")),
    found.join('\n'),
  );
});

test('an unknown top-level key gets a did-you-mean', async () => {
  const found = await problems(`${VALID}\nbucaro: {}\n`);
  assert.ok(
    found.some((p) => p.startsWith("bucaro: unknown key (did you mean 'bucardo'?)")),
    found.join('\n'),
  );
});

test('replication names that Bucardo cannot use are refused with the reason', async () => {
  let found = await problems(VALID.replace('replication_name: migrate_db', 'replication_name: "my-job"'));
  assert.ok(
    found.some((p) => p.startsWith("bucardo.replication_name: 'my-job' must start with a letter")),
    found.join('\n'),
  );
  found = await problems(
    VALID.replace('replication_name: migrate_db', `replication_name: ${'x'.repeat(43)}`),
  );
  assert.ok(
    found.some((p) => p.includes("is 43 characters; at most 42 keep Bucardo's trigger names stable")),
    found.join('\n'),
  );
});

test('a YAML syntax error shows the file, line and column', async () => {
  const target = file('broken.yml', 'plugins: [bucardo\ndatabases:\n  primary: {\n');
  await assert.rejects(loadConfig(target, catalog), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, new RegExp(`${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(error.problems[0]!, /^YAML syntax error at line \d+, column \d+: /);
    return true;
  });
});

test('a missing file says how to point at one', async () => {
  await assert.rejects(
    loadConfig(path.join(dir, 'nope.yml'), catalog),
    /cannot read the file: it does not exist\. Pass the job's file with -c FILE/,
  );
});

test('sslmode, password_env and passfile are per database; bad values are named', async () => {
  const config = await loadConfig(
    file(
      'ssl.yml',
      VALID.replace(
        'host: db-a,',
        'host: db-a, sslmode: verify-full, sslrootcert: /etc/ca.crt, password_env: APP_PW, passfile: /secure/pgpass,',
      ),
    ),
    catalog,
  );
  assert.equal(config.databases.primary.sslmode, 'verify-full');
  assert.equal(config.databases.primary.sslrootcert, '/etc/ca.crt');
  assert.equal(config.databases.primary.passwordEnv, 'APP_PW');
  assert.equal(config.databases.primary.passfile, '/secure/pgpass');
  const found = await problems(
    VALID.replace('host: db-a,', 'host: db-a, sslmode: sometimes, password_env: "not a var",'),
  );
  assert.ok(
    found.some((p) =>
      p.startsWith(
        "databases.primary.sslmode: expected one of disable, allow, prefer, require, verify-ca, verify-full, got 'sometimes'",
      ),
    ),
    found.join('\n'),
  );
  assert.ok(
    found.some((p) =>
      p.startsWith("databases.primary.password_env: 'not a var' is not an environment variable name"),
    ),
    found.join('\n'),
  );
});
