// The pooler's ini file at the switch (plugins/cutover/pooler-config.ts): only the named entries'
// host, port and dbname change; every other byte (comments, other entries, other sections, an entry's
// other settings and their order, CRLF line ends) stays. And the cutover section's new keys parse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigReader } from '../../src/config/reader.js';
import {
  databaseEntries,
  entryTarget,
  parseConnectionString,
  pointEntries,
} from '../../plugins/cutover/pooler-config.js';
import { parseCutoverSettings } from '../../plugins/cutover/settings.js';

const INI = `;; the application's pooler
[databases]
; the shop, moved by the cutover
shop = host=10.0.0.1 port=5432 dbname=shop_a user=app pool_size=40
"odd name" = dbname=odd host=10.0.0.1   port=5432
reports = host=10.0.0.9 dbname=reports
* = host=10.0.0.1

[pgbouncer]
listen_port = 6432
; shop = host=this is a comment in another section
`;

test('pointEntries rewrites only the named entries, keeping comments, order and other settings', () => {
  const out = pointEntries(INI, ['shop', 'odd name'], { host: '10.0.0.2', port: 5433, dbname: 'shop_b' });
  const lines = out.split('\n');
  const before = INI.split('\n');
  assert.equal(lines.length, before.length);
  assert.equal(lines[3], 'shop = host=10.0.0.2 port=5433 dbname=shop_b user=app pool_size=40');
  assert.equal(lines[4], '"odd name" = dbname=shop_b host=10.0.0.2 port=5433');
  for (const index of [0, 1, 2, 5, 6, 7, 8, 9, 10, 11])
    assert.equal(lines[index], before[index], `line ${index}`);
});

test('pointEntries appends host, port and dbname an entry lacks, and keeps CRLF', () => {
  const out = pointEntries('[databases]\r\nshop = user=app\r\n', ['shop'], {
    host: 'db b',
    port: 5432,
    dbname: 'shop',
  });
  assert.equal(out, "[databases]\r\nshop = user=app host='db b' port=5432 dbname=shop\r\n");
});

test('entries of other sections and comments are not entries; a missing one is named', () => {
  const entries = databaseEntries(INI);
  assert.deepEqual([...entries.keys()], ['shop', 'odd name', 'reports', '*']);
  assert.deepEqual(entryTarget(entries.get('shop')!), { host: '10.0.0.1', port: 5432, dbname: 'shop_a' });
  assert.deepEqual(entryTarget(entries.get('reports')!), { host: '10.0.0.9', dbname: 'reports' });
  assert.throws(() => pointEntries(INI, ['shop', 'billing'], { host: 'h', port: 1, dbname: 'd' }), /billing/);
});

test('connection strings: quoted values with escapes', () => {
  assert.deepEqual(parseConnectionString("host=a password='it\\'s x' port = 5"), [
    { key: 'host', value: 'a' },
    { key: 'password', value: "it's x" },
    { key: 'port', value: '5' },
  ]);
  assert.throws(() => parseConnectionString("host='a"), /closing quote/);
});

test('cutover.pgbouncer, fence and switch_command are read; problems are named with their key', () => {
  const reader = new ConfigReader('job.yml');
  const settings = parseCutoverSettings(
    reader,
    {
      fence: ['app', 'web'],
      fence_grace: 2,
      switch_command: ['/usr/local/bin/repoint', '--zone', 'eu'],
      pgbouncer: { port: 6433, databases: ['shop'], config_file: '/etc/pgbouncer/pgbouncer.ini' },
    },
    'cutover',
  );
  assert.deepEqual(reader.problems, []);
  assert.deepEqual(settings.fence, ['app', 'web']);
  assert.equal(settings.fenceGraceSeconds, 2);
  assert.deepEqual(settings.switchCommand, ['/usr/local/bin/repoint', '--zone', 'eu']);
  assert.deepEqual(settings.pgbouncer, {
    host: '127.0.0.1',
    port: 6433,
    user: 'pgbouncer',
    databases: ['shop'],
    configFile: '/etc/pgbouncer/pgbouncer.ini',
    pauseTimeoutSeconds: 10,
  });

  const bad = new ConfigReader('job.yml');
  parseCutoverSettings(bad, { switch_command: 'repoint.sh', pgbouncer: { hots: 'x' } }, 'cutover');
  assert.deepEqual(bad.problems, [
    "cutover.switch_command: the program must be an absolute path (got repoint.sh): the command runs without a shell, from the tool's directory",
    "cutover.pgbouncer.hots: unknown key (did you mean 'host'?); allowed here: host, port, user, password_env, passfile, databases, config_file, pause_timeout",
    "cutover.pgbouncer.databases: is required: the pooler's database names the application connects to",
    "cutover.pgbouncer.config_file: is required: PgBouncer's ini file, whose [databases] entries are rewritten",
  ]);
});
