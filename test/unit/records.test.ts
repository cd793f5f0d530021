// A job's records in a shared metadata database (src/core/bucardo/records.ts): which names an installed
// job's records carry, which records are other jobs', and which ones a command may not change.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import {
  applyRecordedNames,
  otherJobs,
  recordedNames,
  removalPlan,
  sharedRecords,
  type MetadataRecords,
} from '../../src/core/bucardo/records.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { createJob, type Job } from '../../src/core/job.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { FIXTURE_PLUGINS, tempDir } from '../support/harness.js';

const dir = tempDir('records');
const catalog = new PluginCatalog([path.join(process.cwd(), 'dist', 'plugins'), FIXTURE_PLUGINS]);

async function job(name: string, primary = 'app_a', syncs = 1): Promise<Job> {
  const file = path.join(dir, `${name}-${Math.random()}.yml`);
  writeFileSync(
    file,
    `
plugins: [bucardo]
databases:
  bucardo: {database_owner: bucardo, fallback_db: postgres, host: meta, port: 5432}
  primary: {database_owner: app, dbname: ${primary}, host: db-a, port: 5432}
  secondary: {database_owner: app, dbname: app_b, host: db-b, port: 5433}
bucardo:
  replication_name: ${name}
  syncs: ${syncs}
`,
  );
  return createJob(await loadConfig(file, catalog));
}

/** The records a job of this console leaves: databases, dbgroup, sync and relgroup named after it. */
function installed(
  name: string,
  primary: string,
  secondary = 'app_b',
  dbs = [`${name}_primary`, `${name}_secondary`],
) {
  return {
    databases: [
      { name: dbs[0]!, host: 'db-a', port: '5432', dbname: primary },
      { name: dbs[1]!, host: 'db-b', port: '5433', dbname: secondary },
    ],
    dbgroups: [
      {
        name,
        members: [
          { db: dbs[0]!, role: 'source' },
          { db: dbs[1]!, role: 'target' },
        ],
      },
    ],
    syncs: [{ name, relgroup: name, dbgroup: name }],
    relgroups: [{ name, databases: [dbs[0]!] }],
  };
}

function merge(...parts: MetadataRecords[]): MetadataRecords {
  return {
    databases: parts.flatMap((p) => p.databases),
    dbgroups: parts.flatMap((p) => p.dbgroups),
    syncs: parts.flatMap((p) => p.syncs),
    relgroups: parts.flatMap((p) => p.relgroups),
  };
}

test('new jobs: records named after the job; another job beside it is listed and shares nothing', async () => {
  const two = await job('two', 'two_a');
  assert.deepEqual(two.bucardoDbName, { primary: 'two_primary', secondary: 'two_secondary' });
  assert.equal(two.dbgroupName, 'two');
  assert.equal(reverseJob(two).dbgroupName, 'two_back');
  const records = merge(installed('one', 'one_a'), installed('two', 'two_a'));
  assert.deepEqual(recordedNames(records, two), {
    dbgroup: 'two',
    databases: { primary: 'two_primary', secondary: 'two_secondary' },
  });
  const others = otherJobs(records, two);
  assert.deepEqual(
    others.map((o) => [o.name, o.syncs, o.databases.map((d) => `${d.name} ${d.where}`)]),
    [['one', ['one'], ['one_primary db-a:5432/one_a', 'one_secondary db-b:5433/app_b']]],
  );
  assert.deepEqual(sharedRecords(records, two), []);
  // A job named like another's with a suffix (shop and shop_2) is another job, not a stray relgroup.
  const shop = await job('shop', 'shop_a');
  assert.deepEqual(
    sharedRecords(merge(installed('shop', 'shop_a'), installed('shop_2', 'shop2_a')), shop),
    [],
  );
});

test('old names: the dbgroup a sync records and its databases are adopted; a shared one is kept on uninstall', async () => {
  // Job one installed the old way; job two's sync then got job one's dbgroup (the bug of issue 28).
  const legacyOne = installed('one', 'one_a', 'app_b', ['primary_db', 'secondary_db']);
  const records = merge(legacyOne, {
    databases: [],
    dbgroups: [],
    syncs: [{ name: 'two', relgroup: 'two', dbgroup: 'one' }],
    relgroups: [{ name: 'two', databases: ['primary_db'] }],
  });
  const two = await job('two', 'one_a');
  applyRecordedNames(two, recordedNames(records, two));
  assert.equal(two.dbgroupName, 'one', 'the backlog goes by the dbgroup the sync really uses');
  assert.deepEqual(two.bucardoDbName, { primary: 'primary_db', secondary: 'secondary_db' });
  const shared = sharedRecords(records, two);
  assert.ok(shared.length > 0 && shared.every((s) => s.job === 'one' && s.keepable), JSON.stringify(shared));
  const plan = removalPlan(records, two);
  assert.deepEqual([plan.syncs, plan.relgroups, plan.dbgroups, plan.databases], [['two'], ['two'], [], []]);
  assert.deepEqual(plan.kept.map((k) => k.record).sort(), [
    'database primary_db',
    'database secondary_db',
    'dbgroup one',
  ]);
  // Installed but no sync yet: the relgroup's tables on primary_db say so.
  const before = await job('old');
  const relgroupOnly = {
    databases: [],
    dbgroups: [],
    syncs: [],
    relgroups: [{ name: 'old', databases: ['primary_db'] }],
  };
  applyRecordedNames(before, recordedNames(relgroupOnly, before));
  assert.deepEqual(before.bucardoDbName, { primary: 'primary_db', secondary: 'secondary_db' });
  applyRecordedNames(before, {});
  assert.deepEqual(before.bucardoDbName, { primary: 'old_primary', secondary: 'old_secondary' });
});

test('the same replication name on other databases is another job: refused, nothing keepable', async () => {
  const records = installed('sm', 'sm_a1');
  const again = await job('sm', 'sm_a2');
  applyRecordedNames(again, recordedNames(records, again));
  const shared = sharedRecords(records, again);
  assert.equal(shared.length, 1, JSON.stringify(shared));
  assert.equal(shared[0]!.record, 'database sm_primary');
  assert.equal(shared[0]!.keepable, false);
  assert.match(shared[0]!.reason, /db-a:5432\/sm_a1.*db-a:5432\/sm_a2/);
  // The same job (same databases) shares nothing with itself.
  const same = await job('sm', 'sm_a1');
  assert.deepEqual(sharedRecords(records, same), []);
  // Its way back's records are its own too.
  const withWayBack = merge(records, {
    databases: [],
    dbgroups: [
      {
        name: 'sm_back',
        members: [
          { db: 'sm_secondary', role: 'source' },
          { db: 'sm_primary', role: 'target' },
        ],
      },
    ],
    syncs: [{ name: 'sm_back', relgroup: 'sm_back', dbgroup: 'sm_back' }],
    relgroups: [{ name: 'sm_back', databases: ['sm_secondary'] }],
  });
  assert.deepEqual(sharedRecords(withWayBack, same), []);
  assert.deepEqual(otherJobs(withWayBack, same), []);
});
