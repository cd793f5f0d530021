// Which of a job's N syncs each table goes to (bucardo.syncs). Pure: the caller reads the tables'
// sizes and write rates, the foreign keys between them and the assignment already recorded in
// Bucardo's relgroups, and records what this returns. docs/how-bucardo-behaves.md §17 says why
// tables tied by foreign keys share a sync.

export interface TableLoad {
  /** "schema.table" */
  table: string;
  /** pg_total_relation_size on the primary. */
  bytes: number;
  /** n_tup_ins + n_tup_upd + n_tup_del since the primary's statistics were reset. */
  writes: number;
}

export interface Assignment {
  /** table → sync index (0-based), for every table given. */
  syncOf: Map<string, number>;
  /** Weight (share of the size plus share of the writes) and tables per sync. */
  load: { weight: number; tables: number }[];
}

/**
 * A table's weight: its share of all bytes plus its share of all writes, so that size (the initial
 * copy) and write rate (the catch-up) count equally. A figure that is zero for every table drops out.
 */
export function tableWeights(tables: TableLoad[]): Map<string, number> {
  const bytes = tables.reduce((sum, t) => sum + Math.max(0, t.bytes), 0);
  const writes = tables.reduce((sum, t) => sum + Math.max(0, t.writes), 0);
  return new Map(
    tables.map((t) => [
      t.table,
      (bytes > 0 ? Math.max(0, t.bytes) / bytes : 0) + (writes > 0 ? Math.max(0, t.writes) / writes : 0),
    ]),
  );
}

/** Groups of tables connected by the given links (union-find), each sorted, in order of first member. */
export function connectedGroups(tables: string[], links: [string, string][]): string[][] {
  const parent = new Map(tables.map((t) => [t, t]));
  const root = (t: string): string => {
    let r = t;
    while (parent.get(r) !== r) r = parent.get(r)!;
    for (let x = t; parent.get(x) !== r;) {
      const next = parent.get(x)!;
      parent.set(x, r);
      x = next;
    }
    return r;
  };
  for (const [a, b] of links) {
    if (!parent.has(a) || !parent.has(b)) continue;
    const ra = root(a);
    const rb = root(b);
    if (ra !== rb) parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb);
  }
  const groups = new Map<string, string[]>();
  for (const t of [...tables].sort()) {
    const r = root(t);
    groups.set(r, [...(groups.get(r) ?? []), t]);
  }
  return [...groups.values()];
}

/**
 * Assigns tables to `syncs` syncs. Tables already recorded keep their sync (a rerun or a restart must
 * not move a table: its delta rows and triggers belong to that sync); a new table joins the sync of a
 * recorded table it is tied to; the other groups go, heaviest first, to the sync with the least weight
 * (then the fewest tables, then the lowest number): the longest-processing-time rule, within 4/3 of the
 * best split.
 */
export function assignTables(
  tables: TableLoad[],
  links: [string, string][],
  syncs: number,
  recorded: Map<string, number> = new Map(),
): Assignment {
  const weight = tableWeights(tables);
  const syncOf = new Map<string, number>();
  const load = Array.from({ length: syncs }, () => ({ weight: 0, tables: 0 }));
  const place = (table: string, index: number): void => {
    syncOf.set(table, index);
    load[index]!.weight += weight.get(table) ?? 0;
    load[index]!.tables += 1;
  };
  const fresh: { members: string[]; weight: number }[] = [];
  for (const members of connectedGroups(
    tables.map((t) => t.table),
    links,
  )) {
    const known = members
      .map((t) => recorded.get(t))
      .filter((i): i is number => i !== undefined && i < syncs);
    if (known.length > 0) {
      const target = Math.min(...known);
      for (const t of members) {
        const own = recorded.get(t);
        place(t, own !== undefined && own < syncs ? own : target);
      }
    } else {
      fresh.push({ members, weight: members.reduce((sum, t) => sum + (weight.get(t) ?? 0), 0) });
    }
  }
  fresh.sort(
    (a, b) =>
      b.weight - a.weight || b.members.length - a.members.length || (a.members[0]! < b.members[0]! ? -1 : 1),
  );
  for (const group of fresh) {
    let best = 0;
    for (let i = 1; i < syncs; i++) {
      const [c, l] = [load[i]!, load[best]!];
      if (c.weight < l.weight - 1e-12 || (Math.abs(c.weight - l.weight) <= 1e-12 && c.tables < l.tables))
        best = i;
    }
    for (const t of group.members) place(t, best);
  }
  return { syncOf, load };
}
