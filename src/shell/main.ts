// Entry point behind wrapper.js.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import { errorMessage, OperatorError } from '../core/errors.js';
import { parseArguments, USAGE, type CliOptions } from './args.js';
import { menuLines } from './menu.js';
import { write, writeError } from './output.js';
import { Session } from './session.js';

export async function main(argv: string[]): Promise<number> {
  let options: CliOptions;
  try {
    options = parseArguments(argv);
  } catch (error) {
    writeError(errorMessage(error));
    return 2;
  }
  if (options.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    write(`bucardo-console ${pkg.version}`);
    return 0;
  }
  if (options.demo) {
    const { runDemo } = await import('../sandbox/demo.js');
    return runDemo(options);
  }
  const configFiles = options.configFiles.length ? options.configFiles : ['config.yml'];
  if (options.help) {
    write(USAGE);
    try {
      const session = await Session.load(configFiles);
      write('');
      for (const line of menuLines(session, true)) write(line);
      write('Every command also takes --json and --help; docs/commands-arguments.md explains the syntax.');
    } catch (error) {
      write(`\nThe command list appears when a config loads; this one did not:\n${errorMessage(error)}`);
    }
    return 0;
  }
  let session: Session;
  try {
    session = await Session.load(configFiles);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof OperatorError) {
      writeError(error.message);
      return 2;
    }
    throw error;
  }
  // Only the mode in use is loaded: the prompt should appear as fast as possible.
  if (options.list) return (await import('./list.js')).runList(session, options.list, options.json);
  if (options.command) {
    return (await import('./list.js')).runList(session, [options.command], options.json, { summary: false });
  }
  return (await import('./repl.js')).runShell(session);
}
