// Pure logic: command-line parsing, replication filters, identifier quoting, pgpass files, names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArguments, splitList, splitWords } from '../../src/shell/args.js';
import { inScope } from '../../src/core/objects.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/core/quote.js';
import { formatPgpassLine, matchPassword, parsePgpassLine } from '../../src/core/pgpass.js';
import { closest } from '../../src/config/reader.js';
import { kickTriggerName, onetimecopyFor, truncateTriggerName } from '../../src/core/bucardo/names.js';

test('command line: -c, -c1/-c2, -l with per-command flags, and errors', () => {
  assert.deepEqual(parseArguments(['-c', 'x.yml']).configFiles, ['x.yml']);
  assert.deepEqual(parseArguments(['-c1', 'a.yml', '-c2', 'b.yml']).configFiles, ['a.yml', 'b.yml']);
  assert.deepEqual(parseArguments(['-l', 'bucardo.install  bucardo.status --json']).list, [
    'bucardo.install',
    'bucardo.status --json',
  ]);
  assert.equal(parseArguments(['-i']).list, undefined);
  assert.throws(() => parseArguments(['-c1', 'a.yml']), /both -c1 FILE and -c2 FILE/);
  assert.throws(
    () => parseArguments(['-c', 'a.yml', '-c1', 'b.yml', '-c2', 'c.yml']),
    /either -c FILE or -c1/,
  );
  assert.throws(() => parseArguments(['--bogus']), /Unknown option '--bogus'/);
  assert.throws(() => parseArguments(['-l']), /-l needs a value/);
  assert.deepEqual(splitList('a b --json c'), ['a', 'b --json', 'c']);
  assert.deepEqual(splitList('bucardo.change_config log_level=verbose bucardo.reload'), [
    'bucardo.change_config log_level=verbose',
    'bucardo.reload',
  ]);
  assert.deepEqual(splitList('bucardo.status --watch 5 bucardo.stop'), [
    'bucardo.status --watch 5',
    'bucardo.stop',
  ]);
  assert.deepEqual(splitList('--json bucardo.status -x'), ['--json', 'bucardo.status -x']);
  // A quoted value keeps its spaces and stays with its command (schema.apply --sql).
  const sql = `schema.apply --sql "ALTER TABLE t ADD COLUMN \\"Odd\\" text DEFAULT 'a b'" --yes bucardo.status`;
  assert.deepEqual(splitList(sql), [
    `schema.apply --sql "ALTER TABLE t ADD COLUMN \\"Odd\\" text DEFAULT 'a b'" --yes`,
    'bucardo.status',
  ]);
  assert.deepEqual(splitWords(splitList(sql)[0]!), [
    'schema.apply',
    '--sql',
    `ALTER TABLE t ADD COLUMN "Odd" text DEFAULT 'a b'`,
    '--yes',
  ]);
  assert.throws(() => splitList('schema.apply --sql "ALTER'), /quote is not closed/);
  const one = parseArguments(['-c', 'a.yml', 'schema.apply', '--sql', `ALTER TABLE "T" ADD c int`]);
  assert.deepEqual(splitWords(one.command!), ['schema.apply', '--sql', `ALTER TABLE "T" ADD c int`]);
});

test('replication filters: schemas, qualified and unqualified tables, partitions follow their root', () => {
  const none = { namespaceInclude: [], namespaceExclude: [], tableInclude: [], tableExclude: [] };
  const t = (schema: string, name: string, root?: string) => ({
    schema,
    name,
    ...(root ? { partitionRoot: { schema, name: root } } : {}),
  });
  assert.equal(inScope(t('public', 'a'), none), true);
  assert.equal(inScope(t('public', 'a'), { ...none, namespaceInclude: ['sales'] }), false);
  assert.equal(inScope(t('sales', 'a'), { ...none, namespaceInclude: ['sales'] }), true);
  assert.equal(
    inScope(t('sales', 'a'), { ...none, namespaceInclude: ['sales'], tableExclude: ['a'] }),
    false,
  );
  assert.equal(inScope(t('sales', 'a'), { ...none, namespaceExclude: ['sales'] }), false);
  assert.equal(
    inScope(t('sales', 'a'), { ...none, namespaceExclude: ['sales'], tableInclude: ['sales.a'] }),
    false,
    'the lists combine with AND: an excluded schema keeps an included table out',
  );
  assert.equal(inScope(t('public', 'b'), { ...none, tableInclude: ['a'] }), false);
  assert.equal(inScope(t('public', 'Mixed'), { ...none, tableInclude: ['Mixed'] }), true);
  assert.equal(
    inScope(t('public', 'mixed'), { ...none, tableInclude: ['Mixed'] }),
    false,
    'names are case-sensitive',
  );
  assert.equal(
    inScope(t('public', 'events_2025', 'events'), { ...none, tableExclude: ['events'] }),
    false,
    'excluding a partitioned table excludes its leaves',
  );
  assert.equal(
    inScope(t('public', 'events_2025', 'events'), { ...none, tableInclude: ['public.events'] }),
    true,
  );
});

test('identifiers are always quoted; quotes inside are doubled', () => {
  assert.equal(quoteIdent('orders'), '"orders"');
  assert.equal(quoteIdent('Mixed Case'), '"Mixed Case"');
  assert.equal(quoteIdent('we"ird'), '"we""ird"');
  assert.equal(quoteQualified('my schema', 'T'), '"my schema"."T"');
  assert.equal(quoteLiteral("it's"), "'it''s'");
  assert.throws(() => quoteIdent('a\u0000b'));
});

test('pgpass lines: escapes, wildcards, round trip', () => {
  const entry = parsePgpassLine('db\\:host:5432:*:app:pa\\:ss\\\\word')!;
  assert.deepEqual(entry, {
    host: 'db:host',
    port: '5432',
    database: '*',
    user: 'app',
    password: 'pa:ss\\word',
  });
  assert.deepEqual(parsePgpassLine(formatPgpassLine(entry)), entry);
  assert.equal(parsePgpassLine('# comment'), undefined);
  assert.equal(matchPassword([entry], 'db:host', 5432, 'anything', 'app'), 'pa:ss\\word');
  assert.equal(matchPassword([entry], 'db:host', 5433, 'anything', 'app'), undefined);
});

test('did-you-mean picks the closest candidate only when it is close', () => {
  assert.equal(closest('bucardo.instal', ['bucardo.install', 'bucardo.status']), 'bucardo.install');
  assert.equal(closest('zzzzzz', ['bucardo.install']), undefined);
});

test('Bucardo trigger names and onetimecopy values', () => {
  assert.equal(kickTriggerName('a_to_b'), 'bucardo_kick_a_to_b');
  assert.equal(truncateTriggerName('a_to_b'), 'bucardo_note_trunc_a_to_b');
  assert.deepEqual(
    ['never', 'always', 'empty'].map((v) => onetimecopyFor(v as 'never')),
    [0, 1, 2],
  );
});

test('maintenance plan: ANALYZE after enough change, VACUUM when a fifth of the table is dead', async () => {
  const { plannedMaintenance } = await import('../../src/core/maintenance.js');
  const table = (
    name: string,
    live: number,
    dead: number,
    mods: number,
    vacuumAge: number | null = null,
  ) => ({
    table: name,
    live,
    dead,
    modifiedSinceAnalyze: mods,
    lastAnalyzeAgeSeconds: null,
    lastVacuumAgeSeconds: vacuumAge,
  });
  assert.deepEqual(
    plannedMaintenance([table('delta_a', 100, 0, 50)]),
    [],
    'small changes wait for autovacuum',
  );
  assert.deepEqual(
    plannedMaintenance([table('delta_a', 5000, 0, 4000)]).map((a) => a.action),
    ['ANALYZE'],
  );
  assert.deepEqual(
    plannedMaintenance([table('delta_a', 500_000, 0, 20_000)]),
    [],
    'under 10% of a big table',
  );
  assert.deepEqual(
    plannedMaintenance([table('track_a', 30_000, 20_000, 0)]).map((a) => a.action),
    ['VACUUM (ANALYZE)'],
  );
  assert.deepEqual(
    plannedMaintenance([table('track_a', 30_000, 20_000, 0, 60)]),
    [],
    'vacuumed a minute ago',
  );
});

test('no-progress stall: an old backlog and no good run for as long', async () => {
  const { noProgressStall } = await import('../../src/core/watchdog.js');
  assert.equal(noProgressStall(500, 10, 120, 40), undefined, 'a recent good run means it is moving');
  assert.equal(noProgressStall(30, 500, 120, 40), undefined, 'the backlog is young');
  assert.equal(noProgressStall(500, 500, 120, 0), undefined, 'nothing pending');
  assert.match(
    noProgressStall(500, 300, 120, 40)!.cause,
    /^40 change\(s\) pending, the oldest 500 s old, and no sync run has succeeded for 300 s$/,
  );
});

test('watchdog exempts COPY, also behind the comment Bucardo puts first; appendAll takes any number of items', async () => {
  const { COPY_STATEMENT } = await import('../../src/core/watchdog.js');
  const { appendAll } = await import('../../src/core/arrays.js');
  const copy = new RegExp(COPY_STATEMENT, 'i');
  assert.ok(copy.test('/* Bucardo 5.6.0 */COPY public.t FROM STDIN'));
  assert.ok(copy.test('copy "a" TO STDOUT'));
  assert.ok(!copy.test('/* Bucardo 5.6.0 */SELECT * FROM bucardo.bucardo_delta_check($1)'));
  assert.ok(!copy.test('SELECT 1 /* COPY x */'));
  assert.equal(
    appendAll(
      [0],
      Array.from({ length: 300_000 }, (_, i) => i),
    ).length,
    300_001,
  );
});

test('repair output: a line per table with what was done, the keys still differing, and unrepairable tables', async () => {
  const { formatRepair } = await import('../../plugins/cutover/format.js');
  const table = {
    requeued: 0,
    fixed: 0,
    alreadyMatching: 0,
    inFlight: 0,
    remaining: [],
    remainingRanges: 0,
    unlisted: 0,
  };
  const lines = formatRepair({
    job: 'j',
    basedOn: { id: 7, finishedAt: '2026-11-22T10:00:00.000Z', verdict: 'FAILED: MISMATCH in 3 table(s)' },
    seconds: 4.2,
    appliedAfterSeconds: 1.5,
    timedOut: false,
    requeued: 3,
    fixed: 2,
    remaining: 1,
    verdict: 'NOT REPAIRED',
    tables: [
      { ...table, table: 'public.a', requeued: 2, fixed: 2, alreadyMatching: 1, inFlight: 3 },
      {
        ...table,
        table: 'public.b',
        requeued: 1,
        remaining: [{ key: { id: '9' }, difference: 'changed', inFlight: false }],
      },
      {
        ...table,
        table: 'public.c',
        problem: 'no primary key: Bucardo cannot re-apply single rows; copy the table again',
      },
    ],
  });
  assert.deepEqual(lines, [
    '  working from verify #7 (2026-11-22T10:00:00.000Z): FAILED: MISMATCH in 3 table(s)',
    '  public.a: 2 key(s) re-queued, 2 fixed, 1 already matching, 3 in flight (left to replication)',
    '  public.b: 1 key(s) re-queued, 0 fixed',
    '    still differs: id=9',
    '  public.c: not repaired: no primary key: Bucardo cannot re-apply single rows; copy the table again',
    '  4.2 s; Bucardo applied the re-queued keys after 1.5 s',
  ]);
});
