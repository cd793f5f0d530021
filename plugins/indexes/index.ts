// The indexes plugin: a fast initial copy. Bucardo's copy maintains every index of the secondary row by
// row; dropping the big ones first and rebuilding them afterwards, in parallel, is many times faster.
// Command bodies are loaded on first use so the shell's menu appears without loading pg.
import { definePlugin } from '../../src/core/plugin.js';
import { formatDrop, formatRecreate } from './format.js';
import { parseIndexSettings, type IndexSettings } from './settings.js';

const install = () => import('./install.js');
const drop = () => import('./drop.js');
const recreate = () => import('./recreate.js');
const uninstall = () => import('./uninstall.js');

export default definePlugin<IndexSettings>({
  name: 'indexes',
  summary:
    "drop the secondary's indexes on large tables before the initial copy, and rebuild them in parallel after it",
  parseSettings: parseIndexSettings,
  events: {
    // copy_data parallel: a table's indexes are rebuilt while the copy goes on with the others.
    tableCopied: async (ctx, table) => (await import('./after-copy.js')).rebuildCopiedTable(ctx, table),
  },
  hooks: {
    // Dropping the metadata database would lose the only copy of the dropped indexes' definitions.
    'bucardo.uninstall': {
      before: async (ctx) => (await import('./uninstall-guard.js')).refuseWithUnrebuiltIndexes(ctx),
    },
  },
  commands: {
    install: {
      summary: 'create the table in the metadata database that records dropped index definitions',
      run: async (ctx) => (await install()).install(ctx),
      validate: async (ctx) => (await install()).validateInstall(ctx),
    },
    drop: {
      perTarget: true,
      summary:
        "list, then record and drop the secondary's non-primary-key indexes on tables larger than indexes.larger_than (--dry-run: list only)",
      arguments: {
        'dry-run': { kind: 'flag', help: 'list what would be dropped and kept; drop nothing' },
        'upstream-copy-done': {
          kind: 'flag',
          help: 'on a B→C job whose A→B config is not loaded: the A→B initial copy is done',
        },
      },
      run: async (ctx) => (await drop()).dropIndexes(ctx),
      validate: async (ctx) => (await drop()).validateDrop(ctx),
      format: formatDrop,
    },
    recreate: {
      perTarget: true,
      summary:
        'rebuild the dropped indexes, now or after the initial copy (--now / --wait), largest first, indexes.jobs at a time',
      arguments: {
        now: { kind: 'flag', conflicts: ['wait'], help: 'rebuild at once, even while the initial copy runs' },
        wait: {
          kind: 'flag',
          conflicts: ['now'],
          help: "wait for the initial copy to finish, then rebuild (list mode's choice)",
        },
      },
      run: async (ctx) => (await recreate()).recreateIndexes(ctx),
      validate: async (ctx) => (await recreate()).validateRecreate(ctx),
      format: formatRecreate,
    },
    uninstall: {
      perTarget: true,
      summary:
        "remove this job's index records, and the record table once no job has any (refuses while a dropped index is not rebuilt)",
      run: async (ctx) => (await uninstall()).uninstall(ctx),
      validate: async (ctx) => (await uninstall()).validateUninstall(ctx),
    },
  },
});
