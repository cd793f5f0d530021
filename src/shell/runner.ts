// Runs one command and then its validation checks, with a spinner for progress and Ctrl-C handling:
// an interrupt cancels the command's SQL on the server and stops its children (see Activity), and
// the operator gets a line saying what state was left.
import { Activity } from '../core/activity.js';
import { parseCommandArguments, type ParsedArguments } from '../core/arguments.js';
import { CommandDatabases } from '../core/context.js';
import { errorMessage, InterruptedError, OperatorError } from '../core/errors.js';
import {
  createAnnouncer,
  type Check,
  type CommandContext,
  type CommandHooks,
  type CommandOutcome,
  type Prompter,
} from '../core/plugin.js';
import { targetTitle, targetViews, type Job } from '../core/job.js';
import { recordAudit } from './audit.js';
import { commandHelpLines } from './menu.js';
import { style, write, writeError } from './output.js';
import type { ResolvedCommand, Session } from './session.js';

export interface RunReport {
  command: string;
  ok: boolean;
  interrupted: boolean;
  outcome?: CommandOutcome;
  error?: string;
  checks: Check[];
  /** What other plugins' hooks did after the command (`concurrency: removed the registry entry ...`). */
  hookLines?: string[];
  /** The exit code the command's outcome asked for (bucardo.status's state), if any. */
  exitCode?: number;
  /** A failed command's lines for the audit log (OperatorError.details). */
  auditLines?: string[];
}

export interface RunOptions {
  interactive: boolean;
  json: boolean;
  prompt: Prompter;
}

interface Spinner {
  text: string;
  start(): Spinner;
  stop(): Spinner;
  clear(): Spinner;
  render(): Spinner;
  isSpinning: boolean;
}

async function createSpinner(enabled: boolean, text: string): Promise<Spinner | undefined> {
  // A terminal that reports no width (some ptys) would make ora's line arithmetic divide by zero.
  if (!enabled || !process.stdout.columns) return undefined;
  const { default: ora } = await import('ora');
  return ora({ text, discardStdin: false }).start() as unknown as Spinner;
}

/** The words after a command name, checked against its declared arguments (and the runner's --json, --help). */
export function checkArguments(resolved: ResolvedCommand, words: readonly string[]): ParsedArguments {
  return parseCommandArguments(resolved.fullName, resolved.command.arguments, words);
}

/** Every enabled plugin's hooks on this command, in menu order. */
function hooksOf(session: Session, resolved: ResolvedCommand): { plugin: string; hooks: CommandHooks }[] {
  const name = `${resolved.plugin.name}.${resolved.commandName}`;
  return session
    .orderedPlugins()
    .filter((plugin) => resolved.job.config.plugins.includes(plugin.name) && plugin.hooks?.[name])
    .map((plugin) => ({ plugin: plugin.name, hooks: plugin.hooks![name]! }));
}

/** Runs the command and its checks; every run, whatever its outcome, leaves one audit line. */
export async function runCommand(
  session: Session,
  resolved: ResolvedCommand,
  args: string[],
  options: RunOptions,
): Promise<RunReport> {
  const started = new Date();
  const report = await runAndCheck(session, resolved, args, options);
  recordAudit(resolved.job, report, args, started);
  return report;
}

async function runAndCheck(
  session: Session,
  resolved: ResolvedCommand,
  args: string[],
  runOptions: RunOptions,
): Promise<RunReport> {
  const report: RunReport = { command: resolved.fullName, ok: false, interrupted: false, checks: [] };
  const parsed = checkArguments(resolved, args);
  const options = { ...runOptions, json: runOptions.json || parsed.json };
  if (parsed.problems.length > 0) {
    report.error = parsed.problems.join('\n');
    if (options.json) write(JSON.stringify({ command: report.command, ok: false, error: report.error }));
    else writeError(`${report.error}\nNothing was run.`);
    return report;
  }
  if (parsed.help) {
    for (const line of commandHelpLines(resolved)) write(line);
    report.ok = true;
    return report;
  }
  let views: Job[];
  try {
    views = commandTargets(resolved, parsed);
  } catch (error) {
    report.error = errorMessage(error);
    if (options.json) write(JSON.stringify({ command: report.command, ok: false, error: report.error }));
    else writeError(`${report.error}\nNothing was run.`);
    return report;
  }
  // A fan-out job's per-target command always names its target (in the JSON too), even for one.
  if (
    views.length === 1 &&
    views[0] === resolved.job &&
    !(resolved.command.perTarget && resolved.job.config.fanOut)
  )
    return runOnce(session, resolved, args, options, parsed, report);
  // Once per target, each with its own report; together they pass only if every one passed.
  report.ok = true;
  for (const view of views) {
    if (!options.json) write(style.dim(`── target ${targetTitle(view)} ──`));
    const part: RunReport = { command: report.command, ok: false, interrupted: false, checks: [] };
    await runOnce(session, { ...resolved, job: view }, args, options, parsed, part, view.target);
    report.ok &&= part.ok;
    report.checks.push(...part.checks.map((check) => ({ ...check, name: `[${view.target}] ${check.name}` })));
    if (part.hookLines) (report.hookLines ??= []).push(...part.hookLines.map((l) => `[${view.target}] ${l}`));
    if (part.error)
      report.error = [report.error, `[${view.target}] ${part.error}`].filter(Boolean).join('\n');
    if (part.exitCode !== undefined) report.exitCode = Math.max(report.exitCode ?? 0, part.exitCode);
    report.outcome ??= part.outcome;
    if (part.interrupted) {
      report.interrupted = true;
      break;
    }
  }
  return report;
}

/**
 * The views of the job a command runs on: the job itself, or for a command that acts on each target
 * (perTarget) of a job with databases.secondaries, every target or the one `--target` names.
 */
function commandTargets(resolved: ResolvedCommand, parsed: ParsedArguments): Job[] {
  if (!resolved.command.perTarget) return [resolved.job];
  const named = parsed.options.string('target');
  if (named === undefined && !resolved.job.config.fanOut) return [resolved.job];
  return targetViews(resolved.job, named);
}

async function runOnce(
  session: Session,
  resolved: ResolvedCommand,
  args: string[],
  options: RunOptions,
  parsed: ParsedArguments,
  report: RunReport,
  target?: string,
): Promise<RunReport> {
  const activity = new Activity();
  // Opened on first use, shared by the run, the hooks and the checks, closed below whatever happens.
  const databases = new CommandDatabases(activity);
  try {
    return await runWithDatabases(
      session,
      resolved,
      args,
      options,
      parsed,
      activity,
      databases,
      report,
      target,
    );
  } finally {
    await databases.close();
  }
}

async function runWithDatabases(
  session: Session,
  resolved: ResolvedCommand,
  args: string[],
  options: RunOptions,
  parsed: ParsedArguments,
  activity: Activity,
  databases: CommandDatabases,
  report: RunReport,
  target?: string,
): Promise<RunReport> {
  const hooks = hooksOf(session, resolved);
  const spinner = await createSpinner(Boolean(process.stdout.isTTY) && !options.json, `${resolved.fullName}`);
  let lastPlainProgress = 0;
  const forJob = (job: Job): CommandContext => {
    const view: CommandContext = {
      ...context,
      job,
      db: databases.for(job),
      forJob,
      announce: createAnnouncer(session.orderedPlugins(), job.config.plugins, () => view),
    };
    return view;
  };
  const context: CommandContext = {
    job: resolved.job,
    jobs: session.jobs,
    activity,
    db: databases.for(resolved.job),
    databases: (job) => databases.for(job),
    forJob,
    options: parsed.options,
    args,
    prompt: wrapPrompter(options.prompt, spinner),
    progress: (text) => {
      if (spinner) spinner.text = `${resolved.fullName}: ${text}`;
      else if (!options.json && Date.now() - lastPlainProgress > 2000) {
        lastPlainProgress = Date.now();
        write(style.dim(`  ... ${text}`));
      }
    },
    log: (text) => {
      if (spinner?.isSpinning) {
        spinner.clear();
        write(text);
        spinner.render();
      } else if (!options.json) write(text);
    },
    announce: createAnnouncer(session.orderedPlugins(), resolved.job.config.plugins, () => context),
  };

  let interruptLines: string[] | undefined;
  let interruptCount = 0;
  let abandon: (() => void) | undefined;
  const abandoned = new Promise<'abandoned'>((resolve) => {
    abandon = () => resolve('abandoned');
  });
  const onInterrupt = () => {
    interruptCount += 1;
    if (interruptCount === 1) {
      spinner?.stop();
      write(style.warn('\nInterrupting: cancelling running statements and stopping child processes...'));
      void activity.interrupt().then((lines) => {
        interruptLines = lines;
      });
      // Give the command a few seconds to unwind by itself after its statements were cancelled.
      setTimeout(() => abandon?.(), 8000).unref();
    } else {
      abandon?.();
    }
  };
  process.on('SIGINT', onInterrupt);
  try {
    for (const {
      hooks: { before },
    } of hooks)
      await before?.(context);
    const result = await Promise.race([resolved.command.run(context), abandoned]);
    if (result === 'abandoned') throw new InterruptedError();
    report.outcome = result;
    report.ok = result.ok !== false;
    if (result.exitCode !== undefined) report.exitCode = result.exitCode;
    if (report.ok) {
      for (const {
        plugin,
        hooks: { after },
      } of hooks) {
        if (!after) continue;
        try {
          (report.hookLines ??= []).push(
            ...(await after(context, result)).map((line) => `${plugin}: ${line}`),
          );
        } catch (error) {
          const why = errorMessage(error);
          throw new OperatorError(
            `${resolved.fullName} did its job, but the ${plugin} plugin's step after it failed: ` + why,
          );
        }
      }
    }
  } catch (error) {
    report.ok = false;
    report.interrupted =
      activity.interrupted ||
      error instanceof InterruptedError ||
      (error as { name?: string }).name === 'ExitPromptError';
    report.error = report.interrupted ? 'interrupted' : errorMessage(error);
    // A failed command's lines for the audit log only (an operator's command's output).
    if (error instanceof OperatorError && error.details.length) report.auditLines = error.details;
    if (!(error instanceof OperatorError) && !report.interrupted && process.env['BUCARDO_CONSOLE_DEBUG'])
      console.error(error);
  } finally {
    spinner?.stop();
    process.off('SIGINT', onInterrupt);
  }

  if (report.interrupted) {
    // Wait for the interrupt's own report (cancellations) before telling the operator what was left.
    for (let i = 0; i < 50 && interruptLines === undefined && interruptCount > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    if (!options.json) {
      writeError(`${resolved.fullName} was interrupted.`);
      for (const line of interruptLines ?? ['nothing was running on a server']) write(`  - ${line}`);
      write(
        '  State: whatever the command finished before the interrupt stays done; rerunning the command continues from there.',
      );
    }
    return report;
  }

  if (report.outcome && !options.json) printOutcome(resolved, report.outcome);
  if (!options.json) for (const line of report.hookLines ?? []) write(`  - ${line}`);
  if (report.error && !options.json) writeError(report.error);

  if (report.ok && resolved.command.validate) {
    const checkSpinner = await createSpinner(
      Boolean(process.stdout.isTTY) && !options.json,
      `${resolved.fullName}: checking`,
    );
    try {
      report.checks = await resolved.command.validate(
        { ...context, activity: new Activity() },
        report.outcome!,
      );
    } catch (error) {
      report.checks = [{ name: 'validation could run', pass: false, detail: errorMessage(error) }];
    } finally {
      checkSpinner?.stop();
    }
    report.ok = report.checks.every((check) => check.pass);
    if (!options.json) for (const check of report.checks) write(formatCheck(check));
  }
  if (options.json)
    write(
      JSON.stringify({
        command: report.command,
        ...(target !== undefined ? { target } : {}),
        ok: report.ok,
        message: report.outcome?.message,
        error: report.error,
        data: report.outcome?.data,
        ...(report.hookLines ? { hooks: report.hookLines } : {}),
        checks: report.checks,
      }),
    );
  return report;
}

function printOutcome(resolved: ResolvedCommand, outcome: CommandOutcome): void {
  const lines =
    outcome.data !== undefined && resolved.command.format
      ? resolved.command.format(outcome.data)
      : stepLines(outcome.data);
  for (const line of lines) write(line);
  write(outcome.ok === false ? style.fail(outcome.message) : outcome.message);
}

/** Without a format of its own, a command's `steps` (what it did, in order) are listed. */
function stepLines(data: unknown): string[] {
  const steps = (data as { steps?: unknown } | undefined)?.steps;
  return Array.isArray(steps) ? steps.map((step) => `  - ${String(step)}`) : [];
}

export function formatCheck(check: Check): string {
  const verdict = check.pass ? style.pass('Pass.') : style.fail('Fail.');
  return `Check: ${check.name} ${verdict}${check.detail ? ` ${style.dim(check.detail)}` : ''}`;
}

function wrapPrompter(prompt: Prompter, spinner: Spinner | undefined): Prompter {
  // A question must not be drawn over by the spinner.
  const paused = async <T>(ask: () => Promise<T>): Promise<T> => {
    const spinning = spinner?.isSpinning;
    if (spinning) spinner!.stop();
    try {
      return await ask();
    } finally {
      if (spinning) spinner!.start();
    }
  };
  return {
    interactive: prompt.interactive,
    confirm: (q, d) => paused(() => prompt.confirm(q, d)),
    select: (q, c) => paused(() => prompt.select(q, c)),
    input: (q, d) => paused(() => prompt.input(q, d)),
  };
}
