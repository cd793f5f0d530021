// The concurrency plugin: independent Bucardo jobs side by side on one host. Bucardo's installer
// hard-codes its metadata database name; this plugin gives the job a name of its own
// (concurrency.bucardo_dbname) without touching any file outside the job's own directories, and
// refuses configs that would share a metadata database, pid dir, replication name or primary with
// another job. Command bodies are loaded on first use (pg is not needed to show the menu).
import { OperatorError } from '../../src/core/errors.js';
import { definePlugin } from '../../src/core/plugin.js';
import {
  resolveMetadataDb,
  type ConcurrencySettings,
  parseConcurrencySettings,
  preparedButDisabled,
} from './settings.js';

const install = () => import('./install.js');

export default definePlugin<ConcurrencySettings>({
  name: 'concurrency',
  summary:
    'run this job beside other Bucardo jobs on one host: its own metadata database, checked for clashes',
  parseSettings: parseConcurrencySettings,
  configureJob: (job, settings) => resolveMetadataDb(job, settings.bucardoDbname),
  checkDisabled: (job) => {
    const problem = preparedButDisabled(job.paths.stateDir);
    if (problem) throw new OperatorError(`${job.config.file}: ${problem}`);
  },
  hooks: {
    'bucardo.install': { after: async (ctx) => (await install()).recordInstalled(ctx) },
    'bucardo.uninstall': { after: async (ctx) => (await install()).forgetUninstalled(ctx) },
  },
  commands: {
    install: {
      summary:
        'check for clashes with the other jobs on this host, then prepare the job so bucardo.install creates its own metadata database',
      run: async (ctx) => (await install()).install(ctx),
      validate: async (ctx) => (await install()).validateInstall(ctx),
      format: (data: {
        clashes: { kind: string; message: string }[];
        warnings: string[];
        steps: string[];
      }) => [
        ...(data.clashes.length
          ? ['Clashes:', ...data.clashes.map((c) => `  FAIL ${c.kind}: ${c.message}`)]
          : []),
        ...(data.warnings.length ? ['Warnings:', ...data.warnings.map((w) => `  - ${w}`)] : []),
        ...(data.steps.length ? ['Steps:', ...data.steps.map((s) => `  - ${s}`)] : []),
      ],
    },
    uninstall: {
      summary:
        "after bucardo.uninstall: forget the job's metadata database name (back to Bucardo's default) and its registry entry",
      run: async (ctx) => (await install()).uninstall(ctx),
      validate: async (ctx) => (await install()).validateUninstall(ctx),
      format: (data: { steps: string[] }) => data.steps.map((s) => `  - ${s}`),
    },
  },
});
