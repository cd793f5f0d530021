// The pure parts of comparing under a write load (since-horizon.ts): a range's sums without the rows
// of the keys changed since the verify's horizon, the count gap the named keys explain outside those
// keys, the order keys are listed in, and the verdict of a verify whose only differences are in flight.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Job } from '../../src/core/job.js';
import { explainedGapOutside } from '../../plugins/cutover/compare/engine.js';
import { compareKeys } from '../../plugins/cutover/compare/judge.js';
import { keyId, type RowHashes } from '../../src/core/compare/ranges.js';
import { summarise, type TableReport } from '../../plugins/cutover/compare/report.js';
import { withoutRows } from '../../plugins/cutover/compare/since-horizon.js';

function table(overrides: Partial<TableReport>): TableReport {
  return {
    table: 'public.acct',
    status: 'match',
    rowsPrimary: 10,
    rowsSecondary: 10,
    chunks: 1,
    missing: 0,
    extra: 0,
    changed: 0,
    inFlight: 0,
    keys: [],
    ranges: [],
    problems: [],
    seconds: 0,
    ...overrides,
  };
}

function hashes(rows: [string, string][]): RowHashes {
  return new Map(rows.map(([key, hash]) => [keyId([key]), { key: [key], hash }]));
}

test("a range's sums without the changed keys' rows: count and hash sum, exact beyond 2^53", () => {
  // Two sides that differ only in key 2 (changed since the horizon) agree once it is set apart.
  const big = 9_000_000_000_000_000_000n;
  const primary = { rows: 3, hash: String(big + 1n + 20n + 3n) };
  const secondary = { rows: 3, hash: String(big + 1n + 99n + 3n) };
  const ours = withoutRows(primary, hashes([['2', '20']]));
  const theirs = withoutRows(secondary, hashes([['2', '99']]));
  assert.deepEqual(ours, { rows: 2, hash: String(big + 4n) });
  assert.deepEqual(ours, theirs);
  // A changed key deleted on the primary and still on the secondary: only the secondary's row comes off.
  assert.deepEqual(withoutRows({ rows: 2, hash: '-5' }, hashes([])), { rows: 2, hash: '-5' });
  assert.deepEqual(withoutRows({ rows: 3, hash: '-5' }, hashes([['7', '-10']])), { rows: 2, hash: '5' });
});

test('the count gap outside the changed keys: only keys named as real differences, and not those changed since', () => {
  const report = table({
    missing: 1,
    extra: 1,
    inFlight: 2,
    keys: [
      { key: { id: '1' }, difference: 'missing', inFlight: false },
      { key: { id: '2' }, difference: 'extra', inFlight: false },
      { key: { id: '3' }, difference: 'missing', inFlight: true },
      { key: { id: '4' }, difference: 'missing', inFlight: true },
    ],
  });
  assert.equal(
    explainedGapOutside(report, () => false),
    0,
    'keys in flight are set apart from the counts: they explain nothing',
  );
  assert.equal(
    explainedGapOutside(report, (key) => key['id'] === '2'),
    1,
    'a named key changed since it was named is set apart too',
  );
  assert.ok(
    Number.isNaN(explainedGapOutside(table({ ranges: [{ primaryRows: 1, secondaryRows: 0 }] }), () => false)),
  );
  assert.ok(
    Number.isNaN(explainedGapOutside(table({ missing: 1500 }), () => false)),
    'more keys than listed',
  );
});

test('keys are listed in key order: integers by value, text as text, column by column', () => {
  const keys = [['10'], ['9'], ['-3'], ['100']];
  assert.deepEqual(keys.sort(compareKeys), [['-3'], ['9'], ['10'], ['100']]);
  assert.deepEqual(
    [
      ['b', '2'],
      ['a', '10'],
      ['a', '9'],
    ].sort(compareKeys),
    [
      ['a', '9'],
      ['a', '10'],
      ['b', '2'],
    ],
  );
});

test('a verify whose only differences are in flight passes, says how many keys and that the final check covers them', () => {
  const summary = {
    startedAt: '',
    started: Date.now(),
    method: 'hashtext' as const,
    sequences: [],
    notes: [],
    reports: [table({ status: 'in flight', inFlight: 1234 }), table({ table: 'public.log', inFlight: 0 })],
  };
  const report = summarise({ name: 'job' } as Job, { ...summary, strict: false });
  assert.equal(report.passed, true);
  assert.equal(report.clean, false);
  assert.equal(report.totals.inFlightRows, 1234);
  assert.equal(
    report.verdict,
    "No differences: 2 table(s), 20 row(s), 0 sequence(s); but 1,234 key(s) in flight in 1 table(s) (their changes not yet applied on the secondary when read, or made while the verify ran; cutover.finish's final check compares every such key again).",
  );
  const strict = summarise({ name: 'job' } as Job, { ...summary, strict: true });
  assert.equal(strict.passed, false, 'with --strict, keys in flight fail');
  assert.match(strict.verdict, /^FAILED: 1,234 key\(s\) in flight/);
  const mixed = summarise({ name: 'job' } as Job, {
    ...summary,
    strict: false,
    reports: [
      table({ status: 'mismatch', changed: 1, inFlight: 5 }),
      table({ table: 'public.log', status: 'in flight', inFlight: 2 }),
    ],
  });
  assert.match(
    mixed.verdict,
    /^FAILED: MISMATCH in 1 table\(s\): 1 row\(s\) changed; 7 key\(s\) in flight in 2 table\(s\) /,
    'keys in flight counted in every table that holds them, a failing one too',
  );
});
