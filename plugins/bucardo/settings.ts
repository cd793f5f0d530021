// bucardo.change_config: change one of Bucardo's own settings (bucardo_config).
import { runBucardo } from '../../src/core/bucardo/run.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { configKeySetting } from './daemon.js';
import { isDaemonRunning } from '../../src/core/bucardo/daemon.js';
import { storeSettingsVerbatim } from './bucardo-config.js';
import { configSettings, withMetadata } from '../../src/core/bucardo/metadata.js';

/** Settings the daemon reads only at start: a reload is not enough. */
const RESTART_SETTINGS = new Set([
  'piddir',
  'reason_file',
  'warning_file',
  'log_conflict_file',
  'log_level',
  'log_showpid',
  'log_showtime',
  'log_showline',
  'log_showlevel',
  'log_microsecond',
  'stats_script_url',
  'host_safety_check',
  'mcp_dbproblem_sleep',
]);

export interface ChangeConfigData {
  name: string;
  old: string;
  new: string;
  needs: 'reload' | 'restart';
}

export async function changeConfig(ctx: CommandContext): Promise<CommandOutcome<ChangeConfigData>> {
  const { job, prompt, activity } = ctx;
  const settings = await withMetadata(ctx.db, configSettings, activity);
  let name: string;
  let value: string;
  // Declared in index.ts: one SETTING=VALUE word, checked by the runner before the command starts.
  const assignment = ctx.options.assignment('setting');
  if (assignment) {
    ({ name, value } = assignment);
  } else if (prompt.interactive) {
    name = await prompt.select(
      'Which setting?',
      settings.map((s) => ({
        name: `${s.name} = ${s.setting}`,
        value: s.name,
        ...(s.about ? { description: s.about } : {}),
      })),
    );
    value = await prompt.input(`New value for ${name}:`, settings.find((s) => s.name === name)?.setting);
  } else {
    throw new OperatorError(
      'In list mode give the setting as an argument: -l "bucardo.change_config log_level=verbose".',
    );
  }
  const configKey = configKeySetting(name);
  if (configKey) {
    throw new OperatorError(
      `${name} is set by bucardo.start from ${configKey} in the job's config every time it starts the daemon, so a change here would be overwritten. Set ${configKey} in the job's config instead, then run bucardo.restart. Nothing was changed.`,
    );
  }
  const current = settings.find((s) => s.name === name);
  if (!current)
    throw new OperatorError(
      `Bucardo has no setting named '${name}'. Known settings: ${settings.map((s) => s.name).join(', ')}.`,
    );
  if (name === 'piddir') {
    // Bucardo 5.6 lowercases piddir values (a trigger in its schema); store the path verbatim.
    await storeSettingsVerbatim(job, [[name, value]], activity);
  } else {
    await runBucardo(job, ['set', `${name}=${value}`], { activity });
  }
  const needs = RESTART_SETTINGS.has(name) ? 'restart' : 'reload';
  const running = isDaemonRunning(job);
  return {
    data: { name, old: current.setting, new: value, needs },
    message: `Set ${name} from '${current.setting}' to '${value}'.${running ? ` The running daemon uses it after bucardo.${needs}.` : ' It takes effect when the daemon starts.'}`,
  };
}

export async function validateChangeConfig(
  ctx: CommandContext,
  outcome: CommandOutcome<ChangeConfigData>,
): Promise<Check[]> {
  // The check re-reads the setting the command wrote, whether it came as an argument or from the
  // prompt: it confirms Bucardo stored it.
  const { name, new: value } = outcome.data!;
  const settings = await withMetadata(ctx.db, configSettings);
  const stored = settings.find((s) => s.name === name)?.setting;
  // Bucardo stores most settings lowercased.
  return [
    {
      name: `${name} is stored as '${value}'`,
      pass: stored?.toLowerCase() === value.toLowerCase(),
      detail: `stored: ${stored}`,
    },
  ];
}
