// How writes stop and move at a switch (cutover.finish, cutover.rollback), beside the replication
// steps of finish.ts: the pooler's PAUSE is the write stop (pooler.ts), the fence keeps the
// application's roles from writing to the side being left (fence.ts), and at the switch the operator's
// command runs (switch-command.ts) and the pooler is pointed at the other side and RESUMEd there.
// Until the pooler resumes on the new side, everything it did can be taken back: any failure before
// that (a final check that finds a difference, a late write, the switch command exiting non-zero, an
// error, Ctrl-C) calls the switch off here, in withWriteStop, whatever step failed: the pooler's file
// put back and reloaded, the switch command told the old primary is the primary again, the fence
// lifted, and the pooler RESUMEd on the primary. The application saw a stall, never an error.
import { errorMessage, InterruptedError, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { fenceWrites, liftFence, planFence, readFence, type FencePlan } from './fence.js';
import { PoolerConsole, poolerTargetOf } from './pooler.js';
import { cutoverSettings, type CutoverSettings } from './settings.js';
import {
  checkSwitchCommand,
  runSwitchCommand,
  type SwitchCommandRun,
  type SwitchEnvironment,
} from './switch-command.js';

/** What the write stop did in this run, for --json (data.writeStop). */
export interface WriteStopReport {
  /** Seconds from the pooler's PAUSE returning to its RESUME on the new side: the application's stall. */
  poolerPauseSeconds?: number;
  /** Where the pooler resumed: 'target' after the switch, 'source' when the switch was called off. */
  poolerResumedOn?: 'source' | 'target';
  switchCommand?: Omit<SwitchCommandRun, 'output'>[];
  calledOff?: string[];
}

type Say = (line: string) => void;

export class WriteStop {
  private pausedAt?: number;
  private fenced = false;
  private commandStarted = false;
  private previousPoolerConfig?: string;
  private resumedOnTarget = false;
  /** A fence the other direction left on this one's target (read before the pause): lifted at the switch. */
  private otherFence = false;
  private fencePlan?: FencePlan;
  /** Where the pooler's entries pointed before the pause: the target only after an interrupted earlier run. */
  private poolerPointedAt?: 'source' | 'target';
  private readonly commandRuns: SwitchCommandRun[] = [];
  /** The pooler's admin console: one session for the command, ended when around() is done. */
  private pooler?: PoolerConsole;
  readonly report: WriteStopReport = {};

  private constructor(
    private readonly ctx: CommandContext,
    /** The job of this direction: its primary is the side writes leave, its secondary where they go. */
    private readonly job: Job,
    /** The job of the other direction: a fence it left on this direction's target is lifted at the switch. */
    private readonly other: Job,
    private readonly reason: 'finish' | 'rollback',
    private readonly settings: CutoverSettings,
  ) {}

  /** Checks every setting the switch will use, before anything is paused; refuses with the cause and the fix. */
  static async prepare(
    ctx: CommandContext,
    job: Job,
    other: Job,
    reason: 'finish' | 'rollback',
  ): Promise<WriteStop> {
    const settings = cutoverSettings(job.config);
    const stop = new WriteStop(ctx, job, other, reason, settings);
    if (settings.switchCommand) checkSwitchCommand(settings.switchCommand);
    if (settings.fence.length)
      stop.fencePlan = await planFence(job, ctx, settings.fence, settings.fenceGraceSeconds);
    // Only a job with a fence can have left one (the other direction reads the same config).
    if (settings.fence.length)
      stop.otherFence = (await readFence(ctx.databases(other), ctx.activity)) !== undefined;
    if (settings.pgbouncer) {
      ctx.progress('checking the pooler');
      stop.pooler = new PoolerConsole(settings.pgbouncer);
      try {
        stop.poolerPointedAt = (await stop.pooler.check(stop.source, stop.target)).pointsAt;
      } catch (error) {
        await stop.pooler.close();
        throw error;
      }
    }
    return stop;
  }

  /** With a pooler, the tool stops the writes itself: no question, no --writes-stopped. */
  get pausesWrites(): boolean {
    return this.settings.pgbouncer !== undefined;
  }

  /** Whether the switch has a step of the write stop's (the operator's command, the pooler, a fence to lift). */
  get switches(): boolean {
    return this.settings.switchCommand !== undefined || this.settings.pgbouncer !== undefined;
  }

  private get source() {
    return poolerTargetOf(this.job.config.databases.primary);
  }

  private get target() {
    return poolerTargetOf(this.job.config.databases.secondary);
  }

  private get calledOffNeeded(): boolean {
    return (
      !this.resumedOnTarget &&
      (this.pausedAt !== undefined ||
        this.fenced ||
        this.commandStarted ||
        this.previousPoolerConfig !== undefined)
    );
  }

  /** The write stop: the pooler's PAUSE, then the fence. Again on a rerun that continues a confirmed run. */
  async stopWrites(say: Say): Promise<void> {
    const pooler = this.settings.pgbouncer;
    if (pooler && this.pausedAt === undefined) {
      this.ctx.progress(`pausing ${pooler.databases.join(', ')} on the pooler`);
      const started = Date.now();
      await this.pooler!.pause(this.ctx.activity.signal);
      this.pausedAt = Date.now();
      say(
        `the pooler paused ${pooler.databases.join(', ')}: running transactions finished, new ones wait in the pooler (${Math.round((this.pausedAt - started) / 100) / 10} s)`,
      );
      if (this.poolerPointedAt === 'target') {
        // An earlier run was interrupted between pointing the pooler and stopping replication: until
        // the switch, the application's transactions belong on the source.
        this.previousPoolerConfig = await this.pooler!.point(this.source);
        this.poolerPointedAt = 'source';
        say(
          `the pooler's entries pointed at the target after an interrupted earlier run: back at ${this.source.dbname} until the switch`,
        );
      }
    }
    if (this.fencePlan && !this.fenced) {
      this.fenced = true;
      say(await fenceWrites(this.job, this.ctx, this.fencePlan));
    }
  }

  /** The switch, before replication stops for good: the operator's command, then the pooler's entries. */
  async switchWrites(say: Say): Promise<void> {
    const command = this.settings.switchCommand;
    if (command) {
      this.commandStarted = true;
      this.ctx.progress(`running cutover.switch_command ${command[0]}`);
      const run = await this.runCommand(command, { to: this.target, from: this.source, reason: this.reason });
      if (run.exitCode !== 0)
        throw new OperatorError(
          `cutover.switch_command ${command.join(' ')} exited with ${run.exitCode} after ${run.seconds} s${run.output.trim() ? `; its last output: ${tail(run.output)}` : ' without output'}. Nothing was switched.`,
        );
      say(
        `cutover.switch_command ${command[0]} ran (${run.seconds} s, exit 0; its output is in the audit log)`,
      );
    }
    const pooler = this.settings.pgbouncer;
    if (pooler) {
      this.ctx.progress('pointing the pooler at the new primary');
      this.previousPoolerConfig = await this.pooler!.point(this.target);
      say(
        `the pooler points ${pooler.databases.join(', ')} at ${this.target.dbname} on ${this.target.host}:${this.target.port} (entries rewritten in ${pooler.configFile}, RELOAD)`,
      );
    }
  }

  /** After the point of no return: RESUME on the new side (pointed there again if an earlier run did the switch). */
  async resumeWrites(say: Say): Promise<void> {
    // The other direction's fence on this side (rollback: the one finish left on A) goes first: the
    // pooler's new server sessions read the role's setting when they log in.
    if (this.otherFence) {
      const lifted = await liftFence(this.other, this.ctx.activity);
      this.otherFence = false;
      if (lifted) say(lifted);
    }
    const pooler = this.settings.pgbouncer;
    if (pooler && !this.resumedOnTarget) {
      if (this.previousPoolerConfig === undefined) await this.pooler!.point(this.target);
      await this.pooler!.resume();
      this.resumedOnTarget = true;
      this.report.poolerResumedOn = 'target';
      const seconds =
        this.pausedAt === undefined ? undefined : Math.round((Date.now() - this.pausedAt) / 100) / 10;
      if (seconds !== undefined) this.report.poolerPauseSeconds = seconds;
      say(
        `the pooler resumed ${pooler.databases.join(', ')} on ${this.target.dbname} (${this.target.host}:${this.target.port}): the queued transactions run there${seconds !== undefined ? `; the application waited at most ${seconds} s (PAUSE to RESUME)` : ''}`,
      );
    }
  }

  /** Takes everything back, in reverse order, ending with RESUME on the side writes never left. */
  async callOff(): Promise<string[]> {
    const lines: string[] = [];
    const pooler = this.settings.pgbouncer;
    if (pooler && this.previousPoolerConfig !== undefined) {
      await this.pooler!.restore(this.previousPoolerConfig, this.source);
      lines.push(
        `the pooler's entries point at ${this.source.dbname} on ${this.source.host}:${this.source.port} again`,
      );
    }
    if (this.commandStarted && this.settings.switchCommand) {
      const run = await this.runCommand(this.settings.switchCommand, {
        to: this.source,
        from: this.target,
        reason: 'call-off',
      });
      lines.push(
        run.exitCode === 0
          ? 'cutover.switch_command ran again with the old primary as the new one (exit 0)'
          : `cutover.switch_command, run again with the old primary as the new one, exited with ${run.exitCode}: undo its switch by hand (its output is in the audit log)`,
      );
    }
    if (this.fenced) {
      const lifted = await liftFence(this.job);
      if (lifted) lines.push(lifted);
    }
    if (pooler && this.pausedAt !== undefined) {
      await this.pooler!.resume();
      this.report.poolerResumedOn = 'source';
      this.report.poolerPauseSeconds = Math.round((Date.now() - this.pausedAt) / 100) / 10;
      lines.push(
        `the pooler resumed ${pooler.databases.join(', ')} on the primary (${this.source.dbname} on ${this.source.host}:${this.source.port}) after ${this.report.poolerPauseSeconds} s: the application saw a stall, no error, and replication runs as before`,
      );
    }
    this.report.calledOff = lines;
    return lines;
  }

  private async runCommand(command: string[], env: SwitchEnvironment): Promise<SwitchCommandRun> {
    const passwordEnv = this.settings.pgbouncer?.passwordEnv;
    const run = await runSwitchCommand(command, env, this.settings.switchTimeoutSeconds, {
      ...(passwordEnv ? { withhold: [passwordEnv] } : {}),
    });
    this.commandRuns.push(run);
    (this.report.switchCommand ??= []).push({
      command: run.command,
      exitCode: run.exitCode,
      seconds: run.seconds,
    });
    return run;
  }

  /** The switch command's runs with their output, for the audit log. */
  auditLines(): string[] {
    return this.commandRuns.map(
      (run) =>
        `cutover.switch_command ${run.command.join(' ')} → exit ${run.exitCode} in ${run.seconds} s; output: ${run.output}`,
    );
  }

  /** Runs one direction's switch with its write stop, calling it off on any failure before the switch. */
  static async around<D extends object>(
    stop: WriteStop,
    run: () => Promise<CommandOutcome<D>>,
  ): Promise<CommandOutcome<D & { writeStop?: WriteStopReport }>> {
    try {
      return await WriteStop.callOffOnFailure(stop, run);
    } finally {
      await stop.pooler?.close();
    }
  }

  private static async callOffOnFailure<D extends object>(
    stop: WriteStop,
    run: () => Promise<CommandOutcome<D>>,
  ): Promise<CommandOutcome<D & { writeStop?: WriteStopReport }>> {
    let outcome: CommandOutcome<D>;
    try {
      outcome = await run();
    } catch (error) {
      if (!stop.calledOffNeeded) throw error;
      const lines = await stop.callOffSafely();
      const text = `${errorMessage(error)} Called the switch off: ${lines.join('; ')}.`;
      if (error instanceof InterruptedError) throw new InterruptedError(text);
      throw new OperatorError(text, stop.auditLines());
    }
    if (outcome.ok === false && stop.calledOffNeeded) {
      const lines = await stop.callOffSafely();
      outcome = { ...outcome, message: `${outcome.message} Called the switch off: ${lines.join('; ')}.` };
    }
    const audit = stop.auditLines();
    return {
      ...outcome,
      ...(outcome.data ? { data: { ...outcome.data, writeStop: stop.report } } : {}),
      ...(audit.length ? { auditLines: audit } : {}),
    };
  }

  private async callOffSafely(): Promise<string[]> {
    try {
      return await this.callOff();
    } catch (error) {
      const pooler = this.settings.pgbouncer;
      return [
        `CALLING THE SWITCH OFF FAILED: ${errorMessage(error)}${pooler ? `. The pooler may still hold the application's transactions: RESUME it by hand (psql -h ${pooler.host} -p ${pooler.port} -U ${pooler.user} pgbouncer, then RESUME;) once its entries point at the primary` : ''}`,
      ];
    }
  }
}

function tail(output: string): string {
  const text = output.trim();
  return text.length > 500 ? `...${text.slice(-500)}` : text;
}
