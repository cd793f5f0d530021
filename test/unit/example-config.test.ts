// configs/example.yml claims every key with its default: it is loaded through the real config loader
// and compared, value by value, with what the loader gives a minimal config that leaves those keys
// out; and every key the loader accepts must appear in it, so the two cannot drift apart.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { ROOT, tempDir } from '../support/harness.js';

const EXAMPLE = path.join(ROOT, 'configs', 'example.yml');
const catalog = new PluginCatalog([path.join(ROOT, 'dist', 'plugins')]);
const dir = tempDir('example');

/** The plugin sections the example documents (each with the defaults its plugin has). */
const PLUGIN_SECTIONS = ['retry', 'indexes', 'mat_views', 'cutover', 'concurrency'];

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
  'databases.bucardo.service',
  'databases.primary.service',
  'databases.secondary.service',
  'concurrency',
  'concurrency.bucardo_dbname',
  'metrics.listen',
]);

/** The sections checked for completeness, as key paths into the YAML. */
const SECTIONS = [
  '',
  'databases',
  'databases.bucardo',
  'databases.primary',
  'databases.secondary',
  'bucardo',
  'bucardo.replication_objects',
  'metrics',
  ...PLUGIN_SECTIONS,
];

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** What only the example sets that has no default: the required keys, with the example's values. */
const MINIMAL = `
plugins: [bucardo]
databases:
  bucardo: {}
  primary: {dbname: app}
  secondary: {dbname: app}
bucardo:
  replication_name: migrate_app
retry: {}
indexes: {}
mat_views: {}
cutover: {}
`;

/** The keys the loader accepts in each section, from its own "unknown key ... allowed here" message. */
async function allowedKeys(): Promise<Map<string, string[]>> {
  const probe = 'zz_probe';
  const config = yaml.load(MINIMAL) as Record<string, any>;
  // A plugin's section is read only when the plugin is enabled: enable every documented one.
  config['plugins'] = ['bucardo', ...PLUGIN_SECTIONS];
  for (const section of SECTIONS) {
    let at = config;
    for (const part of section.split('.').filter(Boolean)) at = at[part] ??= {};
    at[probe] = 1;
  }
  try {
    await loadConfig(write('probe.yml', yaml.dump(config)), catalog);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    const allowed = new Map<string, string[]>();
    for (const problem of error.problems) {
      const match = new RegExp(`^(?:(.*)\\.)?${probe}: unknown key.*allowed here: (.*)$`).exec(problem);
      if (match) allowed.set(match[1] ?? '', match[2]!.split(', '));
    }
    assert.deepEqual(
      [...allowed.keys()].sort(),
      [...SECTIONS].sort(),
      `every section reported its keys: ${error.problems.join('\n')}`,
    );
    return allowed;
  }
  assert.fail('the probe keys were accepted');
}

/** The example with its commented-out keys ("# key: value", "#   key: value") turned back into keys. */
function uncommented(text: string): { document: Record<string, any>; commented: Set<string> } {
  const lines = text.split('\n');
  const commentedLines = new Set<number>();
  const restored = lines.map((line, index) => {
    const match = /^(\s*)#(\s*)([a-z_]+:(?:\s.*)?)$/.exec(line);
    if (!match) return line;
    commentedLines.add(index);
    // "# key:" at the top level, "#   key:" inside a commented section, "  # key:" inside a section.
    return `${match[1]}${match[2]!.slice(1)}${match[3]}`;
  });
  const document = yaml.load(restored.join('\n')) as Record<string, any>;
  const original = yaml.load(text) as Record<string, any>;
  const commented = new Set<string>();
  const walk = (full: any, plain: any, prefix: string) => {
    if (!full || typeof full !== 'object' || Array.isArray(full)) return;
    for (const key of Object.keys(full)) {
      const keyPath = prefix ? `${prefix}.${key}` : key;
      if (!plain || typeof plain !== 'object' || !(key in plain)) commented.add(keyPath);
      walk(full[key], plain?.[key], keyPath);
    }
  };
  walk(document, original, '');
  assert.ok(commentedLines.size >= commented.size);
  return { document, commented };
}

test("configs/example.yml shows every value as the loader's default", async () => {
  // Plugin sections are read only for enabled plugins: enable every documented one (concurrency needs
  // a name of the operator's, so it stays off) on both sides, so their values are compared too.
  const withPlugins = (text: string) => {
    const document = yaml.load(text) as Record<string, any>;
    document['plugins'] = ['bucardo', ...PLUGIN_SECTIONS.filter((name) => name !== 'concurrency')];
    return yaml.dump(document);
  };
  const example = await loadConfig(write('example.yml', withPlugins(readFileSync(EXAMPLE, 'utf8'))), catalog);
  const minimal = await loadConfig(write('minimal.yml', withPlugins(MINIMAL)), catalog);
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
  const allowed = await allowedKeys();
  const { document, commented } = uncommented(readFileSync(EXAMPLE, 'utf8'));
  const missing: string[] = [];
  for (const section of SECTIONS) {
    let at: any = document;
    for (const part of section.split('.').filter(Boolean)) at = at?.[part];
    const present = new Set(Object.keys(at ?? {}));
    for (const key of allowed.get(section)!) {
      // Top level: the plugin sections this example documents; other plugins' sections are theirs.
      if (section === '' && !['plugins', 'databases', 'bucardo', 'metrics', ...PLUGIN_SECTIONS].includes(key))
        continue;
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
