// What a plugin is: a folder plugins/<name>/ whose index module exports a PluginDescriptor. The shell
// discovers the folders, renders the menu from the descriptors and runs commands through them.
// Index modules must stay light (no pg, execa, ...): they are loaded before the prompt appears.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigReader } from '../config/reader.js';
import type { JobConfig } from '../config/types.js';
import type { Activity } from './activity.js';
import type { ArgumentDescriptor, CommandOptions } from './arguments.js';
import type { DatabaseContext } from './context.js';
import type { Job } from './job.js';

export interface Check {
  name: string;
  pass: boolean;
  detail?: string;
}

export interface CommandOutcome<D = unknown> {
  /** One line saying what happened. */
  message: string;
  /** Structured result (printed as JSON with --json in list mode). */
  data?: D;
  /** false when the command itself could not do its job (list mode stops, exit code non-zero). */
  ok?: boolean;
  /** The process exit code this outcome asks for (bucardo.status: its state's code), when ok. */
  exitCode?: number;
  /** Lines kept in the audit log beside the message, never printed (an operator's command's output). */
  auditLines?: string[];
}

/** How a command talks to the operator; in list mode questions get their safe default or fail. */
export interface Prompter {
  interactive: boolean;
  confirm(question: string, defaultAnswer: boolean): Promise<boolean>;
  select(question: string, choices: { name: string; value: string; description?: string }[]): Promise<string>;
  input(question: string, defaultValue?: string): Promise<string>;
}

export interface CommandContext {
  job: Job;
  /** Every job of the session (c1 and c2 when two configs are loaded), for cascade-aware commands. */
  jobs: Job[];
  activity: Activity;
  /**
   * The job's database sessions for this command, opened on first use and shared by its run, the
   * hooks around it and its validate; the runner closes them when the command ends. For single
   * statements; a transaction, session settings, COPY or LISTEN take a session of their own with
   * withClient (src/core/context.ts says why).
   */
  db: DatabaseContext;
  /** The same for another job of the session (bucardo.status --watch shows every job). */
  databases(job: Job): DatabaseContext;
  /**
   * This command's context for another view of its job (targetView: another target of a fan-out
   * job): its job, sessions and announcements are the view's; the rest is this context's.
   */
  forJob(job: Job): CommandContext;
  /** Progress text for the spinner ("copying public.orders: 120,000 rows"). */
  progress(text: string): void;
  /** A line of output that should stay on screen (the spinner is cleared around it). */
  log(text: string): void;
  prompt: Prompter;
  /** The command's declared arguments, parsed and checked before it started (see `arguments`). */
  options: CommandOptions;
  /** The words typed after the command name, already checked against its arguments; prefer `options`. */
  args: string[];
  /**
   * Tells every enabled plugin that something happened while this command runs (PluginDescriptor.events);
   * resolves with their lines, each prefixed with the plugin's name. A listener's failure rejects.
   */
  announce: Announcer;
}

/** A table the console's own copy (copy_data parallel) has finished: all its rows are on the secondary. */
export interface CopiedTable {
  schema: string;
  name: string;
}

/**
 * Moments a command announces to the other plugins while it runs, so that they can act at once without
 * importing each other's files. Each listener gets the announcing command's context.
 */
export interface PluginEvents {
  /**
   * copy_data parallel: every row of this table has been copied and committed on the secondary, and the
   * daemon does not apply the sync yet. Announced while the copy goes on with the other tables; the
   * command that ran the copy waits for the listeners before it ends (bucardo.start may start the daemon
   * first). Returns lines saying what the plugin did.
   */
  tableCopied?(context: CommandContext, table: CopiedTable): Promise<string[]>;
}

export type Announcer = {
  [E in keyof PluginEvents]-?: (
    ...payload: Parameters<NonNullable<PluginEvents[E]>> extends [unknown, ...infer P] ? P : never
  ) => Promise<string[]>;
};

export interface CommandDescriptor<D = unknown> {
  summary: string;
  /**
   * Every argument the command accepts, by name without dashes (`'dry-run'` is typed `--dry-run`).
   * The runner refuses anything else before the command starts; `--json` and `--help` are the
   * runner's own and accepted by every command (docs/commands-arguments.md).
   */
  arguments?: Record<string, ArgumentDescriptor>;
  /**
   * The command acts on the secondary: with several targets (databases.secondaries) the runner runs
   * it, its hooks and its checks once per target, each with that target as `ctx.job`'s secondary, or
   * on the one named by `--target NAME` (declared for it by definePlugin).
   */
  perTarget?: boolean;
  run(context: CommandContext): Promise<CommandOutcome<D>>;
  /**
   * Runs after the command; each check prints as `Check: <name> Pass/Fail`. It gets the command's
   * outcome: what the run chose at the prompt is in its data, not in the arguments.
   */
  validate?(context: CommandContext, outcome: CommandOutcome<D>): Promise<Check[]>;
  /** Turns the outcome's data into lines for a terminal (tables, lists). */
  format?(data: D): string[];
}

export interface PluginDescriptor<S = unknown> {
  name: string;
  summary: string;
  commands: Record<string, CommandDescriptor<any>>;
  /**
   * Validates the plugin's own config section (only when the plugin is enabled: a disabled one's section is ignored).
   */
  parseSettings?(reader: ConfigReader, raw: unknown, path: string, config: JobConfig): S;
  /**
   * The load hook: runs once per job when the session loads, before any command, and sets plain values
   * on the job that the plugin decides (concurrency: metadataDb and metadataDbRefusal; fork_bucardo:
   * bucardoFork). No getters: what the job says is worked out here, once. A command of the plugin that
   * changes what a value depends on sets it again (concurrency.install).
   */
  configureJob?(job: Job, settings: S): void;
  /** Lets a plugin refuse a job it prepared while the plugin is no longer enabled (its metadata lives elsewhere). */
  checkDisabled?(job: Job): void;
  /**
   * Steps this plugin adds around other plugins' commands, by full command name ('bucardo.uninstall'),
   * so that plugins never import each other's files. The runner calls them for every enabled plugin.
   */
  hooks?: Record<string, CommandHooks>;
  /** What this plugin does when another plugin's command announces a moment (CommandContext.announce). */
  events?: PluginEvents;
}

export interface CommandHooks {
  /** Runs before the command; throwing refuses it with the error's message, nothing run. */
  before?(context: CommandContext): Promise<void>;
  /** Runs once the command did its job (not when it failed); returns lines saying what it did. */
  after?(context: CommandContext, outcome: CommandOutcome): Promise<string[]>;
}

/**
 * The announcer of one command's context: each announcement goes to the listeners of the enabled
 * plugins, in the order given (the menu's), one after another; their lines come back prefixed.
 */
export function createAnnouncer(
  plugins: readonly PluginDescriptor[],
  enabled: readonly string[],
  context: () => CommandContext,
): Announcer {
  const listeners = plugins.filter((plugin) => enabled.includes(plugin.name) && plugin.events);
  return {
    tableCopied: async (table) => {
      const lines: string[] = [];
      for (const plugin of listeners) {
        const listener = plugin.events!.tableCopied;
        if (listener)
          lines.push(...(await listener(context(), table)).map((line) => `${plugin.name}: ${line}`));
      }
      return lines;
    },
  };
}

/** What `--target` means on a command that acts on each target (CommandDescriptor.perTarget). */
export const TARGET_ARGUMENT: ArgumentDescriptor = {
  kind: 'string',
  placeholder: 'NAME',
  help: 'act on this target of databases.secondaries only (default: on every target, one after the other)',
};

export function definePlugin<S>(plugin: PluginDescriptor<S>): PluginDescriptor<S> {
  for (const command of Object.values(plugin.commands)) {
    if (command.perTarget) command.arguments = { ...command.arguments, target: TARGET_ARGUMENT };
  }
  return plugin;
}

export class PluginCatalog {
  private readonly cache = new Map<string, PluginDescriptor>();
  readonly directories: string[];

  /** Plugins come from dist/plugins, plus any folders listed in BUCARDO_CONSOLE_PLUGIN_PATH (colon-separated). */
  constructor(directories?: string[]) {
    this.directories = directories ?? [
      defaultPluginDirectory(),
      ...(process.env['BUCARDO_CONSOLE_PLUGIN_PATH'] ?? '').split(':').filter(Boolean),
    ];
  }

  private locate(name: string): string | undefined {
    for (const directory of this.directories) {
      const file = path.join(directory, name, 'index.js');
      if (existsSync(file)) return file;
    }
    return undefined;
  }

  available(): string[] {
    const names = new Set<string>();
    for (const directory of this.directories) {
      if (!existsSync(directory)) continue;
      for (const entry of readdirSync(directory, { withFileTypes: true })) {
        if (entry.isDirectory() && existsSync(path.join(directory, entry.name, 'index.js')))
          names.add(entry.name);
      }
    }
    return [...names].sort();
  }

  async load(name: string): Promise<PluginDescriptor> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const file = this.locate(name);
    if (!file) throw new Error(`no plugin named '${name}' (looked in ${this.directories.join(', ')})`);
    const module = (await import(file)) as { default?: PluginDescriptor };
    const plugin = module.default;
    if (!plugin || typeof plugin !== 'object' || typeof plugin.commands !== 'object') {
      throw new Error(
        `plugins/${name}/index.ts must export default a plugin description (definePlugin({...}))`,
      );
    }
    this.cache.set(name, plugin);
    return plugin;
  }
}

/** Compiled plugins live in dist/plugins next to dist/src. */
function defaultPluginDirectory(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'plugins');
}

/** The order plugins appear in the menu: bucardo first, the others alphabetical. */
export function menuOrder(names: string[]): string[] {
  return [...names].sort((a, b) => (a === 'bucardo' ? -1 : b === 'bucardo' ? 1 : a.localeCompare(b)));
}
