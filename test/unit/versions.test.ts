// Pure logic of major-version pairs: how verify puts floats into the row text, version numbers, the
// tested matrix, and the test bed's list of server packages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { comparableColumn } from '../../src/core/compare/sql.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { major, testedPair, versionMatrix } from '../../plugins/bucardo/server-pair.js';
import { ROOT } from '../support/paths.js';
import { availableMajors, pgBinFor, SERVER_PACKAGES } from '../../src/sandbox/versions.js';
import { parseArguments } from '../../src/shell/args.js';

test('verify hashes floats and arrays of floats by their bytes, everything else by its text', () => {
  assert.equal(comparableColumn({ name: 'f8', type: 'double precision' }), 'float8send("f8")');
  assert.equal(comparableColumn({ name: 'Ratio', type: 'real' }), 'float4send("Ratio")');
  assert.equal(comparableColumn({ name: 'n', type: 'numeric(10,2)' }), '"n"');
  assert.equal(comparableColumn({ name: 'tags', type: 'text[]' }), '"tags"');
  assert.match(
    comparableColumn({ name: 'xs', type: 'double precision[]' }),
    /^CASE WHEN "xs" IS NOT NULL THEN coalesce\(array_dims\("xs"\), '\[\]'\) \|\| \(SELECT array_agg\(float8send\(e\) ORDER BY o\) FROM unnest\("xs"\) WITH ORDINALITY AS u\(e, o\)\)::text END$/,
  );
});

test('major versions: one part from 10, two before', () => {
  assert.equal(major(110022), 11);
  assert.equal(major(180004), 18);
  assert.equal(major(90624), 9.6);
});

test('every pair of the version matrix has a server package for both sides', () => {
  const { lastRun, pairs } = versionMatrix();
  for (const pair of pairs) {
    assert.ok(
      availableMajors().includes(pair.primary) && availableMajors().includes(pair.secondary),
      `${pair.primary} → ${pair.secondary}`,
    );
  }
  assert.match(lastRun.date, /^\d{4}-\d{2}-\d{2}$/);
  assert.match(SERVER_PACKAGES[11]!, /^11\./);
  assert.throws(
    () => pgBinFor(9),
    /there is no PostgreSQL 9 server for the test bed: the majors available are 10, 11/,
  );
});

test('--demo --primary-version N: A on another major version; alone or without a number it is an error', () => {
  assert.equal(parseArguments(['--demo', '--primary-version', '11']).primaryVersion, 11);
  assert.equal(parseArguments(['--demo']).primaryVersion, undefined);
  assert.throws(() => parseArguments(['--primary-version', '11']), /only applies to --demo/);
  assert.throws(
    () => parseArguments(['--demo', '--primary-version', 'eleven']),
    /needs a major version number/,
  );
});

test('preflight names a pair of the version matrix with the date of its last run, from the one table (issue 31)', () => {
  const matrix = versionMatrix();
  assert.deepEqual(
    matrix,
    JSON.parse(readFileSync(path.join(ROOT, 'plugins/bucardo/version-matrix.json'), 'utf8')),
  );
  const run = { date: '2031-05-06', commit: 'abc1234' };
  assert.deepEqual(testedPair(11, 15, { lastRun: run, pairs: [{ primary: 11, secondary: 15 }] }), {
    item: 'version pair tested',
    ok: true,
    detail:
      '11 → 15 is in the version matrix; last run of the version matrix: 2031-05-06 (every pair passed end to end)',
  });
  assert.match(
    testedPair(11, 15, { lastRun: run, pairs: [] }).detail,
    /^11 → 15 is not in the version matrix .*untested/,
  );
  const refused = testedPair(16, 15, {
    lastRun: run,
    pairs: [{ primary: 16, secondary: 15, refused: 'no' }],
  });
  assert.equal(refused.ok, false);
  // The matrix runs exactly the table's pairs: scripts/run-tests.js reads them from the same file.
  const runner = readFileSync(path.join(ROOT, 'scripts/run-tests.js'), 'utf8');
  assert.match(runner, /plugins\/bucardo\/version-matrix\.json/);
  assert.doesNotMatch(runner, /'10:15,/, 'no list of the matrix pairs of its own');
});

test('the tested matrix in docs/major-version-upgrade.md lists the pairs of the version matrix', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/major-version-upgrade.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Tested matrix'), doc.indexOf('## Runbook'));
  const documented = [...section.matchAll(/^\| (\d+)(?:\.\d+)? \| (\d+)(?:\.\d+)? \|/gm)].map(
    (m) => `${m[1]}:${m[2]}`,
  );
  const listed = versionMatrix().pairs.map((p) => `${p.primary}:${p.secondary}`);
  assert.deepEqual(documented.sort(), listed.sort());
});
