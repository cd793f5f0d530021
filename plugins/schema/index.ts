// The schema plugin: a migration that lasts weeks, while the application keeps deploying. Bucardo does
// not replicate DDL: this plugin shows where the two sides' definitions differ (schema.diff), adds
// tables that came into scope to the running job with their rows (schema.add_tables), and applies a
// schema change to both sides in the order that never breaks replication (schema.apply).
// Command bodies are loaded on first use so the shell's menu appears without loading pg.
import { definePlugin } from '../../src/core/plugin.js';
import { formatAddTables, formatApply, formatDiff } from './format.js';
import { parseSchemaSettings, type SchemaSettings } from './settings.js';

const diff = () => import('./diff.js');
const addTables = () => import('./add-tables.js');
const apply = () => import('./apply.js');

export default definePlugin<SchemaSettings>({
  name: 'schema',
  summary:
    'schema changes while replication runs: compare both sides, add new tables, apply DDL in a safe order',
  parseSettings: (reader, raw, path) => parseSchemaSettings(reader, raw, path),
  // The kicker (a core process) follows these: registered on the job, never read by name in the core.
  configureJob: (job, settings) => {
    job.partitionPolicy = {
      autoAddPartitions: settings.autoAddPartitions,
      createMissingPartitions: settings.createMissingPartitions,
    };
  },
  commands: {
    diff: {
      summary:
        "compare the replicated tables' definitions on both sides and the job's syncs; one line per difference with its fix",
      // Each target of a fan-out job against the primary (or the one --target names).
      perTarget: true,
      run: async (ctx) => (await diff()).diff(ctx),
      format: formatDiff,
    },
    add_tables: {
      summary:
        'add the tables in scope the job does not replicate yet: relgroup, triggers under bounded locks, rows copied online',
      arguments: {
        table: {
          kind: 'string',
          help: 'only these tables (schema.name, comma-separated)',
          placeholder: 'TABLES',
        },
      },
      run: async (ctx) => (await addTables()).addTables(ctx),
      validate: async (ctx) => (await addTables()).validateAddTables(ctx),
      format: formatAddTables,
    },
    apply: {
      summary:
        'apply a schema change (--file or --sql) to both sides in the order that never breaks replication, then bring Bucardo in line (plan, then --yes)',
      arguments: {
        file: {
          kind: 'string',
          help: 'the file of SQL statements to apply (--file=PATH)',
          placeholder: 'PATH',
          conflicts: ['sql'],
        },
        sql: {
          kind: 'string',
          help: 'the SQL statements themselves, quoted (--sql "ALTER TABLE ...; ...")',
          placeholder: 'SQL',
          conflicts: ['file'],
        },
        yes: { kind: 'flag', help: 'apply the plan without asking (list mode)' },
      },
      run: async (ctx) => (await apply()).apply(ctx),
      validate: async (ctx) => (await apply()).validateApply(ctx),
      format: formatApply,
    },
  },
});
