// The bucardo plugin: the whole A→B migration lifecycle on the real Bucardo daemon.
// Command bodies are loaded on first use so the shell's menu appears without loading pg or execa.
import { definePlugin } from '../../src/core/plugin.js';
import { formatScope } from './scope-format.js';
import type { ScopeReport } from './scope.js';
import { formatStatus } from './status-format.js';
import type { StatusData } from './status-data.js';

/** bucardo.install's data as its format needs it (the type lives in install.ts, which loads pg). */
interface InstallView {
  scope?: ScopeReport;
  findings: { ok: boolean; item: string; detail: string; fix?: string }[];
  steps: string[];
  otherJobs?: { name: string; syncs: string[]; databases: { name: string; where: string }[] }[];
}

const install = () => import('./install.js');
const uninstall = () => import('./uninstall.js');
const sync = () => import('./sync.js');
const daemon = () => import('./daemon.js');
const status = () => import('./status-watch.js');

export default definePlugin({
  name: 'bucardo',
  summary: 'set up, run and tear down Bucardo replication from the primary to the secondary',
  commands: {
    install: {
      summary:
        'check everything first, then create the metadata database and record the databases, tables and sequences',
      run: async (ctx) => (await install()).install(ctx),
      validate: async (ctx) => (await install()).validateInstall(ctx),
      format: (data: InstallView) => [
        ...(data.scope ? formatScope(data.scope) : []),
        'Preflight:',
        ...data.findings.map(
          (f) =>
            `  ${f.ok ? 'ok  ' : 'FAIL'} ${f.item}: ${f.detail}${!f.ok && f.fix ? `\n       fix: ${f.fix}` : ''}`,
        ),
        ...(data.steps.length ? ['Install:', ...data.steps.map((s) => `  - ${s}`)] : []),
        ...(data.otherJobs?.length
          ? [
              'Other jobs in the metadata database (left as they are):',
              ...data.otherJobs.map(
                (o) =>
                  `  - ${o.name}: ${o.syncs.length ? `sync ${o.syncs.join(', ')}` : 'no sync'}; ${o.databases.map((d) => `${d.name} (${d.where})`).join(', ') || 'no database'}`,
              ),
            ]
          : []),
      ],
    },
    scope: {
      summary:
        'what replication_objects selects on the primary, with sizes and rows, and why the rest is out',
      run: async (ctx) => (await import('./scope.js')).scope(ctx),
      format: formatScope,
    },
    add_triggers: {
      summary:
        "create the sync, which puts Bucardo's triggers on the primary's tables (bounded by lock_timeout)",
      arguments: {
        yes: {
          kind: 'flag',
          help: 'with copy_data always or parallel: confirm that non-empty secondary tables may be emptied by the copy',
        },
      },
      run: async (ctx) => (await sync()).addTriggers(ctx),
      validate: async (ctx) =>
        (await import('../../src/core/bucardo/sync.js')).triggerChecks(ctx.db, ctx.activity),
    },
    drop_triggers: {
      summary: "remove this job's sync and its triggers, table by table under a lock timeout",
      run: async (ctx) => (await sync()).dropTriggers(ctx),
      validate: async (ctx) => [
        await (await import('../../src/core/bucardo/sync.js')).noTriggersCheck(ctx.db, ctx.activity),
      ],
    },
    start: {
      summary:
        'start the Bucardo daemon (and the kicker); copy_data parallel copies the tables first; a new sync is loaded and kicked',
      run: async (ctx) => (await daemon()).start(ctx),
      validate: async (ctx) => (await daemon()).validateRunning(ctx),
    },
    stop: {
      summary: 'stop the daemon and the kicker, and wait until they have really exited',
      run: async (ctx) => (await daemon()).stop(ctx),
      validate: async (ctx) => (await daemon()).validateStopped(ctx),
    },
    restart: {
      summary: 'stop, then start the daemon (after a schema change on a replicated table)',
      run: async (ctx) => (await daemon()).restart(ctx),
      validate: async (ctx) => (await daemon()).validateRunning(ctx),
    },
    reload: {
      summary: "reload Bucardo's settings and syncs in the running daemon (after change_config)",
      run: async (ctx) => (await daemon()).reload(ctx),
      validate: async (ctx) => (await daemon()).validateRunning(ctx),
    },
    status: {
      summary:
        'state (exit code 0 caught up, 1 lagging/copying, 2 stopped/stalled/failed, 3 unknown), copy progress, backlog',
      arguments: {
        watch: {
          kind: 'seconds',
          bareValue: 2,
          help: 'redraw the status every SECONDS (default 2) until Ctrl-C',
        },
      },
      run: async (ctx) => (await status()).status(ctx),
      format: (data: StatusData | undefined) => (data ? formatStatus(data) : []),
    },
    copy: {
      summary:
        "copy_data parallel: copy the sync's tables primary→secondary now, several at once (bucardo.start does it first)",
      run: async (ctx) => (await import('./copy.js')).copyCommand(ctx),
      validate: async (ctx) => (await import('./copy.js')).validateCopyDone(ctx),
    },
    wait_for_copy: {
      summary: 'wait until the initial copy has finished, showing the table being copied',
      run: async (ctx) => (await import('./copy.js')).waitForCopy(ctx),
      validate: async (ctx) => (await import('./copy.js')).validateCopyDone(ctx),
    },
    change_config: {
      summary:
        "change one of Bucardo's settings (prompts for it; in list mode: bucardo.change_config name=value)",
      arguments: {
        setting: {
          kind: 'assignment',
          placeholder: 'SETTING=VALUE',
          help: 'the setting and its new value, e.g. log_level=verbose (without it the shell asks)',
        },
      },
      run: async (ctx) => (await import('./settings.js')).changeConfig(ctx),
      validate: async (ctx, outcome) => (await import('./settings.js')).validateChangeConfig(ctx, outcome),
    },
    uninstall: {
      summary:
        'stop the daemon, drop the triggers table by table, the bucardo schema and the metadata database',
      run: async (ctx) => (await uninstall()).uninstall(ctx),
      validate: async (ctx) => (await uninstall()).validateUninstall(ctx),
    },
  },
});
