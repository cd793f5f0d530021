// The menu the shell prints at start and on `help`.
import { style } from './output.js';
import type { Session } from './session.js';

export function menuLines(session: Session): string[] {
  const lines: string[] = [];
  for (const plugin of session.orderedPlugins()) {
    lines.push(style.heading(`Commands for ${plugin.name}: ${plugin.summary}`));
    for (const [name, command] of Object.entries(plugin.commands)) {
      lines.push(`  ${style.bold(`${plugin.name}.${name}`)}: ${command.summary}`);
    }
    lines.push('');
  }
  if (session.labelled) {
    lines.push(`Two configs are loaded: prefix a command with ${session.jobs.map((j) => `${style.bold(`${j.label}.`)} (${j.name})`).join(' or ')}; no prefix means c1.`);
  }
  lines.push(`Also: ${style.bold('help')} (this menu), ${style.bold('exit')} (or Ctrl-D). Tab completes, Up/Down walk the history.`);
  return lines;
}
