// Declared command arguments: every kind, the errors an operator can make, and did-you-mean.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  argumentHelpLines,
  parseCommandArguments,
  parseValue,
  type ArgumentDescriptor,
} from '../../src/core/arguments.js';
import bucardo from '../../plugins/bucardo/index.js';
import cutover from '../../plugins/cutover/index.js';
import indexes from '../../plugins/indexes/index.js';
import retry from '../../plugins/retry/index.js';
import schema from '../../plugins/schema/index.js';

const declared: Record<string, ArgumentDescriptor> = {
  'dry-run': { kind: 'flag', help: 'list only' },
  jobs: { kind: 'integer', default: 4, help: 'workers' },
  ratio: { kind: 'number', help: 'a fraction' },
  settle: { kind: 'seconds', help: 'wait' },
  watch: { kind: 'seconds', bareValue: 5, help: 'repeat' },
  table: { kind: 'string', help: 'a table' },
  setting: { kind: 'assignment', placeholder: 'SETTING=VALUE', help: 'a setting' },
  now: { kind: 'flag', conflicts: ['later'], help: 'now' },
  later: { kind: 'flag', help: 'later' },
};

const parse = (...words: string[]) => parseCommandArguments('demo.cmd', declared, words);

test('every kind parses, with defaults for what is not given', () => {
  const parsed = parse(
    '--dry-run',
    '--jobs',
    '8',
    '--ratio=0.5',
    '--settle',
    '2m',
    '--table',
    'public.orders',
    'log_level=verbose',
  );
  assert.deepEqual(parsed.problems, []);
  assert.equal(parsed.options.flag('dry-run'), true);
  assert.equal(parsed.options.number('jobs'), 8);
  assert.equal(parsed.options.number('ratio'), 0.5);
  assert.equal(parsed.options.number('settle'), 120);
  assert.equal(parsed.options.string('table'), 'public.orders');
  assert.deepEqual(parsed.options.assignment('setting'), { name: 'log_level', value: 'verbose' });
  assert.equal(parsed.options.number('watch'), undefined);
  assert.equal(parsed.options.has('jobs'), true);

  const empty = parse();
  assert.deepEqual(empty.problems, []);
  assert.equal(empty.options.flag('dry-run'), false);
  assert.equal(empty.options.number('jobs'), 4, 'the declared default');
  assert.equal(empty.options.has('jobs'), false, 'a default is not "given"');
  assert.equal(empty.json, false);
});

test('an optional value: alone it takes its bare value, a following value word is taken, a command is not', () => {
  assert.equal(parse('--watch').options.number('watch'), 5);
  assert.equal(parse('--watch', '10').options.number('watch'), 10);
  assert.equal(parse('--watch=1.5').options.number('watch'), 1.5);
  const next = parse('--watch', 'bucardo.stop');
  assert.equal(next.options.number('watch'), 5);
  assert.match(next.problems.join('\n'), /does not accept 'bucardo\.stop'/);
});

test('value arguments also take the bare name=VALUE form; seconds accept s, m and h', () => {
  assert.equal(parse('settle=0').options.number('settle'), 0);
  assert.equal(
    parseCommandArguments('x', { settle: { kind: 'seconds', help: '' } }, ['settle=30s']).options.number(
      'settle',
    ),
    30,
  );
  assert.deepEqual(parseValue('seconds', '1h'), { value: 3600 });
  assert.ok('error' in parseValue('seconds', '-1'));
  assert.ok('error' in parseValue('integer', '1.5'));
  assert.ok('error' in parseValue('number', 'abc'));
});

test("--json and --help are the runner's, accepted by every command and never in options", () => {
  const parsed = parseCommandArguments('plain.cmd', undefined, ['--json', '--help']);
  assert.deepEqual(parsed.problems, []);
  assert.equal(parsed.json, true);
  assert.equal(parsed.help, true);
  assert.equal(parsed.options.has('json'), false);
});

test("unknown words are refused with the command's arguments and a did-you-mean", () => {
  const typo = parseCommandArguments('indexes.drop', indexes.commands['drop']!.arguments, ['--dryrun']);
  assert.equal(typo.problems.length, 1);
  assert.match(
    typo.problems[0]!,
    /^indexes\.drop does not accept '--dryrun'\. Did you mean '--dry-run'\? indexes\.drop accepts --dry-run, --upstream-copy-done, --target NAME, --json, --help; 'indexes\.drop --help' explains them\.$/,
  );
  assert.match(parse('dry-run').problems[0]!, /does not accept 'dry-run'\. Did you mean '--dry-run'\?/);
  assert.match(parse('-dry-run').problems[0]!, /Did you mean '--dry-run'\?/);
  assert.doesNotMatch(parse('--completely-else').problems[0]!, /Did you mean/);
  const none = parseCommandArguments('bucardo.install', undefined, ['--force']);
  assert.match(
    none.problems[0]!,
    /bucardo\.install does not accept '--force'\. bucardo\.install accepts --json, --help/,
  );
});

test('malformed values and arguments: every problem is reported at once', () => {
  const parsed = parse('--jobs', 'many', '--table', '--dry-run=yes', '--settle=soon', '=x', 'now');
  assert.equal(parsed.problems.length, 6, parsed.problems.join('\n'));
  assert.match(parsed.problems[0]!, /'many' is not a valid value for --jobs: expected a whole number/);
  assert.match(parsed.problems[1]!, /--table VALUE needs a value, e\.g\. --table=VALUE/);
  assert.match(parsed.problems[2]!, /--dry-run is a flag and takes no value/);
  assert.match(parsed.problems[3]!, /'soon' is not a valid value for --settle: expected a duration/);
  assert.match(parsed.problems[4]!, /'=x' has no name before '='\. Write SETTING=VALUE/);
  assert.match(parsed.problems[5]!, /does not accept 'now'\. Did you mean '--now'\?/);
  assert.match(parse('--jobs', '1', '--jobs', '2').problems[0]!, /gives --jobs a second time/);
  assert.match(parse('--now', '--later').problems[0]!, /--later and --now cannot be given together/);
});

test('assignments: NAME=VALUE with a name and a value, once', () => {
  const changeConfig = bucardo.commands['change_config']!.arguments;
  const ok = parseCommandArguments('bucardo.change_config', changeConfig, ['log_level=verbose']);
  assert.deepEqual(ok.options.assignment('setting'), { name: 'log_level', value: 'verbose' });
  assert.deepEqual(
    parseCommandArguments('bucardo.change_config', changeConfig, ['piddir=/tmp/a=b']).options.assignment(
      'setting',
    ),
    { name: 'piddir', value: '/tmp/a=b' },
  );
  assert.match(
    parseCommandArguments('bucardo.change_config', changeConfig, ['log_level']).problems[0]!,
    /does not accept 'log_level'.*SETTING=VALUE/,
  );
  assert.match(
    parseCommandArguments('bucardo.change_config', changeConfig, ['log_level=']).problems[0]!,
    /gives log_level no value; write log_level=VALUE/,
  );
  assert.match(
    parseCommandArguments('bucardo.change_config', changeConfig, ['log level=x']).problems[0]!,
    /is not a valid SETTING=VALUE/,
  );
  assert.match(
    parseCommandArguments('bucardo.change_config', changeConfig, ['a=1', 'b=2']).problems[0]!,
    /gives a setting a second time/,
  );
  // Without an assignment argument a NAME=VALUE word is just unknown.
  assert.match(
    parseCommandArguments('indexes.drop', indexes.commands['drop']!.arguments, ['x=1']).problems[0]!,
    /does not accept 'x=1'/,
  );
});

test("the plugins' declarations: the arguments the tests and the manual use are accepted", () => {
  const ok = (
    plugin: { commands: Record<string, { arguments?: Record<string, ArgumentDescriptor> }> },
    command: string,
    words: string[],
  ) => {
    const parsed = parseCommandArguments(command, plugin.commands[command.split('.')[1]!]!.arguments, words);
    assert.deepEqual(parsed.problems, [], `${command} ${words.join(' ')}`);
    return parsed.options;
  };
  assert.equal(ok(cutover, 'cutover.verify', ['settle=0', '--strict']).number('settle'), 0);
  assert.equal(ok(cutover, 'cutover.repair', ['wait=30']).number('wait'), 30);
  assert.equal(ok(cutover, 'cutover.repair', ['--wait', '30']).number('wait'), 30);
  assert.equal(
    ok(cutover, 'cutover.repair', []).number('wait'),
    undefined,
    "the config's drain_timeout applies",
  );
  assert.equal(ok(cutover, 'cutover.finish', ['--writes-stopped']).flag('writes-stopped'), true);
  assert.equal(ok(indexes, 'indexes.recreate', ['--now']).flag('now'), true);
  assert.equal(ok(bucardo, 'bucardo.status', ['--watch']).number('watch'), 2);
  assert.equal(ok(bucardo, 'bucardo.add_triggers', ['--yes']).flag('yes'), true);
  assert.equal(ok(retry, 'retry.add_triggers', ['--yes']).flag('yes'), true);
  const inline = 'ALTER TABLE t ADD COLUMN c int; CREATE INDEX ON t (c)';
  assert.equal(ok(schema, 'schema.apply', ['--sql', inline, '--yes']).string('sql'), inline);
  assert.equal(ok(schema, 'schema.apply', ['--file=deploy.sql']).string('file'), 'deploy.sql');
  assert.match(
    parseCommandArguments('schema.apply', schema.commands['apply']!.arguments, ['--file=f', '--sql', 'x'])
      .problems[0]!,
    /--file and --sql cannot be given together/,
  );
  assert.match(
    parseCommandArguments('indexes.recreate', indexes.commands['recreate']!.arguments, ['--now', '--wait'])
      .problems[0]!,
    /--now and --wait cannot be given together/,
  );
  assert.match(
    parseCommandArguments('cutover.repair', cutover.commands['repair']!.arguments, ['soon']).problems[0]!,
    /cutover\.repair does not accept 'soon'\. cutover\.repair accepts --wait SECONDS/,
  );
});

test("help lines name every argument with its value, default and help, the runner's included", () => {
  const lines = argumentHelpLines(declared);
  assert.ok(
    lines.some((line) => /^ {2}--watch \[SECONDS\] +repeat \(alone: 5\)$/.test(line)),
    lines.join('\n'),
  );
  assert.ok(lines.some((line) => /^ {2}--jobs N +workers \(default 4\)$/.test(line)));
  assert.ok(lines.some((line) => /^ {2}SETTING=VALUE +a setting$/.test(line)));
  assert.ok(lines.some((line) => /^ {2}--json +print the result as one JSON object/.test(line)));
});
