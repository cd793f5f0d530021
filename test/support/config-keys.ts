// What the config loader accepts, asked of the loader itself: the tests that keep configs/example.yml
// and docs/configuration.md in step with the code (test/unit/example-config.test.ts,
// test/unit/config-reference.test.ts) use it, so a key added to the loader (src/config/load.ts or a
// plugin's settings.ts) fails both until it is shown in the example and documented.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { ROOT, tempDir } from './harness.js';

export const EXAMPLE = path.join(ROOT, 'configs', 'example.yml');
export const REFERENCE = path.join(ROOT, 'docs', 'configuration.md');
export const catalog = new PluginCatalog([path.join(ROOT, 'dist', 'plugins')]);

/** The plugin sections configs/example.yml documents (each with the defaults its plugin has). */
export const PLUGIN_SECTIONS = ['retry', 'indexes', 'mat_views', 'cutover', 'concurrency', 'schema'];

/** The top-level keys whose sections configs/example.yml shows. */
export const EXAMPLE_TOP_LEVEL = ['plugins', 'databases', 'bucardo', 'metrics', ...PLUGIN_SECTIONS];

let dir: string | undefined;
export function writeConfig(name: string, text: string): string {
  dir ??= tempDir('config-keys');
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** What only the example sets that has no default: the required keys, with the example's values. */
export const MINIMAL = `
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
schema: {}
`;

/**
 * The sections to ask the loader about: the root, and every mapping configs/example.yml shows under
 * the top-level keys it documents (a new sub-section shown in the example is asked about by itself).
 */
export function sectionsOf(document: Record<string, unknown>): string[] {
  const sections = [''];
  const walk = (value: unknown, prefix: string) => {
    // An empty mapping is a value ("{}": the bucardo section's filters), not a section of keys.
    if (!value || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0)
      return;
    sections.push(prefix);
    for (const [key, child] of Object.entries(value)) walk(child, prefix ? `${prefix}.${key}` : key);
  };
  for (const key of EXAMPLE_TOP_LEVEL) walk(document[key], key);
  return sections;
}

/** The keys the loader accepts in each section, from its own "unknown key ... allowed here" message. */
export async function allowedKeys(sections: string[]): Promise<Map<string, string[]>> {
  const probe = 'zz_probe';
  const config = yaml.load(MINIMAL) as Record<string, any>;
  // A plugin's section is read only when the plugin is enabled: enable every documented one.
  config['plugins'] = ['bucardo', ...PLUGIN_SECTIONS];
  for (const section of sections) {
    let at = config;
    for (const part of section.split('.').filter(Boolean)) at = at[part] ??= {};
    at[probe] = 1;
  }
  try {
    await loadConfig(writeConfig('probe.yml', yaml.dump(config)), catalog);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    const allowed = new Map<string, string[]>();
    for (const problem of error.problems) {
      const match = new RegExp(`^(?:(.*)\\.)?${probe}: unknown key.*allowed here: (.*)$`).exec(problem);
      if (match) allowed.set(match[1] ?? '', match[2]!.split(', '));
    }
    assert.deepEqual(
      [...allowed.keys()].sort(),
      [...sections].sort(),
      `every section reported its keys: ${error.problems.join('\n')}`,
    );
    return allowed;
  }
  assert.fail('the probe keys were accepted');
}

/** The example with its commented-out keys ("# key: value", "#   key: value") turned back into keys. */
export function uncommented(text: string): { document: Record<string, any>; commented: Set<string> } {
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
