// The job's copy of Bucardo.pm: the commit fence patches fit the packaged Bucardo 5.6 exactly, the
// patched code still compiles, and a release the patches do not fit is refused, never run unpatched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FENCE_MARKER, PACKAGED_BUCARDO_PM, patchBucardoPm } from '../../src/core/bucardo/code.js';
import { OperatorError } from '../../src/core/errors.js';

const packaged = readFileSync(PACKAGED_BUCARDO_PM, 'utf8');

test('the patched Bucardo.pm calls the fence before each run and marks only settled times applied', () => {
  const patched = patchBucardoPm(packaged);
  assert.ok(patched.includes(FENCE_MARKER));
  assert.equal(patched.split("$dbh->do('SELECT bucardo.console_commit_fence()');").length, 2);
  assert.equal(patched.split('WHERE bucardo.console_settled(v.txntime);').length, 2);
  assert.ok(
    !patched.includes('SELECT DISTINCT txntime, DBGROUP::text'),
    'the unfenced track statement is gone',
  );
  // A one-time copy tracks the changes its snapshot carried (how-bucardo-behaves.md §21).
  assert.ok(!patched.includes('## TODO: logic to clean out delta rows'));
  assert.equal(patched.split('WHERE bucardo.console_settled(v.txntime)\n').length, 2);
  // Patching is a pure function of the packaged text.
  assert.equal(patchBucardoPm(packaged), patched);
});

test('the patched Bucardo.pm compiles', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bc-code-'));
  try {
    writeFileSync(path.join(dir, 'Bucardo.pm'), patchBucardoPm(packaged));
    const output = execFileSync('perl', ['-I', dir, '-c', path.join(dir, 'Bucardo.pm')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(output, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Bucardo.pm the patches do not fit is refused with the reason', () => {
  const moved = packaged.replace('## We never want to timeout!', '## Never time out');
  assert.throws(
    () => patchBucardoPm(moved, '/opt/Bucardo.pm'),
    (error: unknown) =>
      error instanceof OperatorError &&
      /\/opt\/Bucardo\.pm does not have the code the console patches .*"fence before each run" matched 0 times/.test(
        error.message,
      ),
  );
});

test("the job's copy is written once, kept while its stamp holds, and rewritten when it changed", () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'bc-code-copy-'));
  // Each call in a process of its own: a process remembers a copy it has checked.
  const perlLib = () =>
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { bucardoPerlLib } = await import(${JSON.stringify(new URL('../../src/core/bucardo/code.js', import.meta.url).href)});
         process.stdout.write(bucardoPerlLib({ paths: { stateDir: ${JSON.stringify(stateDir)} } }));`,
      ],
      { encoding: 'utf8' },
    );
  try {
    const lib = perlLib();
    const copy = path.join(lib, 'Bucardo.pm');
    const patched = patchBucardoPm(packaged);
    assert.equal(readFileSync(copy, 'utf8'), patched);
    const stamp = readFileSync(`${copy}.stamp`, 'utf8');
    assert.equal(perlLib(), lib);
    assert.equal(readFileSync(`${copy}.stamp`, 'utf8'), stamp, 'a current copy is left as it is');
    writeFileSync(copy, `${patched}\n# changed by hand\n`);
    perlLib();
    assert.equal(readFileSync(copy, 'utf8'), patched, 'a changed copy is written again');
    rmSync(`${copy}.stamp`);
    perlLib();
    assert.equal(readFileSync(copy, 'utf8'), patched);
    assert.ok(readFileSync(`${copy}.stamp`, 'utf8').endsWith('\n'), 'a missing stamp is made again');
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
