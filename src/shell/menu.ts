// The menu the shell prints at start and on `help`.
import { argumentHelpLines, argumentUsage } from '../core/arguments.js';
import { style } from './output.js';
import type { ResolvedCommand, Session } from './session.js';

/** With `withArguments` (wrapper.js --help) each command's arguments follow its name. */
export function menuLines(session: Session, withArguments = false): string[] {
  const lines: string[] = [];
  for (const plugin of session.orderedPlugins()) {
    lines.push(style.heading(`Commands for ${plugin.name}: ${plugin.summary}`));
    for (const [name, command] of Object.entries(plugin.commands)) {
      const declared = withArguments ? Object.entries(command.arguments ?? {}) : [];
      const usage = declared.map(([arg, spec]) => ` [${argumentUsage(arg, spec)}]`).join('');
      lines.push(`  ${style.bold(`${plugin.name}.${name}`)}${usage}: ${command.summary}`);
    }
    lines.push('');
  }
  if (session.labelled) {
    lines.push(
      `Two configs are loaded: prefix a command with ${session.jobs.map((j) => `${style.bold(`${j.label}.`)} (${j.name})`).join(' or ')}; no prefix means c1.`,
    );
  }
  lines.push(
    `Also: ${style.bold('help')} (this menu), ${style.bold('help <command>')} or ${style.bold('<command> --help')} ` +
      `(its arguments), ${style.bold('exit')} (or Ctrl-D). Tab completes, Up/Down walk the history.`,
  );
  return lines;
}

/** `help indexes.drop` / `indexes.drop --help`: the summary, the usage line and every argument. */
export function commandHelpLines(resolved: ResolvedCommand): string[] {
  const declared = resolved.command.arguments ?? {};
  const usage = Object.entries(declared).map(([name, spec]) => `[${argumentUsage(name, spec)}]`);
  return [
    style.heading(`${resolved.fullName}: ${resolved.command.summary}`),
    `Usage: ${[resolved.fullName, ...usage, '[--json]'].join(' ')}`,
    'Arguments:',
    ...argumentHelpLines(declared),
  ];
}
