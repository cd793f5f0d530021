// The original tool's config.yml (test/fixtures/original-config.yml, its repository's file verbatim)
// loads unchanged and `--help` lists every command of every plugin it enables; enabling fork_bucardo
// in it adds that plugin's commands; the section's placeholder paths are refused only when enabled.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { PluginCatalog } from '../../src/core/plugin.js';
import { ROOT, runTool, tempDir } from '../support/harness.js';

const ORIGINAL = path.join(ROOT, 'test', 'fixtures', 'original-config.yml');
const catalog = new PluginCatalog([path.join(ROOT, 'dist', 'plugins')]);

async function commandsOf(plugins: string[]): Promise<string[]> {
  const names: string[] = [];
  for (const name of plugins) {
    names.push(...Object.keys((await catalog.load(name)).commands).map((command) => `${name}.${command}`));
  }
  return names;
}

function menuCommands(stdout: string): string[] {
  return [...stdout.matchAll(/^ {2}(\w+\.\w+)[ :]/gm)].map((match) => match[1]!);
}

test('the original config.yml loads verbatim and --help lists every command of its plugins', async () => {
  const result = await runTool(['-c', ORIGINAL, '--help'], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stdout, /did not|problem/, result.stdout);
  const expected = await commandsOf(['bucardo', 'concurrency', 'indexes', 'mat_views', 'retry']);
  assert.ok(expected.length >= 20, `the plugins have commands: ${expected.join(', ')}`);
  assert.deepEqual(menuCommands(result.stdout).sort(), expected.sort());
  assert.doesNotMatch(
    result.stdout,
    /fork_bucardo\./,
    'fork_bucardo is not enabled there: its section is ignored',
  );
});

test('with fork_bucardo enabled and the documented sample, its commands are listed too', async () => {
  const config = yaml.load(readFileSync(ORIGINAL, 'utf8')) as Record<string, any>;
  config['plugins'].push('fork_bucardo');
  config['fork_bucardo'] = {
    log_deltacounts: {
      file: '/usr/share/perl5/Bucardo.pm',
      pattern: '.*Total delta count.*',
      replacement:
        '            $self->glog("Total delta count: $deltacount{all}", ' +
        '$deltacount{all} ? LOG_NORMAL : LOG_VERBOSE);',
    },
    log_deltacounts_revert: {
      file: '/usr/share/perl5/Bucardo.pm',
      pattern: '.*Total delta count.*',
      replacement: '            $self->glog("Total delta count: $deltacount{all}", LOG_VERBOSE);',
    },
  };
  const file = path.join(tempDir('original-config'), 'config.yml');
  writeFileSync(file, yaml.dump(config));
  const result = await runTool(['-c', file, '--help'], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  const expected = await commandsOf([
    'bucardo',
    'concurrency',
    'fork_bucardo',
    'indexes',
    'mat_views',
    'retry',
  ]);
  assert.deepEqual(menuCommands(result.stdout).sort(), expected.sort());
  assert.ok(expected.includes('fork_bucardo.apply_changes') && expected.includes('fork_bucardo.revert'));
});

test("enabling fork_bucardo with the original's placeholder changes is refused, naming the accepted files", async () => {
  const text = readFileSync(ORIGINAL, 'utf8').replace('    - retry\n', '    - retry\n    - fork_bucardo\n');
  assert.notEqual(text, readFileSync(ORIGINAL, 'utf8'));
  const file = path.join(tempDir('original-config'), 'config.yml');
  writeFileSync(file, text);
  const result = await runTool(['-c', file, '-l', 'fork_bucardo.apply_changes'], { timeoutMs: 60_000 });
  assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
  assert.match(
    result.stderr,
    /fork_bucardo\.change1\.file: '\/path\/to\/file' is not one of Bucardo's installed files/,
  );
  assert.match(
    result.stderr,
    /can fork: \/usr\/bin\/bucardo, \/usr\/share\/perl5\/Bucardo\.pm, \/usr\/share\/bucardo\/bucardo\.schema/,
  );
  assert.match(result.stderr, /fork_bucardo\.change2\.file/);
});

test("every plugin's section is ignored while the plugin is not enabled, whatever it holds", async () => {
  const config = yaml.load(readFileSync(ORIGINAL, 'utf8')) as Record<string, any>;
  config['plugins'] = ['bucardo'];
  const plugins = catalog.available().filter((name) => name !== 'bucardo');
  for (const name of plugins) config[name] = { not_a_key: 'not a value' };
  const file = path.join(tempDir('original-config'), 'config.yml');
  writeFileSync(file, yaml.dump(config));
  const result = await runTool(['-c', file, '--help'], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(menuCommands(result.stdout).sort(), (await commandsOf(['bucardo'])).sort(), result.stdout);
  assert.ok(plugins.includes('fork_bucardo') && plugins.includes('concurrency'), plugins.join());
});
