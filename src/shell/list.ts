// List mode (-l): run each command then its checks; stop at the first failure; summarise.
import { listModePrompter } from './prompter.js';
import { style, write, writeError } from './output.js';
import { runCommand, type RunReport } from './runner.js';
import type { Session } from './session.js';

export async function runList(session: Session, items: string[], json: boolean, { summary: printSummary = true } = {}):
  Promise<number> {
  const reports: RunReport[] = [];
  const prompt = listModePrompter(json);
  for (const item of items) {
    const [name, ...rest] = item.split(/\s+/);
    const args = rest.filter((word) => word !== '--json');
    const wantsJson = json || rest.includes('--json');
    const resolved = session.resolve(name!);
    if ('error' in resolved) {
      reports.push({ command: name!, ok: false, interrupted: false, error: resolved.error, checks: [] });
      if (wantsJson) write(JSON.stringify({ command: name, ok: false, error: resolved.error }));
      else writeError(resolved.error);
      break;
    }
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
    write(`Summary: ran ${summary.ran.length} of ${items.length} command(s); passed: ${summary.passed.join(', ') || 'none'}; failed: ${summary.failed.join(', ') || 'none'}${notRun.length ? `; not run: ${notRun.join(', ')}` : ''}.`);
    for (const report of failed) {
      const failedChecks = report.checks.filter((c) => !c.pass).map((c) => `check '${c.name}' failed${c.detail ? ` (${c.detail})` : ''}`).join('; ');
      const reason = report.error ?? (failedChecks || report.outcome?.message || 'failed');
      writeError(`${report.command}: ${reason}`);
    }
  }
  if (failed.length > 0 || reports.length < items.length) return 1;
  // A list's code says whether every command passed (0/1). A command given alone on the command
  // line exits with the code its outcome asks for: `status` with its state's.
  return printSummary ? 0 : reports[0]?.exitCode ?? 0;
}
