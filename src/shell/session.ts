// A shell session: the loaded jobs (one config, or c1/c2), their plugins, and command lookup.
import { closest } from '../config/reader.js';
import { loadConfig } from '../config/load.js';
import { createJob, type Job } from '../core/job.js';
import { menuOrder, PluginCatalog, type CommandDescriptor, type PluginDescriptor } from '../core/plugin.js';

export interface ResolvedCommand {
  /** As typed, normalised: "c1.bucardo.start". */
  fullName: string;
  job: Job;
  plugin: PluginDescriptor;
  commandName: string;
  command: CommandDescriptor;
}

export class Session {
  private constructor(
    readonly jobs: Job[],
    readonly plugins: Map<string, PluginDescriptor>,
    readonly catalog: PluginCatalog,
  ) {}

  static async load(configFiles: string[], catalog = new PluginCatalog()): Promise<Session> {
    const labels = configFiles.length > 1 ? configFiles.map((_, i) => `c${i + 1}`) : [''];
    // Every plugin's light index module is needed below (settings, checkDisabled): load them side by side.
    await Promise.all(catalog.available().map((name) => catalog.load(name)));
    const plugins = new Map<string, PluginDescriptor>();
    const jobs: Job[] = [];
    for (const [index, file] of configFiles.entries()) {
      const config = await loadConfig(file, catalog);
      const job = createJob(config, labels[index]);
      for (const name of config.plugins) {
        const plugin = await catalog.load(name);
        plugins.set(name, plugin);
        plugin.configureJob?.(job, config.pluginSettings[name]);
      }
      for (const name of catalog.available()) {
        if (!config.plugins.includes(name)) (await catalog.load(name)).checkDisabled?.(job);
      }
      jobs.push(job);
    }
    return new Session(jobs, plugins, catalog);
  }

  get labelled(): boolean {
    return this.jobs.length > 1;
  }

  /** Plugins in menu order (bucardo first). */
  orderedPlugins(): PluginDescriptor[] {
    return menuOrder([...this.plugins.keys()]).map((name) => this.plugins.get(name)!);
  }

  /** Every name the operator can type: plugin.command, plus c1./c2. forms with two configs. */
  commandNames(): string[] {
    const names: string[] = [];
    for (const job of this.jobs) {
      for (const pluginName of menuOrder(job.config.plugins)) {
        const plugin = this.plugins.get(pluginName)!;
        for (const command of Object.keys(plugin.commands)) {
          const plain = `${pluginName}.${command}`;
          if (this.labelled) names.push(`${job.label}.${plain}`);
          if (job === this.jobs[0] && !names.includes(plain)) names.push(plain);
        }
      }
    }
    return names;
  }

  resolve(typed: string): ResolvedCommand | { error: string } {
    // `status` (or c1.status) is short for bucardo.status, at the prompt and on the command line.
    const parts = typed.replace(/^((?:c\d+\.)?)status$/, '$1bucardo.status').split('.');
    let job = this.jobs[0]!;
    const labelMatch = /^c(\d+)$/.exec(parts[0] ?? '');
    if (labelMatch) {
      const found =
        this.jobs.find((j) => j.label === parts[0]) ??
        (this.jobs.length === 1 && parts[0] === 'c1' ? this.jobs[0] : undefined);
      if (!found)
        return {
          error: `There is no ${parts[0]} in this session: ${this.labelled ? `use ${this.jobs.map((j) => `${j.label}.`).join(' or ')}` : 'only one config is loaded (use -c1 FILE -c2 FILE for two)'}.`,
        };
      job = found;
      parts.shift();
    }
    const [pluginName, commandName, ...rest] = parts;
    const plugin = pluginName ? this.plugins.get(pluginName) : undefined;
    const command =
      plugin && commandName && rest.length === 0 && job.config.plugins.includes(pluginName!)
        ? plugin.commands[commandName]
        : undefined;
    if (!plugin || !command) {
      const hint = closest(typed, this.commandNames());
      return {
        error: `Unknown command '${typed}'.${hint ? ` Did you mean '${hint}'?` : ''} Type 'help' for the menu.`,
      };
    }
    return {
      fullName: `${job.label ? `${job.label}.` : ''}${pluginName}.${commandName}`,
      job,
      plugin,
      commandName: commandName!,
      command,
    };
  }
}
