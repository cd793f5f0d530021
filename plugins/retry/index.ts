// The retry plugin: add and drop Bucardo's triggers on a live primary without blocking production.
// Each table's lock wait is bounded by retry.timeout, busy tables are retried in later rounds, and
// Bucardo's validate_sync gets a per-table variant (retry.install) that commits table by table.
// Command bodies are loaded on first use so the shell's menu appears without loading pg or execa.
import { definePlugin } from '../../src/core/plugin.js';
import { formatRun, formatSteps } from './format.js';
import { parseRetrySettings, type RetrySettings } from './settings.js';

const install = () => import('./install.js');
const add = () => import('./add.js');
const drop = () => import('./drop.js');

export default definePlugin<RetrySettings>({
  name: 'retry',
  summary:
    "add and drop Bucardo's triggers table by table under a lock timeout, retrying busy tables, so production never waits long",
  parseSettings: (reader, raw, path) => parseRetrySettings(reader, raw, path),
  // The operator tuned retry.timeout/attempts/backoff for these servers' locks: every command's
  // lock-bounded rounds on the job's tables follow them (cutover.finish, the commit fence, schema).
  configureJob: (job, settings) => {
    job.tunedRounds = { ...settings, setting: 'retry.timeout' };
  },
  commands: {
    install: {
      summary:
        "install a per-table variant of Bucardo's validate_sync in the metadata database (Bucardo's own is saved)",
      run: async (ctx) => (await install()).install(ctx),
      validate: async (ctx) => (await install()).validateInstall(ctx),
      format: formatSteps,
    },
    add_triggers: {
      summary:
        "put this job's triggers on every table, each lock wait bounded by retry.timeout, retrying busy tables in rounds",
      arguments: {
        yes: {
          kind: 'flag',
          help: 'with copy_data always: confirm that non-empty secondary tables may be emptied by the copy',
        },
      },
      run: async (ctx) => (await add()).addTriggers(ctx),
      validate: async (ctx) => (await add()).validateAddTriggers(ctx),
      format: formatRun,
    },
    drop_triggers: {
      summary: "drop this job's triggers table by table the same way, then remove the sync",
      run: async (ctx) => (await drop()).dropTriggers(ctx),
      validate: async (ctx) => (await drop()).validateDropTriggers(ctx),
      format: formatRun,
    },
    uninstall: {
      summary: "put Bucardo's own validate_sync back exactly as it was",
      run: async (ctx) => (await install()).uninstall(ctx),
      validate: async (ctx) => (await install()).validateUninstall(ctx),
      format: formatSteps,
    },
  },
});
