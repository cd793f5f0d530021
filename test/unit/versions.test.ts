// Pure logic of major-version pairs: how verify puts floats into the row text, version numbers, the
// tested matrix, and the test bed's list of server packages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { comparableColumn } from '../../src/core/compare/sql.js';
import { major, TESTED_PAIRS } from '../../plugins/bucardo/server-pair.js';
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

test('every pair of the tested matrix has a server package for both sides', () => {
  for (const pair of TESTED_PAIRS) {
    assert.ok(
      availableMajors().includes(pair.primary) && availableMajors().includes(pair.secondary),
      `${pair.primary} → ${pair.secondary}`,
    );
    assert.match(pair.date, /^\d{4}-\d{2}-\d{2}$/);
  }
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
