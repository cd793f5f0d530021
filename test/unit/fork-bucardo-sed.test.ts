// The fork_bucardo plugin's sed translation against the real GNU sed: for every case, the text sed
// writes for `s/pattern/replacement/` (run with an argument array, no shell) must equal ours, and
// the number of lines we report as matched must equal the lines sed's `p` flag prints. Constructs
// the translation refuses are checked to be refused, not approximated.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { compileSubstitution, SedSyntaxError, substituteLines } from '../../plugins/fork_bucardo/sed.js';

const SED_ENV = { ...process.env, LC_ALL: 'C.UTF-8' };
/** The replacement of the documented sample: `$`, `{`, `(` are plain text in sed. */
const DELTA_LINE =
  '            $self->glog("Total delta count: $deltacount{all}", ' +
  '$deltacount{all} ? LOG_NORMAL : LOG_VERBOSE);';

function sed(script: string, input: string, quiet = false): string {
  return execFileSync('sed', [...(quiet ? ['-n'] : []), '-e', script], {
    input,
    env: SED_ENV,
    encoding: 'utf8',
  });
}

const TEXT =
  [
    '            $self->glog("Total delta count: $deltacount{all}", LOG_VERBOSE);',
    'my $x = 1; # (a+b)*c {braces} [brackets] ^caret$ back\\slash /slash/',
    '',
    'aaa bbb ccc aaa',
    'abcabc xyz 123 4567 89',
    'tab\there and  two spaces',
    'CamelCase snake_case kebab-case',
    'ünïcödé → arrows ✓',
    '*star first',
    '^ caret first',
    'ends with dollar $',
    'path /usr/share/perl5/Bucardo.pm here',
    'a.b a-b a*b a+b a?b a|b a{2}b (ab)',
    'foo123bar foo45bar',
    'x',
  ].join('\n') + '\n';

/** [pattern, replacement]: each written as it would stand in the YAML config. */
const CASES: [string, string][] = [
  ['.*Total delta count.*', DELTA_LINE],
  ['LOG_VERBOSE', 'LOG_NORMAL'],
  ['a', 'A'],
  ['aaa', '<&>'],
  ['a*', 'X'],
  ['b*', '[&]'],
  ['^', '> '],
  ['$', ' <'],
  ['^$', 'EMPTY'],
  ['^a', 'A'],
  ['c$', 'C'],
  ['^.*$', '[&]'],
  ['.', '_'],
  ['\\(a\\)\\(b\\)', '\\2\\1'],
  ['\\(foo\\)\\([0-9]*\\)\\(bar\\)', '\\3\\2\\1'],
  ['\\([a-z]*\\) \\1', 'twice(\\1)'],
  ['[0-9]\\{3\\}', 'NNN'],
  ['[0-9]\\{2,3\\}', 'N'],
  ['[0-9]\\{2,\\}', 'N'],
  ['[0-9]\\{,2\\}', 'N'],
  ['a\\+', 'A'],
  ['ab\\?c', 'X'],
  ['a+b', 'PLUS'],
  ['a?b', 'QUESTION'],
  ['a|b', 'PIPE'],
  ['a{2}b', 'BRACES'],
  ['(ab)', 'PARENS'],
  ['a\\.b', 'DOT'],
  ['a\\*b', 'STAR'],
  ['\\*star', 'S'],
  ['*star', 'S2'],
  ['^*star', 'S3'],
  ['\\^ caret', 'C'],
  ['^^ caret', 'C2'],
  ['dollar \\$', 'D'],
  ['\\$deltacount{all}', '%deltacount'],
  ['\\$self->glog(', '$self->log('],
  ['back\\\\slash', 'bs'],
  ['\\/slash\\/', '|slash|'],
  ['\\/usr\\/share\\/perl5\\/Bucardo\\.pm', '\\/tmp\\/fork\\/Bucardo.pm'],
  ['[[:digit:]]\\+', '#'],
  ['[[:alpha:]_]*', 'W'],
  ['[[:space:]]\\+', ' '],
  ['[[:upper:]][[:lower:]]*', 'Word'],
  ['[^a-z ]', '?'],
  ['[]x]', 'R'],
  ['[^]x]', 'R'],
  ['[a-]b', 'R'],
  ['[\\]', 'BS'],
  ['[.*]', 'P'],
  ['[$^]', 'P'],
  ['\\t', 'TAB'],
  ['[\\t]', 'TAB'],
  ['\\w\\+', 'W'],
  ['\\W', '_'],
  ['\\s\\S', '_'],
  ['\\bcase', 'CASE'],
  ['\\<s', 'S'],
  ['e\\>', 'E'],
  ['ü.', 'U'],
  ['→', '->'],
  ['✓', '\\&check'],
  ['x', 'line\\nbreak'],
  ['x', 'a\\tb'],
  ['abc', '&&'],
  ['abc', '\\&'],
  ['\\(abc\\)*', '<\\1>'],
  ['\\(a\\|\\)', 'never'],
  ['two  spaces', ''],
  ['o\\{2\\}', '0'],
  ['\\(x\\)', '\\0\\1&'],
];

for (const [pattern, replacement] of CASES) {
  const script = `s/${pattern}/${replacement}/`;
  test(`${script} writes what sed writes`, () => {
    let substitution;
    try {
      substitution = compileSubstitution(pattern, replacement);
    } catch (error) {
      // Refused: sed must read it differently or refuse it too (alternation is the one we refuse on purpose).
      assert.ok(error instanceof SedSyntaxError, String(error));
      assert.match(error.message, /alternation/);
      return;
    }
    const ours = substituteLines(TEXT, substitution);
    assert.equal(ours.text, sed(script, TEXT));
    // sed's `=` prints the number of each line the pattern matches: the lines s/// rewrites.
    assert.equal(ours.matches, sed(`/${pattern}/=`, TEXT, true).split('\n').length - 1, 'matched line count');
  });
}

test('a last line without a newline stays without one, as sed leaves it', () => {
  const text = 'first\nlast';
  assert.equal(substituteLines(text, compileSubstitution('t$', 'T')).text, sed('s/t$/T/', text));
  assert.equal(substituteLines('', compileSubstitution('^', 'x')).text, sed('s/^/x/', ''));
});

test('the packaged Bucardo.pm, rewritten by the documented sample, is byte for byte what sed writes', () => {
  const file = '/usr/share/perl5/Bucardo.pm';
  const pattern = '.*Total delta count.*';
  const replacement = DELTA_LINE;
  const text = readFileSync(file, 'utf8');
  const ours = substituteLines(text, compileSubstitution(pattern, replacement));
  assert.equal(ours.matches, 1);
  const expected = execFileSync('sed', ['-e', `s/${pattern}/${replacement}/`, file], {
    env: SED_ENV,
    encoding: 'utf8',
  });
  assert.equal(ours.text, expected);
  assert.match(ours.text, /LOG_NORMAL : LOG_VERBOSE\);\n/);
});

test('constructs sed reads otherwise, or refuses, are refused with the reason', () => {
  const refused: [string, string, RegExp][] = [
    ['a\\|ab', 'x', /alternation/],
    ['a**', 'x', /repeats a repetition/],
    ['a\\{2\\}*', 'x', /repeats a repetition/],
    ['a/b', 'x', /unescaped '\/'.*\\\//],
    ['a', 'x/y', /unescaped '\/'/],
    ['', 'x', /empty/],
    ['\\(a', 'x', /without a matching/],
    ['a\\)', 'x', /without a matching/],
    ['[abc', 'x', /without a closing/],
    ['a\\{x\\}', 'x', /interval/],
    ['\\(a\\)', '\\2', /refers to \\2, but the pattern has 1 group/],
    ['a', '\\U&', /case conversions/],
    ['a\\dz', 'x', /'\\d'/],
    ['a', 'x\\', /lone backslash/],
    ['[[:word:]]', 'x', /\[:word:\]/],
    ['\\1(a)', 'x', /before it exists/],
  ];
  for (const [pattern, replacement, message] of refused) {
    const refusedWithReason = (error: unknown): boolean =>
      error instanceof SedSyntaxError && message.test(error.message);
    assert.throws(
      () => compileSubstitution(pattern, replacement),
      refusedWithReason,
      `s/${pattern}/${replacement}/`,
    );
  }
  // Where sed itself refuses the same script, this is not a stricter rule of ours.
  for (const script of ['s/a**/x/', 's/a/x/y/', 's/\\(a/x/']) {
    assert.throws(
      () => execFileSync('sed', ['-e', script], { input: 'a\n', env: SED_ENV, stdio: 'pipe' }),
      script,
    );
  }
});
