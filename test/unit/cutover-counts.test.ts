// The verify's table-wide row-count cross-check, as pure logic: which gap between the two sides'
// counts the differing keys already named explain, and the verdict when the counts alone differ.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Job } from '../../src/core/job.js';
import { summarise, type TableReport } from '../../plugins/cutover/compare/report.js';
import { explainedGap } from '../../plugins/cutover/compare/engine.js';

function table(overrides: Partial<TableReport>): TableReport {
  return {
    table: 'public.t',
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

test('named keys explain a count gap: missing adds one, extra takes one; unnamed differences explain anything', () => {
  assert.equal(explainedGap(table({})), 0);
  assert.equal(
    explainedGap(
      table({
        missing: 2,
        extra: 1,
        changed: 1,
        keys: [
          { key: { id: '1' }, difference: 'missing', inFlight: false },
          { key: { id: '2' }, difference: 'missing', inFlight: false },
          { key: { id: '3' }, difference: 'extra', inFlight: false },
          { key: { id: '4' }, difference: 'changed', inFlight: false },
        ],
      }),
    ),
    1,
  );
  assert.ok(
    Number.isNaN(explainedGap(table({ ranges: [{ primaryRows: 5, secondaryRows: 3 }] }))),
    'a range not narrowed explains any gap',
  );
  assert.ok(
    Number.isNaN(explainedGap(table({ missing: 1500, keys: [] }))),
    'more keys than listed explain any gap',
  );
});

test('a table whose chunks all matched but whose counts differ fails the verify, named with both counts', () => {
  const report = summarise({ name: 'job' } as Job, {
    startedAt: '',
    started: Date.now(),
    method: 'hashtext',
    strict: false,
    sequences: [],
    notes: [],
    reports: [
      table({
        status: 'mismatch',
        counts: { primary: 10, secondary: 8 },
        problems: [
          'row counts differ: 10 on the primary, 8 on the secondary, with nothing pending replication',
        ],
      }),
    ],
  });
  assert.equal(report.passed, false);
  assert.equal(
    report.verdict,
    'FAILED: row counts differ in public.t (10 on the primary, 8 on the secondary).',
  );
});
