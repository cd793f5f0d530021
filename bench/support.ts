// Shared set-up for benchmarks: clusters, a job replicating one table, CPU time of a process.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PG_BIN, stopAllClusters, startCluster, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query, runTool, writeJobConfigIn, type JobOptions, type WrittenJob } from '../test/support/tool.js';
import { stopProcessesIn } from '../src/core/process.js';

export const benchDir = mkdtempSync(path.join(tmpdir(), 'bench-'));
const jobs: WrittenJob[] = [];
/** Why the bench dir must outlive the run (evidence of a failure), if it must. */
let keepReason: string | undefined;

/** Keeps the bench dir (job configs, Bucardo's and the kicker's logs, evidence files) after cleanUp. */
export function keepBenchDir(reason: string): void {
  keepReason = reason;
}

export async function benchClusters(names: string[]): Promise<ClusterInfo[]> {
  return Promise.all(
    names.map((name) => startCluster(`bench${name}`, { settings: { max_connections: 300 } })),
  );
}

export function job(options: JobOptions): WrittenJob {
  const written = writeJobConfigIn(mkdtempSync(path.join(benchDir, `${options.name}-`)), options);
  jobs.push(written);
  return written;
}

export async function run(jobFile: string | string[], commands: string): Promise<void> {
  const result = await runTool([...(Array.isArray(jobFile) ? jobFile : ['-c', jobFile]), '-l', commands], {
    timeoutMs: 600_000,
  });
  if (result.code !== 0) throw new Error(`${commands} failed:\n${result.stdout}\n${result.stderr}`);
}

/** user+system CPU seconds a live process has used so far (from /proc), optionally with its waited-for children. */
export function cpuSeconds(pid: number, withChildren = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return (fields[11]! + fields[12]! + (withChildren ? fields[13]! + fields[14]! : 0)) / 100;
}

export async function syncrunRows(
  metadata: ClusterInfo,
  sync: string,
  metadataDb = 'bucardo',
): Promise<number> {
  return Number(
    (
      await query<{ n: string }>(
        metadata,
        metadataDb,
        'SELECT count(*) AS n FROM bucardo.syncrun WHERE sync = $1',
        [sync],
      )
    )[0]!.n,
  );
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** PostgreSQL clusters on this host that are not the benchmark's, and Bucardo daemons (contention). */
export function otherWork(ours: ClusterInfo[]): { clusters: number; bucardos: number } {
  let clusters = 0;
  let bucardos = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args = '';
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      continue;
    }
    if (/postgres -D /.test(args) && !ours.some((c) => args.includes(c.dataDir))) clusters += 1;
    if (args.startsWith('Bucardo Master Control Program')) bucardos += 1;
  }
  return { clusters, bucardos };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sends SIGTERM to the daemons and kickers of the benchmark's jobs, by their pid files. */
export function stopJobProcesses(): number[] {
  return jobs.flatMap((written) => stopProcessesIn(written.pidDir));
}

/** Stops everything the benchmark started: daemons and kickers by their pid files, then clusters. */
export function cleanUp(): void {
  stopJobProcesses();
  stopAllClusters();
  if (keepReason) console.error(`Kept ${benchDir}: ${keepReason}`);
  else rmSync(benchDir, { recursive: true, force: true });
}

/**
 * The account transaction several benchmarks load the primary with (public.acct, public.log):
 *   BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = random; INSERT INTO log (at) VALUES (clock_timestamp()); END;
 * written as a pgbench script readable by the postgres user (pgbench runs as root here).
 */
export function accountScript(accounts: number): string {
  const dir = mkdtempSync(path.join(benchDir, 'pgbench-'));
  const script = path.join(dir, 'txn.sql');
  writeFileSync(
    script,
    `\\set id random(1, ${accounts})
BEGIN;
UPDATE public.acct SET bal = bal + 1 WHERE id = :id;
INSERT INTO public.log (at) VALUES (clock_timestamp());
END;
`,
  );
  chmodSync(dir, 0o755);
  return script;
}

/** pgbench with a script against database `db`, asynchronously (probes may run meanwhile); its tps. */
export async function runPgbench(
  cluster: ClusterInfo,
  db: string,
  script: string,
  clients: number,
  seconds: number,
): Promise<number> {
  const args = [
    '-n',
    '-h',
    cluster.socketDir,
    '-p',
    String(cluster.port),
    '-U',
    'postgres',
    '-M',
    'prepared',
  ];
  args.push('-f', script, '-c', String(clients), '-j', '2', '-T', String(seconds), db);
  const output = await new Promise<string>((resolve, reject) =>
    execFile(path.join(PG_BIN, 'pgbench'), args, { encoding: 'utf8' }, (error, stdout) =>
      error ? reject(error) : resolve(stdout),
    ),
  );
  return Number(/tps = ([\d.]+)/.exec(output)![1]);
}
