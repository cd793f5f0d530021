// Keeps the statistics of Bucardo's delta and track tables on a source fresh while a job runs. With
// stale statistics the planner picks a nested-loop anti join for bucardo_delta_check and a worker can
// spin for many minutes replicating nothing (docs/how-bucardo-behaves.md §13); autovacuum's thresholds react
// too late for tables that grow by hundreds of thousands of rows a minute.
import type { Client } from './db.js';
import { quoteIdent } from './quote.js';

export interface BookkeepingTableStats {
  table: string;
  live: number;
  dead: number;
  modifiedSinceAnalyze: number;
  lastAnalyzeAgeSeconds: number | null;
  lastVacuumAgeSeconds: number | null;
}

export interface MaintenanceAction {
  table: string;
  action: 'ANALYZE' | 'VACUUM (ANALYZE)';
  reason: string;
}

export async function bookkeepingTableStats(client: Client): Promise<BookkeepingTableStats[]> {
  const { rows } = await client.query<{
    table: string;
    live: string;
    dead: string;
    mods: string;
    analyzed: string | null;
    vacuumed: string | null;
  }>(`
    SELECT relname AS table, n_live_tup AS live, n_dead_tup AS dead, n_mod_since_analyze AS mods,
           extract(epoch FROM now() - greatest(last_analyze, last_autoanalyze))::int AS analyzed,
           extract(epoch FROM now() - greatest(last_vacuum, last_autovacuum))::int AS vacuumed
      FROM pg_stat_user_tables
     WHERE schemaname = 'bucardo' AND (relname LIKE 'delta\\_%' OR relname LIKE 'track\\_%')`);
  return rows.map((r) => ({
    table: r.table,
    live: Number(r.live),
    dead: Number(r.dead),
    modifiedSinceAnalyze: Number(r.mods),
    lastAnalyzeAgeSeconds: r.analyzed === null ? null : Number(r.analyzed),
    lastVacuumAgeSeconds: r.vacuumed === null ? null : Number(r.vacuumed),
  }));
}

/** Which tables need what: ANALYZE after 1,000 changes and 10% of the table; VACUUM when a fifth is dead. */
export function plannedMaintenance(stats: BookkeepingTableStats[]): MaintenanceAction[] {
  const actions: MaintenanceAction[] = [];
  for (const t of stats) {
    const deadShare = t.dead / Math.max(1, t.live + t.dead);
    const recentlyVacuumed = t.lastVacuumAgeSeconds !== null && t.lastVacuumAgeSeconds < 300;
    if (t.dead >= 10_000 && deadShare >= 0.2 && !recentlyVacuumed) {
      actions.push({
        table: t.table,
        action: 'VACUUM (ANALYZE)',
        reason: `${t.dead} dead rows (${Math.round(deadShare * 100)}%)`,
      });
    } else if (t.modifiedSinceAnalyze >= 1000 && t.modifiedSinceAnalyze >= 0.1 * t.live) {
      actions.push({
        table: t.table,
        action: 'ANALYZE',
        reason: `${t.modifiedSinceAnalyze} rows changed since the last analyze (${t.live} live)`,
      });
    }
  }
  return actions;
}

/** Runs the planned maintenance (VACUUM needs autocommit: the client must not be in a transaction). */
export async function maintainBookkeepingTables(client: Client, force = false): Promise<MaintenanceAction[]> {
  const stats = await bookkeepingTableStats(client);
  const actions = force
    ? stats.map((t) => ({ table: t.table, action: 'ANALYZE' as const, reason: 'watchdog remedy' }))
    : plannedMaintenance(stats);
  for (const action of actions) await client.query(`${action.action} bucardo.${quoteIdent(action.table)}`);
  return actions;
}
