// Which materialized views a view is built from. A view can read another materialized view directly or
// through ordinary views; either way the one it reads must be refreshed first.
import type { Client } from '../../src/core/db.js';

export interface MatView {
  oid: number;
  schema: string;
  name: string;
  populated: boolean;
}

export interface ViewGraph {
  /** Every materialized view in the database, by oid. */
  views: Map<number, MatView>;
  /** oid → oids of the materialized views it reads (through any chain of ordinary views). */
  readsFrom: Map<number, Set<number>>;
}

export async function viewGraph(client: Client): Promise<ViewGraph> {
  const { rows: matviews } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    populated: boolean;
  }>(
    `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relispopulated AS populated
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm'`,
  );
  // A view's or materialized view's query lives in its pg_rewrite rule; the rule depends on every relation it reads.
  const { rows: edges } = await client.query<{
    dependent: number;
    referenced: number;
    referenced_kind: string;
  }>(
    `SELECT DISTINCT v.oid::int AS dependent, ref.oid::int AS referenced, ref.relkind AS referenced_kind
       FROM pg_class v
       JOIN pg_rewrite r ON r.ev_class = v.oid
       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
       JOIN pg_class ref ON ref.oid = d.refobjid AND ref.oid <> v.oid AND ref.relkind IN ('m', 'v')
      WHERE v.relkind IN ('m', 'v')`,
  );
  const direct = new Map<number, { oid: number; kind: string }[]>();
  for (const edge of edges)
    direct.set(edge.dependent, [
      ...(direct.get(edge.dependent) ?? []),
      { oid: edge.referenced, kind: edge.referenced_kind },
    ]);

  const views = new Map(matviews.map((view) => [view.oid, view]));
  const readsFrom = new Map<number, Set<number>>();
  for (const view of matviews) {
    const found = new Set<number>();
    const seen = new Set<number>([view.oid]);
    const stack = [...(direct.get(view.oid) ?? [])];
    while (stack.length) {
      const next = stack.pop()!;
      if (seen.has(next.oid)) continue;
      seen.add(next.oid);
      if (next.kind === 'm') found.add(next.oid);
      else stack.push(...(direct.get(next.oid) ?? []));
    }
    readsFrom.set(view.oid, found);
  }
  return { views, readsFrom };
}
