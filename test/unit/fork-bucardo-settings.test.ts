// The fork_bucardo section as the config loader reads it, and the forked file contents computed
// from the packaged files (pure: nothing is written, no database).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { createJob } from '../../src/core/job.js';
import { OperatorError } from '../../src/core/errors.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import { forkedContents } from '../../plugins/fork_bucardo/apply.js';
import { forkSettings } from '../../plugins/fork_bucardo/settings.js';
import { tempDir } from '../support/harness.js';

const dir = tempDir('fork-settings');
const catalog = new PluginCatalog([path.join(process.cwd(), 'dist', 'plugins')]);

function config(plugins: string, section: string): string {
  const file = path.join(dir, `c${Math.random()}.yml`);
  writeFileSync(
    file,
    `plugins: [${plugins}]
databases:
  bucardo: {host: localhost}
  primary: {dbname: a}
  secondary: {dbname: b}
bucardo: {replication_name: forked, state_dir: ${dir}/state}
fork_bucardo:
${section}`,
  );
  return file;
}

async function problems(file: string): Promise<string[]> {
  try {
    await loadConfig(file, catalog);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

const SAMPLE = `  log_deltacounts:
    file: /usr/share/perl5/Bucardo.pm
    pattern: '.*Total delta count.*'
    replacement: '            $self->glog("Total delta count: $deltacount{all}",
      $deltacount{all} ? LOG_NORMAL : LOG_VERBOSE);'
`;

test('the documented sample loads; its changes keep their order and text', async () => {
  const loaded = await loadConfig(config('bucardo, fork_bucardo', SAMPLE), catalog);
  const { changes } = forkSettings(loaded);
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.name, 'log_deltacounts');
  assert.match(changes[0]!.replacement, /^ {12}\$self->glog\("Total delta count: \$deltacount\{all\}"/);
});

test('every problem of the section is reported at once, with its key path', async () => {
  const found = await problems(
    config(
      'bucardo, fork_bucardo',
      `  a: {file: /etc/passwd, pattern: x, replacement: y}
  b: {file: /usr/bin/bucardo, pattern: 'a\\|b', replacement: y}
  c: {file: /usr/bin/bucardo, pattern: x}
  d: {file: /usr/bin/bucardo, pattern: x, replacement: y, flags: g}
  e: just a string
`,
    ),
  );
  assert.deepEqual(
    found.map((p) => p.split(':')[0]),
    [
      'fork_bucardo.a.file',
      'fork_bucardo.b',
      'fork_bucardo.c.replacement',
      'fork_bucardo.d.flags',
      'fork_bucardo.e',
    ],
  );
  assert.match(found[1]!, /alternation/);
});

test("an empty replacement deletes, as in sed; a disabled plugin's section is not read at all", async () => {
  const strip = "  strip: {file: /usr/bin/bucardo, pattern: x, replacement: ''}\n";
  const empty = await loadConfig(config('bucardo, fork_bucardo', strip), catalog);
  assert.equal(forkSettings(empty).changes[0]!.replacement, '');
  const placeholder = '  change1: {file: /path/to/file, pattern: pattern1}\n';
  const disabled = await loadConfig(config('bucardo', placeholder), catalog);
  assert.deepEqual(forkSettings(disabled).changes, []);
});

test('the forked contents come from the packaged files each time; an unmatched pattern applies nothing', async () => {
  const job = createJob(await loadConfig(config('bucardo, fork_bucardo', SAMPLE), catalog));
  const first = forkedContents(job);
  const second = forkedContents(job);
  assert.equal(first.changes[0]!.matches, 1);
  assert.deepEqual([...second.contents], [...first.contents]);
  assert.deepEqual(second.packaged, first.packaged);
  assert.equal([...first.contents.keys()].length, 3, 'every Bucardo file is copied, changed or not');

  const nowhere = "  nowhere: {file: /usr/bin/bucardo, pattern: 'no such text', replacement: x}\n";
  const unmatched = createJob(
    await loadConfig(config('bucardo, fork_bucardo', `${SAMPLE}${nowhere}`), catalog),
  );
  const expected = new RegExp(
    "fork_bucardo\\.nowhere: the pattern 'no such text' matches no line of /usr/bin/bucardo\\. " +
      'Nothing was applied \\(the job still runs the packaged Bucardo\\)',
  );
  assert.throws(
    () => forkedContents(unmatched),
    (error: unknown) => error instanceof OperatorError && expected.test(error.message),
  );

  const none = createJob(await loadConfig(config('bucardo, fork_bucardo', '  {}\n'), catalog));
  assert.throws(() => forkedContents(none), /lists no change, so there is nothing to apply/);
});
