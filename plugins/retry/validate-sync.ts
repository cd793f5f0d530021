// The per-table variant of Bucardo's validate_sync, derived at run time from the function installed in
// the metadata database (never from a copy shipped with this tool, so it always matches the Bucardo
// there). Stock validate_sync takes every table's lock in one transaction on the primary and commits
// once: one locked table blocks the whole run and everything it passed (docs/how-bucardo-behaves.md §8).
//
// The patch is inert unless the calling session asks for it with a session setting, so the daemon,
// `bucardo validate` and bucardo.add_triggers keep Bucardo's own behaviour:
//   bucardo_console.retry_mode = 'defer'      records or updates a sync without touching any table
//   bucardo_console.retry_mode = 'per_table'  commits each source table on its own, bounds its lock wait
//                                             with bucardo_console.retry_lock_timeout (ms) and skips a
//                                             table it cannot lock in time (NOTICE 'bucardo_console
//                                             waiting <table>'); every finished table says 'ready'.
import type { Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';

export const VALIDATE_SYNC = 'bucardo.validate_sync(text,integer)';
export const PATCH_MARKER = '## bucardo-console retry patch';
export const NOTICE_PREFIX = 'bucardo_console ';
/** application_name of validate_sync's own connection to the primary in per_table mode, followed by the sync name. */
export const APPLICATION_PREFIX = 'bucardo_console retry ';

interface Edit {
  anchor: string;
  replacement: string;
}

const MODE_SETUP = `my $force = shift || 0;

${PATCH_MARKER} (plugins/retry): active only for sessions that set bucardo_console.retry_mode.
my $console_mode = spi_exec_query(q{SELECT current_setting('bucardo_console.retry_mode', true) AS v})->{rows}[0]{v} // '';
my $console_lock_timeout = spi_exec_query(q{SELECT current_setting('bucardo_console.retry_lock_timeout', true) AS v})->{rows}[0]{v} // '';
my $console_defer = $console_mode eq 'defer' ? 1 : 0;
my $console_per_table = $console_mode eq 'per_table' ? 1 : 0;
if ($console_per_table and $console_lock_timeout !~ /^\\d+$/) {
    elog(ERROR, 'bucardo_console.retry_lock_timeout must be a number of milliseconds');
}
my $console_skipped = 0;
my $console_new_transaction = sub {
    my ($dbh) = @_;
    $dbh->do('SET TRANSACTION READ WRITE');
    $dbh->do('SET LOCAL search_path = pg_catalog');
};`;

const EDITS: Edit[] = [
  { anchor: 'my $force = shift || 0;', replacement: MODE_SETUP },
  {
    // A session setting on validate_sync's own connection to the primary: it ends with that
    // connection, so no role or database setting is ever touched.
    anchor: "    $dbh->do('SET LOCAL search_path = pg_catalog');\n",
    replacement: `    $dbh->do('SET LOCAL search_path = pg_catalog');
    if ($console_per_table) { ${PATCH_MARKER}
        $dbh->do("SET lock_timeout = '\${console_lock_timeout}ms'");
        ## Lets the operator's Ctrl-C find and cancel this connection's lock wait at once.
        $dbh->do(q{SELECT set_config('application_name', ?, false)}, undef, "${APPLICATION_PREFIX}$syncname");
    }
`,
  },
  {
    // The schema-wide objects (bucardo schema, functions, delta_names) commit before the first table,
    // so a table rolled back later cannot take them along.
    anchor: '  SCHEMA: for my $schema (sort keys %goat) {\n',
    replacement: `    if ($console_per_table and $role eq 'source') { ${PATCH_MARKER}
        $dbh->commit();
        $console_new_transaction->($dbh);
    }
  SCHEMA: for my $schema (sort keys %goat) {
`,
  },
  {
    anchor: '      TABLE: for my $table (sort keys %{$goat{$schema}}) {\n',
    replacement: `      TABLE: for my $table (sort keys %{$goat{$schema}}) {
        $console_skipped = 0; ${PATCH_MARKER}
        my $console_table_done = eval { no warnings 'exiting';
`,
  },
  {
    anchor: "            next if $role ne 'source';\n",
    replacement: `            next if $role ne 'source';
            next if $console_defer; ${PATCH_MARKER}
`,
  },
  {
    anchor: '        } ## end each TABLE\n',
    replacement: `        1;
        }; ${PATCH_MARKER}
        if (! $console_table_done) {
            my $console_error = $@ || 'unknown error';
            my $console_state = $dbh->state // '';
            die $console_error unless $console_per_table and $role eq 'source'
                and $console_error =~ /DBD::Pg::\\w+ \\w+ failed/
                and ($console_state eq '55P03' or $console_state eq '40P01');
            $dbh->rollback();
            $console_skipped = 1;
            ## The rollback may have taken the shared delta_targets index along: let a later table create it.
            delete $bindexoid{bucardo_delta_target_unique}
                unless $dbh->selectrow_array(q{SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'bucardo' AND c.relname = 'bucardo_delta_target_unique'});
        }
        } continue {
            if ($console_per_table and $role eq 'source') {
                $dbh->commit();
                $console_new_transaction->($dbh);
                if ($goat{$schema}{$table}{reltype} eq 'table') {
                    elog(NOTICE, ($console_skipped ? '${NOTICE_PREFIX}waiting ' : '${NOTICE_PREFIX}ready ') . "$schema.$table");
                }
            }
        } ## end each TABLE
`,
  },
];

export function isPatched(definition: string): boolean {
  return definition.includes(PATCH_MARKER);
}

/** Applies the per-table patch to a CREATE OR REPLACE FUNCTION text from pg_get_functiondef. */
export function patchValidateSync(definition: string): string {
  if (isPatched(definition)) return definition;
  // Anchors are found in Bucardo's text before any edit, so inserted lines can never match one.
  const located = EDITS.map((edit) => {
    const at = definition.indexOf(edit.anchor);
    if (at < 0 || definition.indexOf(edit.anchor, at + 1) >= 0) {
      throw new OperatorError(
        `The installed ${VALIDATE_SYNC} does not look like Bucardo 5.6's (the line '${edit.anchor.trim()}' is ${at < 0 ? 'missing' : 'there more than once'}), so the retry plugin cannot derive its per-table variant from it. Nothing was changed. Use bucardo.add_triggers instead, or reinstall the metadata database with Debian's bucardo 5.6 package (bucardo.uninstall, bucardo.install).`,
      );
    }
    return { ...edit, at };
  });
  let patched = definition;
  for (const edit of located.sort((a, b) => b.at - a.at)) {
    patched = patched.slice(0, edit.at) + edit.replacement + patched.slice(edit.at + edit.anchor.length);
  }
  return patched;
}

/** The body Bucardo's packaged schema file gives validate_sync, to prove an uninstall restored it. */
export function packagedValidateSyncBody(schemaText: string): string | undefined {
  const start = schemaText.indexOf('CREATE OR REPLACE FUNCTION bucardo.validate_sync(text,integer)');
  if (start < 0) return undefined;
  const open = schemaText.indexOf('$bc$', start);
  const close = schemaText.indexOf('$bc$', open + 4);
  return open < 0 || close < 0 ? undefined : schemaText.slice(open + 4, close);
}

// Where validate_sync's definitions live in the metadata database: the installed one (read with
// pg_get_functiondef) and Bucardo's original, saved by retry.install so that retry.uninstall can put
// back exactly what was there.
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
