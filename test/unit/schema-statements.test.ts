// schema.apply's reading of SQL: statements split where PostgreSQL would, each classified by the side
// it must run on first, and what Bucardo cannot follow refused with the reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, keepsTextForm, splitStatements } from '../../plugins/schema/statements.js';
import { planSteps } from '../../plugins/schema/apply.js';

test('splitStatements: semicolons inside quotes, dollar quotes and comments do not split', () => {
  const sql = `
    -- a comment; with a semicolon
    ALTER TABLE t ADD COLUMN "odd;name" text DEFAULT 'a;b';
    /* block; /* nested; */ still */ CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    INSERT INTO t VALUES ($$x;y$$);;
  `;
  assert.deepEqual(splitStatements(sql), [
    `ALTER TABLE t ADD COLUMN "odd;name" text DEFAULT 'a;b'`,
    'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql',
    'INSERT INTO t VALUES ($$x;y$$)',
  ]);
  assert.throws(() => splitStatements("SELECT 'open"), /quote is not closed/);
});

test('classify: each added column with its type and default as written, cut at top-level keywords', () => {
  assert.deepEqual(
    classify(
      'ALTER TABLE a ADD c int DEFAULT NULL NOT NULL, ADD COLUMN IF NOT EXISTS d numeric(10,2) DEFAULT (1 + 2)::numeric CHECK (d > 0)',
      1,
    ).addedColumns,
    [
      { name: 'c', type: 'int', default: 'NULL', identity: false },
      { name: 'd', type: 'numeric(10,2)', default: '(1 + 2)::numeric', identity: false },
    ],
  );
  assert.deepEqual(
    classify('ALTER TABLE a ADD COLUMN made timestamptz NOT NULL DEFAULT now()', 1).addedColumns,
    [{ name: 'made', type: 'timestamptz', default: 'now()', identity: false }],
  );
  assert.equal(
    classify('ALTER TABLE a ADD COLUMN n int GENERATED ALWAYS AS IDENTITY', 1).addedColumns?.[0]?.identity,
    true,
  );
  assert.equal(classify('ALTER TABLE a DROP COLUMN n', 1).addedColumns, undefined);
});

test('classify: the side that goes first, the table and column', () => {
  const add = classify(
    'ALTER TABLE IF EXISTS ONLY sales."Orders" ADD COLUMN IF NOT EXISTS tier int DEFAULT 1',
    1,
  );
  assert.equal(add.kind, 'widen');
  assert.deepEqual(add.table, { schema: 'sales', name: 'Orders' });
  assert.equal(add.column, 'tier');
  const drop = classify('alter table accounts drop column note', 2);
  assert.equal(drop.kind, 'narrow');
  assert.equal(drop.column, 'note');
  assert.equal(classify('ALTER TABLE t ALTER COLUMN c SET NOT NULL', 1).kind, 'narrow');
  assert.equal(classify('ALTER TABLE t ALTER COLUMN c DROP NOT NULL', 1).kind, 'widen');
  assert.equal(classify('ALTER TABLE t ADD CONSTRAINT c CHECK (v > 0)', 1).kind, 'narrow');
  assert.equal(classify('ALTER TABLE t DROP CONSTRAINT t_v_check', 1).droppedConstraint, 't_v_check');
  assert.equal(classify('ALTER TABLE t ALTER COLUMN v TYPE bigint', 1).newType, 'bigint');
  assert.equal(classify('ALTER TABLE t ALTER COLUMN v TYPE varchar(40)', 1).newType, 'varchar(40)');
  assert.equal(classify('CREATE TABLE public.fresh (id int PRIMARY KEY)', 1).kind, 'create table');
  assert.deepEqual(classify('DROP TABLE IF EXISTS fresh', 1).table, { name: 'fresh' });
  assert.equal(classify("INSERT INTO fresh VALUES (1, 'x')", 1).kind, 'data');
  assert.equal(classify('CREATE INDEX ON t (v)', 1).kind, 'other');
});

test('classify: what Bucardo cannot follow is refused with the safe sequence', () => {
  assert.match(classify('ALTER TABLE t RENAME COLUMN a TO b', 1).refused!, /add the new column/);
  assert.match(classify('ALTER TABLE t RENAME TO u', 1).refused!, /Bucardo knows the table by its name/);
  assert.match(classify('ALTER TABLE t ADD PRIMARY KEY (id)', 1).refused!, /by primary key/);
  assert.match(classify('ALTER TABLE t ALTER COLUMN v TYPE text USING v::text', 1).refused!, /USING/);
  assert.match(classify('ALTER TABLE t ADD COLUMN x int, DROP COLUMN y', 1).refused!, /Split it/);
  assert.match(classify('BEGIN', 1).refused!, /one transaction/);
  assert.match(classify('CREATE INDEX CONCURRENTLY i ON t (v)', 1).refused!, /CONCURRENTLY/);
  assert.equal(classify('ALTER TABLE t RENAME CONSTRAINT a TO b', 1).refused, undefined);
});

test('keepsTextForm: only changes whose values read the same in text', () => {
  assert.ok(keepsTextForm('integer', 'bigint'));
  assert.ok(keepsTextForm('character varying(20)', 'varchar(40)'));
  assert.ok(keepsTextForm('character varying(20)', 'text'));
  assert.ok(keepsTextForm('numeric(10,2)', 'numeric(12,2)'));
  assert.ok(!keepsTextForm('bigint', 'integer'));
  assert.ok(!keepsTextForm('numeric(10,2)', 'numeric(10,3)'));
  assert.ok(!keepsTextForm('timestamp without time zone', 'timestamp with time zone'));
  assert.ok(!keepsTextForm('integer', 'text'));
  assert.ok(!keepsTextForm('character varying(40)', 'varchar(20)'));
});

test('planSteps: additions on the secondary first, drops on the primary first, Bucardo after', () => {
  const statements = [
    { ...classify('ALTER TABLE a ADD COLUMN x int', 1), resolved: { schema: 'public', name: 'a' } },
    { ...classify('ALTER TABLE a DROP COLUMN y', 2), resolved: { schema: 'public', name: 'a' } },
    { ...classify('DROP TABLE old', 3), resolved: { schema: 'public', name: 'old' } },
    {
      ...classify('CREATE TABLE fresh (id int PRIMARY KEY)', 4),
      resolved: { schema: 'public', name: 'fresh' },
    },
    { ...classify('INSERT INTO fresh VALUES (1)', 5) },
  ];
  const plan = planSteps(statements, { recorded: new Set(['public.a', 'public.old']), daemonRunning: true });
  assert.deepEqual(
    plan.map((s) => [s.name, s.statements]),
    [
      ['unsync', []],
      ['secondary-first', [1, 4]],
      ['primary', [1, 2, 3, 4, 5]],
      ['secondary-after', [2, 3]],
      ['reload', []],
      ['add-tables', []],
    ],
  );
});

test('planSteps on the way back: A is the target that accepts first, B the writer; no sequence joins', () => {
  const statements = [
    { ...classify('ALTER TABLE a ADD COLUMN x int', 1), resolved: { schema: 'public', name: 'a' } },
    { ...classify('ALTER TABLE a DROP COLUMN y', 2), resolved: { schema: 'public', name: 'a' } },
    { ...classify('CREATE SEQUENCE public.s', 3) },
  ];
  const plan = planSteps(statements, {
    recorded: new Set(['public.a']),
    daemonRunning: true,
    wayBack: 'job_back',
  });
  assert.deepEqual(
    plan.map((s) => [s.name, s.statements]),
    [
      ['secondary-first', [1, 3]],
      ['primary', [1, 2, 3]],
      ['secondary-after', [2]],
      ['reload', []],
    ],
  );
  assert.match(plan[0]!.what, /^A \(the primary, the way back's target\)/);
  assert.match(plan[1]!.what, /^B \(the secondary, where the application writes\)/);
  assert.match(plan[2]!.what, /^A \(the primary\)/);
  assert.match(plan[3]!.what, /the way back \(sync job_back\)/);
});
