// List mode (-l): check every command name and argument of the list first (any problem: exit code 2,
// nothing run), then run each command and its checks; stop at the first failure; summarise.
import { splitWords } from './args.js';
import { commandHelpLines } from './menu.js';
import { listModePrompter } from './prompter.js';
import { style, write, writeError } from './output.js';
import { checkArguments, runCommand, type RunReport } from './runner.js';
import type { ResolvedCommand, Session } from './session.js';

interface ListItem {
  typed: string;
  resolved: ResolvedCommand;
  args: string[];
  json: boolean;
  help: boolean;
}

/** Every item resolved and its arguments parsed, or every problem of the whole list. */
export function checkList(session: Session, items: string[]): { items: ListItem[]; problems: string[] } {
  const checked: ListItem[] = [];
  const problems: string[] = [];
  let previous: ListItem | undefined;
  for (const item of items) {
    const [name, ...args] = splitWords(item);
    if (name!.startsWith('-') || name!.includes('=')) {
      problems.push(
        `'${name}' comes before any command: arguments follow the command they belong to, ` +
          'as in -l "indexes.drop --dry-run".',
      );
      continue;
    }
    const resolved = session.resolve(name!);
    if ('error' in resolved && !name!.includes('.') && previous) {
      // `cutover.repair soon`: a bare word after a command is more likely a mistyped argument of it.
      const asArgument = checkArguments(previous.resolved, [name!]).problems;
      const refusal = asArgument[0] ?? `${previous.resolved.fullName} does not accept it`;
      problems.push(`'${name}' is not a command, and ${refusal}`);
      continue;
    }
    previous = undefined;
    if ('error' in resolved) {
      problems.push(resolved.error);
      continue;
    }
    const parsed = checkArguments(resolved, args);
    problems.push(...parsed.problems);
    previous = { typed: item, resolved, args, json: parsed.json, help: parsed.help };
    checked.push(previous);
  }
  return { items: checked, problems };
}

export async function runList(
  session: Session,
  items: string[],
  json: boolean,
  { summary: printSummary = true } = {},
): Promise<number> {
  const checked = checkList(session, items);
  if (checked.problems.length > 0) {
    const notRun = items.map((item) => item.split(/\s+/)[0]);
    if (json)
      write(JSON.stringify({ ok: false, errors: checked.problems, summary: { ran: [], not_run: notRun } }));
    else {
      for (const problem of checked.problems) writeError(problem);
      writeError(
        `Nothing was run: the list has ${checked.problems.length} problem(s), listed above. ` +
          'Fix them and run the list again.',
      );
    }
    return 2;
  }
  // `cmd --help` anywhere in a list shows help and runs nothing: the operator is asking, not doing.
  const asked = checked.items.filter((item) => item.help);
  if (asked.length > 0) {
    for (const item of asked) {
      for (const line of commandHelpLines(item.resolved)) write(line);
      write('');
    }
    write('Nothing was run (--help only shows the arguments).');
    return 0;
  }
  const reports: RunReport[] = [];
  const prompt = listModePrompter(json);
  for (const { resolved, args, json: itemJson } of checked.items) {
    const wantsJson = json || itemJson;
    if (!wantsJson) write(style.heading(`== ${resolved.fullName}`));
    const report = await runCommand(session, resolved, args, { interactive: false, json: wantsJson, prompt });
    reports.push(report);
    if (!report.ok) break;
  }
  const failed = reports.filter((r) => !r.ok);
  const notRun = items.slice(reports.length).map((item) => item.split(/\s+/)[0]!);
  const summary = {
    ran: reports.map((r) => r.command),
    passed: reports.filter((r) => r.ok).map((r) => r.command),
    failed: failed.map((r) => r.command),
    not_run: notRun,
  };
  if (!printSummary) {
    // One command given on the command line: its own output (and exit code) is all.
  } else if (json) {
    write(JSON.stringify({ summary }));
  } else {
    write('');
    write(
      `Summary: ran ${summary.ran.length} of ${items.length} command(s); passed: ${summary.passed.join(', ') || 'none'}; failed: ${summary.failed.join(', ') || 'none'}${notRun.length ? `; not run: ${notRun.join(', ')}` : ''}.`,
    );
    for (const report of failed) {
      const failedChecks = report.checks
        .filter((c) => !c.pass)
        .map((c) => `check '${c.name}' failed${c.detail ? ` (${c.detail})` : ''}`)
        .join('; ');
      const reason = report.error ?? (failedChecks || report.outcome?.message || 'failed');
      writeError(`${report.command}: ${reason}`);
    }
  }
  if (failed.length > 0 || reports.length < items.length) return 1;
  // A list's code says whether every command passed (0/1). A command given alone on the command
  // line exits with the code its outcome asks for: `status` with its state's.
  return printSummary ? 0 : (reports[0]?.exitCode ?? 0);
}
