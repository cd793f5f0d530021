// The replication scope rules (docs/scope.md): the four filter lists combine with AND, for tables,
// leaf partitions, sequences and materialized views; every reason a relation is out; filter entries
// that select nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReplicationObjects } from '../../src/config/types.js';
import {
  exclusionReasons,
  filterWarnings,
  inScope,
  readTableEntry,
  type NamedRelation,
} from '../../src/core/objects.js';
import { formatScope } from '../../plugins/bucardo/scope-format.js';

const NONE: ReplicationObjects = {
  namespaceInclude: [],
  namespaceExclude: [],
  tableInclude: [],
  tableExclude: [],
};
const rel = (schema: string, name: string, root?: [string, string]): NamedRelation => ({
  schema,
  name,
  ...(root ? { partitionRoot: { schema: root[0], name: root[1] } } : {}),
});
const key = (r: NamedRelation) => `${r.schema}.${r.name}`;
const selected = (relations: NamedRelation[], filters: Partial<ReplicationObjects>) =>
  relations.filter((r) => inScope(r, { ...NONE, ...filters })).map(key);

const UNIVERSE = [
  rel('sales', 'orders'),
  rel('sales', 'items'),
  rel('sales', 'returns'),
  rel('public', 'orders'),
  rel('public', 'items'),
  rel('s2', 'orders'),
  rel('s2', 't9'),
];

test('every combination of empty and non-empty lists combines with AND', () => {
  const lists = {
    namespaceInclude: ['sales', 'public'],
    namespaceExclude: ['public'],
    tableInclude: ['orders', 't9'],
    tableExclude: ['items'],
  };
  // The rule written out plainly, independent of the implementation.
  const expected = (use: Record<keyof typeof lists, boolean>) =>
    UNIVERSE.filter(
      (r) =>
        (!use.namespaceInclude || lists.namespaceInclude.includes(r.schema)) &&
        (!use.namespaceExclude || !lists.namespaceExclude.includes(r.schema)) &&
        (!use.tableInclude || lists.tableInclude.includes(r.name)) &&
        (!use.tableExclude || !lists.tableExclude.includes(r.name)),
    ).map(key);
  const names = Object.keys(lists) as (keyof typeof lists)[];
  for (let mask = 0; mask < 16; mask++) {
    const use = Object.fromEntries(names.map((name, bit) => [name, Boolean(mask & (1 << bit))])) as Record<
      keyof typeof lists,
      boolean
    >;
    const filters = Object.fromEntries(names.filter((name) => use[name]).map((name) => [name, lists[name]]));
    assert.deepEqual(
      selected(UNIVERSE, filters),
      expected(use),
      `lists in use: ${names.filter((n) => use[n]).join(', ') || 'none'}`,
    );
  }
});

test("the issue's case: namespace_include [sales] with table_include [orders] is sales.orders only", () => {
  assert.deepEqual(selected(UNIVERSE, { namespaceInclude: ['sales'], tableInclude: ['orders'] }), [
    'sales.orders',
  ]);
  assert.deepEqual(
    exclusionReasons(rel('s2', 't9'), { ...NONE, namespaceInclude: ['sales'], tableInclude: ['orders'] }),
    ['schema s2 not in namespace_include'],
  );
  assert.deepEqual(
    exclusionReasons(rel('sales', 'items'), {
      ...NONE,
      namespaceInclude: ['sales'],
      tableInclude: ['orders'],
    }),
    ['not in table_include'],
  );
});

test('qualified table names: only that schema, and still subject to the schema lists', () => {
  assert.deepEqual(selected(UNIVERSE, { tableInclude: ['sales.orders'] }), ['sales.orders']);
  assert.deepEqual(selected(UNIVERSE, { tableInclude: ['sales.orders', 'items'] }), [
    'sales.orders',
    'sales.items',
    'public.items',
  ]);
  assert.deepEqual(selected(UNIVERSE, { namespaceInclude: ['public'], tableInclude: ['sales.orders'] }), []);
  assert.deepEqual(selected(UNIVERSE, { namespaceExclude: ['sales'], tableInclude: ['sales.orders'] }), []);
  assert.deepEqual(selected(UNIVERSE, { tableExclude: ['sales.orders'] }), [
    'sales.items',
    'sales.returns',
    'public.orders',
    'public.items',
    's2.orders',
    's2.t9',
  ]);
  assert.deepEqual(selected(UNIVERSE, { tableExclude: ['orders'] }), [
    'sales.items',
    'sales.returns',
    'public.items',
    's2.t9',
  ]);
  assert.deepEqual(
    exclusionReasons(rel('sales', 'orders'), {
      ...NONE,
      namespaceExclude: ['sales'],
      tableInclude: ['sales.orders'],
    }),
    ['schema sales is in namespace_exclude'],
  );
  assert.deepEqual(
    exclusionReasons(rel('sales', 'orders'), {
      ...NONE,
      namespaceInclude: ['sales'],
      tableExclude: ['orders'],
    }),
    ["table_exclude has 'orders'"],
  );
});

test("leaf partitions answer to their partitioned table's name and schema", () => {
  const leaf = rel('parts', 'events_2025', ['app', 'events']);
  const other = rel('parts', 'logs_2025', ['app', 'logs']);
  const all = [leaf, other];
  assert.deepEqual(selected(all, {}), ['parts.events_2025', 'parts.logs_2025']);
  assert.deepEqual(selected(all, { tableInclude: ['events'] }), ['parts.events_2025']);
  assert.deepEqual(selected(all, { tableInclude: ['app.events'] }), ['parts.events_2025']);
  assert.deepEqual(
    selected(all, { tableInclude: ['events_2025'] }),
    ['parts.events_2025'],
    'a leaf may be named itself',
  );
  assert.deepEqual(selected(all, { tableExclude: ['app.events'] }), ['parts.logs_2025']);
  assert.deepEqual(
    selected(all, { namespaceInclude: ['app'] }),
    ['parts.events_2025', 'parts.logs_2025'],
    "the root's schema brings its leaves",
  );
  assert.deepEqual(
    selected(all, { namespaceInclude: ['parts'] }),
    ['parts.events_2025', 'parts.logs_2025'],
    "so does the leaves' own",
  );
  assert.deepEqual(selected(all, { namespaceInclude: ['app'], tableInclude: ['events'] }), [
    'parts.events_2025',
  ]);
  assert.deepEqual(selected(all, { namespaceInclude: ['other'] }), []);
  assert.deepEqual(
    selected(all, { namespaceExclude: ['app'] }),
    [],
    "excluding the root's schema excludes its leaves",
  );
  assert.deepEqual(
    selected(all, { namespaceExclude: ['parts'], tableInclude: ['app.events'] }),
    [],
    "and the leaves' own schema too",
  );
  assert.deepEqual(exclusionReasons(leaf, { ...NONE, tableExclude: ['events'] }), [
    "table_exclude has 'events' (its partitioned table app.events)",
  ]);
  assert.deepEqual(exclusionReasons(leaf, { ...NONE, namespaceInclude: ['other'] }), [
    "schema parts not in namespace_include (nor is its partitioned table's schema app)",
  ]);
  assert.deepEqual(exclusionReasons(leaf, { ...NONE, tableInclude: ['logs'] }), [
    'not in table_include (nor is its partitioned table app.events)',
  ]);
});

test('mixed case and quotes: names are case-sensitive; double quotes allow dots and quotes in names', () => {
  const odd = [
    rel('Sales', 'Order Items'),
    rel('sales', 'order items'),
    rel('public', 'a.b'),
    rel('public', 'say "hi"'),
    rel('x.y', 'z'),
  ];
  assert.deepEqual(selected(odd, { tableInclude: ['Order Items'] }), ['Sales.Order Items']);
  assert.deepEqual(selected(odd, { tableInclude: ['Sales.Order Items'] }), ['Sales.Order Items']);
  assert.deepEqual(selected(odd, { tableInclude: ['"Sales"."Order Items"'] }), ['Sales.Order Items']);
  assert.deepEqual(selected(odd, { namespaceInclude: ['Sales'] }), ['Sales.Order Items']);
  assert.deepEqual(selected(odd, { namespaceInclude: ['"Sales"'] }), ['Sales.Order Items']);
  assert.deepEqual(selected(odd, { namespaceInclude: ['sales'] }), ['sales.order items'], 'no case folding');
  assert.deepEqual(
    selected(odd, { tableInclude: ['a.b'] }),
    ['public.a.b'],
    'unquoted: a schema a, or a table named a.b',
  );
  assert.deepEqual(selected(odd, { tableInclude: ['"a.b"'] }), ['public.a.b']);
  assert.deepEqual(selected(odd, { tableInclude: ['public."a.b"'] }), ['public.a.b']);
  assert.deepEqual(selected(odd, { tableInclude: ['"say ""hi"""'] }), ['public.say "hi"']);
  assert.deepEqual(selected(odd, { tableInclude: ['"x.y".z'] }), ['x.y.z']);
  assert.deepEqual(selected(odd, { namespaceInclude: ['"x.y"'] }), ['x.y.z']);
  assert.deepEqual(readTableEntry('"unterminated'), [], 'an entry that does not parse matches nothing');
  assert.deepEqual(readTableEntry('a.b.c'), [{ schema: 'a', name: 'b.c' }, { name: 'a.b.c' }]);
  assert.deepEqual(readTableEntry('"a"."b"."c"'), []);
});

test('sequences and materialized views follow the same rules', () => {
  const seq = rel('sales', 'orders_id_seq');
  assert.equal(inScope(seq, { ...NONE, namespaceInclude: ['sales'] }), true);
  assert.equal(
    inScope(seq, { ...NONE, namespaceInclude: ['sales'], tableInclude: ['orders'] }),
    false,
    'a table_include list names sequences too',
  );
  assert.equal(
    inScope(seq, { ...NONE, namespaceInclude: ['sales'], tableInclude: ['orders', 'orders_id_seq'] }),
    true,
  );
});

test('filter entries that select nothing, or only what other lists keep out, are named', () => {
  const warnings = filterWarnings(UNIVERSE, {
    namespaceInclude: ['Sales', 'sales'],
    namespaceExclude: ['nowhere'],
    tableInclude: ['ordres', 'orders', 's2.t9'],
    tableExclude: ['public.ordrs'],
  });
  assert.deepEqual(
    warnings.map((w) => `${w.list} ${w.entry}: ${w.problem}`),
    [
      "namespace_include Sales: no table, sequence or materialized view in a schema named 'Sales' on the primary (did you mean 'sales'? names are case-sensitive)",
      "namespace_exclude nowhere: no table, sequence or materialized view in a schema named 'nowhere' on the primary",
      "table_include ordres: matches no table, sequence or materialized view on the primary (did you mean 'orders'?)",
      'table_include s2.t9: matches s2.t9, but the other lists keep it out: schema s2 not in namespace_include',
      "table_exclude public.ordrs: matches no table, sequence or materialized view on the primary (did you mean 'public.orders'?)",
    ],
  );
  assert.deepEqual(filterWarnings(UNIVERSE, NONE), []);
  assert.deepEqual(
    filterWarnings([rel('parts', 'e_1', ['app', 'events'])], {
      ...NONE,
      namespaceInclude: ['app'],
      tableInclude: ['events'],
    }),
    [],
    "a partitioned table's name and schema count",
  );
});

test("bucardo.scope's summary: figures per relation, every reason, the entries to check", () => {
  const lines = formatScope({
    filters: { ...NONE, namespaceInclude: ['sales'], tableInclude: ['orders', 'events', 'ordres'] },
    included: [
      { name: 'sales.orders', kind: 'table', sizeBytes: 2_621_440, estimatedRows: 12_345 },
      {
        name: 'sales.events_2025',
        kind: 'partition',
        partitionOf: 'sales.events',
        sizeBytes: 8192,
        estimatedRows: null,
      },
    ],
    excluded: [{ name: 's2.t9', kind: 'table', reasons: ['schema s2 not in namespace_include'] }],
    warnings: [
      {
        list: 'table_include',
        entry: 'ordres',
        problem: 'matches no table, sequence or materialized view on the primary',
      },
    ],
    notCarried: [
      {
        table: 's2.t9',
        cause: 'outside the filters',
        reason: 'outside the filters (schema s2 not in namespace_include)',
        estimatedRows: 40,
        estimatedBytes: 8192,
      },
    ],
  });
  assert.deepEqual(lines, [
    'Scope on the primary (namespace_include [sales] AND table_include [orders, events, ordres]):',
    '  In scope: 2 table(s) (1 of them leaf partitions), 0 sequence(s), 0 materialized view(s); 2.5 MB, ~12,345 rows (estimated)',
    '    table             sales.orders           2.5 MB  ~12,345 rows',
    '    partition         sales.events_2025      8.0 kB  rows unknown (never analyzed) (partition of sales.events)',
    '  Left out (1):',
    '    s2.t9: schema s2 not in namespace_include',
    '  Tables the migration leaves behind (1; rows and size estimated):',
    '    s2.t9 (~40 rows, ~8 kB): outside the filters (schema s2 not in namespace_include)',
    '  Filter entries to check (a typo selects nothing):',
    "    table_include 'ordres': matches no table, sequence or materialized view on the primary",
  ]);
  assert.match(
    formatScope({ filters: NONE, included: [], excluded: [], warnings: [], notCarried: [] })[0]!,
    /no filters: every table and sequence in every user schema/,
  );
});
