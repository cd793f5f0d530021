// configs/example.yml claims every key with its default: it is loaded through the real config loader
// and compared, value by value, with what the loader gives a minimal config that leaves those keys
// out; and every key the loader accepts must appear in it, so the two cannot drift apart.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { loadConfig } from '../../src/config/load.js';
import {
  allowedKeys,
  catalog,
  EXAMPLE,
  EXAMPLE_TOP_LEVEL,
  MINIMAL,
  PLUGIN_SECTIONS,
  sectionsOf,
  uncommented,
  writeConfig,
} from '../support/config-keys.js';

/**
 * Keys the example may show only commented out: they have no fixed default (a password source, a
 * certificate, a count of this machine's CPUs, a name the operator must choose, the filters the
 * plugin otherwise takes from the bucardo section). Every other key must be there with its default.
 */
const NO_FIXED_DEFAULT = new Set([
  'databases.bucardo.sslrootcert',
  'databases.bucardo.password_env',
  'databases.bucardo.passfile',
  'databases.primary.sslrootcert',
  'databases.primary.password_env',
  'databases.primary.passfile',
  'databases.secondary.sslrootcert',
  'databases.secondary.password_env',
  'databases.secondary.passfile',
  'indexes.jobs',
  'indexes.replication_objects',
  'mat_views.jobs',
  'mat_views.replication_objects',
  'cutover.jobs',
  'cutover.switch_command',
  'cutover.pgbouncer',
  'cutover.pgbouncer.host',
  'cutover.pgbouncer.port',
  'cutover.pgbouncer.user',
  'cutover.pgbouncer.password_env',
  'cutover.pgbouncer.passfile',
  'cutover.pgbouncer.databases',
  'cutover.pgbouncer.config_file',
  'cutover.pgbouncer.pause_timeout',
  'databases.bucardo.service',
  'databases.primary.service',
  'databases.secondary.service',
  'concurrency',
  'concurrency.bucardo_dbname',
  'metrics.listen',
  'databases.secondaries',
]);

test("configs/example.yml shows every value as the loader's default", async () => {
  // Plugin sections are read only for enabled plugins: enable every documented one (concurrency needs
  // a name of the operator's, so it stays off) on both sides, so their values are compared too.
  const withPlugins = (text: string) => {
    const document = yaml.load(text) as Record<string, any>;
    document['plugins'] = ['bucardo', ...PLUGIN_SECTIONS.filter((name) => name !== 'concurrency')];
    return yaml.dump(document);
  };
  const example = await loadConfig(
    writeConfig('example.yml', withPlugins(readFileSync(EXAMPLE, 'utf8'))),
    catalog,
  );
  const minimal = await loadConfig(writeConfig('minimal.yml', withPlugins(MINIMAL)), catalog);
  assert.ok(
    example.pluginSettings['retry'] && example.pluginSettings['indexes'],
    'plugin sections were read',
  );
  const strip = (config: typeof example) => ({ ...config, file: '' });
  assert.deepEqual(strip(example), strip(minimal));
  // A few the issue named, spelled out so a failure reads plainly.
  assert.equal(example.bucardo.asynchronousKicking, false);
  assert.equal(example.bucardo.workerSleep, minimal.bucardo.workerSleep);
  assert.deepEqual(example.pluginSettings['cutover'], minimal.pluginSettings['cutover']);
});

test('configs/example.yml lists every key the loader accepts; only keys without a fixed default are commented out', async () => {
  const { document, commented } = uncommented(readFileSync(EXAMPLE, 'utf8'));
  const sections = sectionsOf(document);
  const allowed = await allowedKeys(sections);
  const missing: string[] = [];
  for (const section of sections) {
    let at: any = document;
    for (const part of section.split('.').filter(Boolean)) at = at?.[part];
    const present = new Set(Object.keys(at ?? {}));
    for (const key of allowed.get(section)!) {
      // Top level: the plugin sections this example documents; other plugins' sections are theirs.
      if (section === '' && !EXAMPLE_TOP_LEVEL.includes(key)) continue;
      if (!present.has(key)) missing.push(section ? `${section}.${key}` : key);
    }
  }
  assert.deepEqual(missing, [], 'keys the loader accepts that configs/example.yml does not show');
  const wronglyCommented = [...commented].filter((key) => !NO_FIXED_DEFAULT.has(key));
  assert.deepEqual(
    wronglyCommented,
    [],
    'keys with a default must be shown uncommented, so their value is checked',
  );
});
