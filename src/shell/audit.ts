// The console's audit log: one JSON line per command run through the shell or a list, appended to
// <log_dir>/console.<replication_name>.jsonl, saying who ran what, with which config, when, and how it
// ended (checks included). Never a password: the values of the environment variables that carry the
// job's passwords are masked wherever they would appear.
import { appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Job } from '../core/job.js';
import type { Check, CommandOutcome } from '../core/plugin.js';

export interface AuditEntry {
  user: string;
  host: string;
  pid: number;
  config: string;
  job: string;
  command: string;
  args: string[];
  startedAt: string;
  endedAt: string;
  seconds: number;
  outcome: 'ok' | 'failed' | 'interrupted';
  message?: string;
  error?: string;
  exitCode?: number;
  /** What the command asked to keep beside its message (CommandOutcome.auditLines). */
  details?: string[];
  checks: { name: string; pass: boolean; detail?: string }[];
}

export function auditLogFile(job: Job): string {
  return path.join(job.paths.logDir, `console.${job.name}.jsonl`);
}

/** Passwords this process could leak: PGPASSWORD and each database's password_env variable. */
function secretsOf(job: Job): string[] {
  const names = ['PGPASSWORD', ...Object.values(job.config.databases).map((db) => db.passwordEnv)];
  // Very short values would mask ordinary words: a password that short is not worth hiding anyway.
  const values = names.map((name) => (name ? process.env[name] : undefined));
  return values.filter((value): value is string => (value?.length ?? 0) >= 3);
}

function operator(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env['USER'] ?? String(process.getuid?.() ?? 'unknown');
  }
}

/** What the audit log keeps of a command's run (the runner's RunReport carries it). */
export interface AuditedRun {
  command: string;
  ok: boolean;
  interrupted: boolean;
  outcome?: Pick<CommandOutcome, 'message' | 'auditLines'>;
  error?: string;
  checks: Check[];
  exitCode?: number;
  auditLines?: string[];
}

/**
 * Appends the command's line. A log that cannot be written (a log_dir not yet created and not
 * creatable) must not fail the command that already ran: the reason goes to stderr instead.
 */
export function recordAudit(job: Job, report: AuditedRun, args: string[], started: Date): void {
  const ended = new Date();
  const entry: AuditEntry = {
    user: operator(),
    host: os.hostname(),
    pid: process.pid,
    config: job.config.file,
    job: job.name,
    command: report.command,
    args,
    startedAt: started.toISOString(),
    endedAt: ended.toISOString(),
    seconds: Math.round((ended.getTime() - started.getTime()) / 100) / 10,
    outcome: report.interrupted ? 'interrupted' : report.ok ? 'ok' : 'failed',
    ...(report.outcome?.message ? { message: report.outcome.message } : {}),
    ...(report.error ? { error: report.error } : {}),
    ...(report.exitCode !== undefined ? { exitCode: report.exitCode } : {}),
    ...((report.outcome?.auditLines ?? report.auditLines)?.length
      ? { details: report.outcome?.auditLines ?? report.auditLines }
      : {}),
    checks: report.checks.map((c) => ({
      name: c.name,
      pass: c.pass,
      ...(c.detail ? { detail: c.detail } : {}),
    })),
  };
  let line = JSON.stringify(entry);
  for (const secret of secretsOf(job)) line = line.split(secret).join('********');
  try {
    mkdirSync(job.paths.logDir, { recursive: true });
    appendFileSync(auditLogFile(job), `${line}\n`, { mode: 0o600 });
  } catch (error) {
    process.stderr.write(`Could not write the audit log ${auditLogFile(job)}: ${(error as Error).message}\n`);
  }
}
