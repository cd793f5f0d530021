// bucardo.syncs: the balancing of tables over syncs (pure), the sync names, and the config key.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { assignTables, connectedGroups, tableWeights } from '../../src/core/bucardo/balance.js';
import { addSyncArguments } from '../../src/core/bucardo/sync.js';
import { jobSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { expectedTriggers, jobTriggerNames } from '../../src/core/bucardo/triggers.js';
import { createJob } from '../../src/core/job.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { FIXTURE_PLUGINS, tempDir } from '../support/harness.js';

const load = (table: string, bytes: number, writes: number) => ({ table, bytes, writes });

test('weights: share of bytes plus share of writes; an all-zero figure drops out', () => {
  const w = tableWeights([load('a', 300, 0), load('b', 100, 0)]);
  assert.deepEqual([...w.values()], [0.75, 0.25]);
  const both = tableWeights([load('a', 100, 0), load('b', 100, 10)]);
  assert.deepEqual([...both.values()], [0.5, 1.5]);
});

test('union-find: tables tied by foreign keys form one group, links to tables out of scope are ignored', () => {
  assert.deepEqual(
    connectedGroups(
      ['d', 'a', 'b', 'c', 'e'],
      [
        ['b', 'a'],
        ['c', 'b'],
        ['e', 'x'],
      ],
    ),
    [['a', 'b', 'c'], ['d'], ['e']],
  );
});

test('balancing: heaviest first to the lightest sync; every sync gets a table when there are enough', () => {
  const tables = [
    load('big', 1000, 1000),
    load('m1', 300, 300),
    load('m2', 300, 300),
    load('s1', 100, 100),
    load('s2', 100, 100),
    load('s3', 100, 100),
  ];
  const { syncOf, load: loads } = assignTables(tables, [], 3);
  assert.equal(syncOf.get('big'), 0);
  assert.equal(syncOf.get('m1'), 1);
  assert.equal(syncOf.get('m2'), 2);
  assert.deepEqual(
    loads.map((l) => l.tables),
    [1, 3, 2],
  );
  // big alone outweighs the rest; the other two syncs differ by less than one small table.
  const spread = loads.map((l) => l.weight);
  assert.ok(Math.abs(spread[1]! - spread[2]!) <= 0.11, spread.join(', '));
  // Tables with no size and no writes at all still spread by count.
  const idle = assignTables([load('a', 0, 0), load('b', 0, 0), load('c', 0, 0), load('d', 0, 0)], [], 2);
  assert.deepEqual(
    idle.load.map((l) => l.tables),
    [2, 2],
  );
});

test('balancing: FK-tied tables share a sync; recorded tables keep theirs; new tied tables join them', () => {
  const tables = [load('parent', 100, 100), load('child', 100, 100), load('a', 150, 150), load('b', 10, 10)];
  const links: [string, string][] = [['child', 'parent']];
  const first = assignTables(tables, links, 2);
  assert.equal(first.syncOf.get('parent'), first.syncOf.get('child'));
  assert.notEqual(first.syncOf.get('a'), first.syncOf.get('parent'));
  // A rerun with other figures moves nothing recorded; a new table tied to parent goes to parent's sync.
  const recorded = new Map([...first.syncOf]);
  const grown = [
    ...tables.map((t) => ({ ...t, bytes: t.bytes * (t.table === 'b' ? 1000 : 1) })),
    load('grandchild', 1, 1),
  ];
  const second = assignTables(grown, [...links, ['grandchild', 'child']], 2, recorded);
  for (const [table, index] of recorded) assert.equal(second.syncOf.get(table), index, table);
  assert.equal(second.syncOf.get('grandchild'), first.syncOf.get('parent'));
  // Fewer groups than syncs: a sync stays empty (install refuses that with its fix).
  const tied = assignTables(tables.slice(0, 2), links, 2);
  assert.deepEqual(
    tied.load.map((l) => l.tables),
    [2, 0],
  );
});

const dir = tempDir('syncs');
const catalog = new PluginCatalog([path.join(process.cwd(), 'dist', 'plugins'), FIXTURE_PLUGINS]);
const CONFIG = (name: string, syncs?: string) => `
plugins: [bucardo]
databases:
  bucardo: {database_owner: bucardo, fallback_db: postgres, host: localhost, port: 5432}
  primary: {database_owner: app, dbname: app, host: db-a, port: 5432, schema_owner: app_owner}
  secondary: {database_owner: app, dbname: app, host: db-b, port: 5433, schema_owner: app_owner}
bucardo:
  replication_name: ${name}
${syncs === undefined ? '' : `  syncs: ${syncs}\n`}`;

async function configOf(text: string) {
  const file = path.join(dir, `c${Math.random()}.yml`);
  writeFileSync(file, text);
  return loadConfig(file, catalog);
}

test('bucardo.syncs: 1 by default (one sync named after the job); N syncs <name>_1..N sharing one dbgroup', async () => {
  const one = createJob(await configOf(CONFIG('mig')));
  assert.equal(one.config.bucardo.syncs, 1);
  assert.deepEqual(syncNames(one), ['mig']);
  assert.deepEqual(jobSyncs(one), [{ name: 'mig', relgroup: 'mig', index: 0 }]);
  // The job's own dbgroup, never dbs= (Bucardo would reuse another job's dbgroup of the same databases).
  assert.deepEqual(addSyncArguments(one).slice(0, 5), ['add', 'sync', 'mig', 'relgroup=mig', 'dbgroup=mig']);
  assert.deepEqual(one.bucardoDbName, { primary: 'mig_primary', secondary: 'mig_secondary' });
  assert.deepEqual(jobTriggerNames(one), ['bucardo_delta', 'bucardo_note_trunc_mig', 'bucardo_kick_mig']);
  const three = createJob(await configOf(CONFIG('mig', '3')));
  assert.deepEqual(syncNames(three), ['mig_1', 'mig_2', 'mig_3']);
  assert.deepEqual(addSyncArguments(three, jobSyncs(three)[1]).slice(0, 5), [
    'add',
    'sync',
    'mig_2',
    'relgroup=mig_2',
    'dbgroup=mig',
  ]);
  assert.deepEqual(
    [...expectedTriggers(three, 'mig_2').keys()],
    ['bucardo_delta', 'bucardo_note_trunc_mig_2', 'bucardo_kick_mig_2'],
  );
});

test('bucardo.syncs: a whole number from 1 to 32, and the longest sync name within 42 characters', async () => {
  for (const bad of ['0', '33', '1.5', 'many']) {
    await assert.rejects(configOf(CONFIG('mig', bad)), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.ok(
        error.problems.some((p) => p.startsWith('bucardo.syncs')),
        error.problems.join('\n'),
      );
      return true;
    });
  }
  const long = 'x'.repeat(41);
  await configOf(CONFIG(long));
  await assert.rejects(configOf(CONFIG(long, '4')), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.problems.join('\n'), /bucardo\.syncs.*'x{41}_4' \(43 characters\)/);
    return true;
  });
});
