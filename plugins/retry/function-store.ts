// Where validate_sync's definitions live in the metadata database: the installed one (read with
// pg_get_functiondef) and Bucardo's original, saved by retry.install so that retry.uninstall can put
// back exactly what was there.
import type { Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import { VALIDATE_SYNC } from './patch.js';

/** Our own schema in the metadata database; nothing of Bucardo's is stored in it. */
export const SAVED_SCHEMA = 'bucardo_console_retry';
const SAVED_TABLE = `${SAVED_SCHEMA}.saved_function`;

export async function installedDefinition(client: Client): Promise<string> {
  const { rows } = await client.query<{ definition: string | null }>(
    'SELECT pg_get_functiondef(to_regprocedure($1)) AS definition',
    [VALIDATE_SYNC],
  );
  const definition = rows[0]?.definition;
  if (!definition) {
    throw new OperatorError(
      `The metadata database has no function ${VALIDATE_SYNC}: it is not a complete Bucardo installation. Run bucardo.uninstall and bucardo.install again.`,
    );
  }
  return definition;
}

/** The function's source text alone (what Bucardo's schema file puts between $bc$ markers). */
export async function installedBody(client: Client): Promise<string | undefined> {
  const { rows } = await client.query<{ body: string }>(
    'SELECT prosrc AS body FROM pg_proc WHERE oid = to_regprocedure($1)',
    [VALIDATE_SYNC],
  );
  return rows[0]?.body;
}

export async function savedOriginal(client: Client): Promise<string | undefined> {
  const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    SAVED_TABLE,
  ]);
  if (!rows[0]?.present) return undefined;
  const saved = await client.query<{ definition: string }>(
    `SELECT original_definition AS definition FROM ${SAVED_TABLE} WHERE signature = $1`,
    [VALIDATE_SYNC],
  );
  return saved.rows[0]?.definition;
}

export async function saveOriginal(client: Client, definition: string): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${SAVED_SCHEMA}`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${SAVED_TABLE} (
      signature text PRIMARY KEY, original_definition text NOT NULL, saved_at timestamptz NOT NULL DEFAULT now())`);
  await client.query(
    `INSERT INTO ${SAVED_TABLE} (signature, original_definition) VALUES ($1, $2)
      ON CONFLICT (signature) DO UPDATE SET original_definition = EXCLUDED.original_definition, saved_at = now()`,
    [VALIDATE_SYNC, definition],
  );
}

export async function forgetSaved(client: Client): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${SAVED_SCHEMA} CASCADE`);
}

export async function savedSchemaExists(client: Client): Promise<boolean> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [SAVED_SCHEMA]);
  return (rowCount ?? 0) > 0;
}

/** Serialises retry.install / retry.uninstall on one metadata database (two jobs may share it). */
export async function lockFunctionStore(client: Client): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock(hashtext('bucardo_console_retry.validate_sync'))");
}
