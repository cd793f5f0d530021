// One table's DDL in its own transaction, its lock wait bounded: a statement waiting in a table's
// lock queue holds up every later query on that table, so it must give up after the timeout and
// let the table be tried again in a later round.
import type { Activity } from '../../src/core/activity.js';
import type { Client } from '../../src/core/db.js';
import { InterruptedError } from '../../src/core/errors.js';
import { lockHolders, type TableFailure } from '../bucardo/triggers.js';
import type { TableRef } from './table-state.js';

/** lock_not_available (lock_timeout) and deadlock_detected: the table was busy, try it again later. */
export function isLockWait(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return code === '55P03' || code === '40P01';
}

export async function tryTableDdl(client: Client, activity: Activity, timeoutMs: number, statements: string[]): Promise<'done' | 'waiting'> {
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL lock_timeout = ${Math.trunc(Number(timeoutMs))}`);
    for (const statement of statements) await client.query(statement);
    await client.query('COMMIT');
    return 'done';
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (activity.interrupted) throw new InterruptedError();
    if (isLockWait(error)) return 'waiting';
    throw error;
  }
}

/** Who holds each waiting table's lock right now, for the operator to act on. */
export async function describeWaiting(client: Client, tables: TableRef[], reason: string): Promise<TableFailure[]> {
  const failures: TableFailure[] = [];
  for (const table of tables) {
    failures.push({ table: table.key, error: reason, blockers: await lockHolders(client, table.schema, table.table).catch(() => []) });
  }
  return failures;
}
