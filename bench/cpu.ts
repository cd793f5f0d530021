// CPU seconds used by the processes of a benchmark, by class, from /proc, sampled every 200 ms.
//
// A PostgreSQL cluster is counted from its postmaster: its own time, plus the time of the backends it
// has reaped (cutime/cstime: the postmaster waits for every child, so a backend that lived for a few
// milliseconds between two samples is not lost), plus the time so far of the backends alive now.
// Bucardo's processes cannot be counted that way: the daemon sets SIGCHLD to IGNORE, so the kernel reaps
// its controllers and kids without adding their time to the parent. They are counted by session
// instead (the daemon calls setsid; the MCP, controllers, kids and VAC share its session), each
// process's last-seen time kept after it exits: a process loses at most its last 200 ms. The
// classes are summed per session at every sample, and the caller names the sessions afterwards.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  session: number;
  /** utime + stime, seconds. */
  own: number;
  /** cutime + cstime of the children it has waited for, seconds. */
  reaped: number;
  /** Start time in clock ticks since boot: tells a reused pid from the process that had it before. */
  started: number;
}

export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    ppid: Number(f[1]),
    session: Number(f[3]),
    own: (Number(f[11]) + Number(f[12])) / TICKS,
    reaped: (Number(f[13]) + Number(f[14])) / TICKS,
    started: Number(f[19]),
  };
}

export function allStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** Busy CPU seconds of the whole machine since boot (all but idle and iowait), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS;
}

export interface CpuSample {
  at: number;
  /** Cumulative CPU seconds of each cluster (by name), counted from its postmaster. */
  clusters: Record<string, number>;
  /** Cumulative CPU seconds of each other session's processes seen so far (exited ones included). */
  sessions: Map<number, number>;
  /** Cumulative CPU seconds of single processes followed by pid (their own time only). */
  pids: Map<number, number>;
  machine: number;
}

/** A process seen while watching: its CPU seconds between the first and the last time it was seen. */
export interface SeenProcess {
  pid: number;
  name: string;
  session: number;
  /** The cluster whose postmaster started it, if any. */
  cluster?: string;
  /** 0 when it started after the watch did. */
  first: number;
  last: number;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replaceAll('\0', ' ');
  } catch {
    return '?';
  }
}

export class CpuWatch {
  readonly samples: CpuSample[] = [];
  private readonly seen = new Map<string, SeenProcess>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * postmasters: cluster name → postmaster pid. followed: pids whose own time is also kept apart (a
   * backend of the bench's own connection, to take it out of its cluster's figure).
   */
  constructor(
    private readonly postmasters: Record<string, number>,
    private readonly followed: number[] = [],
  ) {}

  start(intervalMs = 200): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  sample(): void {
    const at = Date.now();
    const machine = machineBusySeconds();
    // Postmasters first, then the rest: a backend reaped between the two reads is then missing from this
    // sample (and counted in the next one) rather than counted twice.
    const postmasterStats = Object.entries(this.postmasters).map(([name, pid]) => ({
      name,
      stat: readStat(pid),
    }));
    const stats = allStats();
    const clusters: Record<string, number> = {};
    const byPostmaster = new Map<number, string>();
    for (const { name, stat } of postmasterStats) {
      clusters[name] = stat ? stat.own + stat.reaped : 0;
      byPostmaster.set(this.postmasters[name]!, name);
    }
    const pids = new Map<number, number>();
    const firstSample = this.samples.length === 0;
    for (const stat of stats) {
      if (this.followed.includes(stat.pid)) pids.set(stat.pid, stat.own);
      if (byPostmaster.has(stat.pid)) continue;
      const cluster = byPostmaster.get(stat.ppid);
      if (cluster !== undefined) clusters[cluster]! += stat.own;
      const key = `${stat.pid}:${stat.started}`;
      const known = this.seen.get(key);
      if (known) known.last = stat.own;
      else
        this.seen.set(key, {
          pid: stat.pid,
          name: commandLine(stat.pid),
          session: stat.session,
          ...(cluster !== undefined ? { cluster } : {}),
          first: firstSample ? stat.own : 0,
          last: stat.own,
        });
    }
    // Cluster processes are counted from their postmaster above; the rest by session, exited ones too.
    const sessions = new Map<number, number>();
    for (const p of this.seen.values())
      if (p.cluster === undefined) sessions.set(p.session, (sessions.get(p.session) ?? 0) + p.last);
    this.samples.push({ at, clusters, sessions, pids, machine });
  }

  /** The processes seen, with the CPU seconds each used while watched, the busiest first. */
  processes(filter: (p: SeenProcess) => boolean): { pid: number; name: string; seconds: number }[] {
    return [...this.seen.values()]
      .filter(filter)
      .map((p) => ({ pid: p.pid, name: p.name, seconds: p.last - p.first }))
      .sort((x, y) => y.seconds - x.seconds);
  }

  /** A cumulative figure at time t, interpolated between the two samples around it. */
  at(t: number, pick: (sample: CpuSample) => number): number {
    const after = this.samples.findIndex((s) => s.at >= t);
    if (after <= 0) return pick(this.samples[after === 0 ? 0 : this.samples.length - 1]!);
    const [s0, s1] = [this.samples[after - 1]!, this.samples[after]!];
    const [v0, v1] = [pick(s0), pick(s1)];
    return s1.at === s0.at ? v1 : v0 + ((v1 - v0) * (t - s0.at)) / (s1.at - s0.at);
  }

  /** CPU seconds of one class between two times. */
  between(from: number, to: number, pick: (sample: CpuSample) => number): number {
    return Math.max(0, this.at(to, pick) - this.at(from, pick));
  }
}
