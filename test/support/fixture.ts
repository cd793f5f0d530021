// The opening most integration tests share: two databases with one schema, on the lane's clusters A
// and B, a job between them, and (optionally) the job installed and replicating. Everything it makes
// is undone, also when the test fails: the job's processes (by pid) and its metadata database after
// the test, both databases after the file.
import assert from 'node:assert/strict';
import { after, type TestContext } from 'node:test';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { clusters, dropDatabase, forgetJob, freshDatabase, writeJobConfig } from './harness.js';
import { runTool, type JobOptions, type ToolResult, type WrittenJob } from './tool.js';

/**
 * Dropped after the file, not after each test: a test's own sessions on them, ended by its own
 * after-hooks (which run after the fixture's), would otherwise be terminated under it. Each test
 * starts from fresh databases anyway.
 */
const databasesMade = new Map<string, { cluster: ClusterInfo; name: string }>();
/**
 * The jobs shared by a file's tests, forgotten after the file, before their databases go. Registered
 * here, at import: node:test's after() called from inside a test may attach to that test instead.
 */
const sharedJobs: (() => Promise<void>)[] = [];
after(async () => {
  for (const forget of sharedJobs) await forget().catch(() => undefined);
  for (const { cluster, name } of databasesMade.values())
    await dropDatabase(cluster, name).catch(() => undefined);
});

export interface JobBetweenOptions extends Omit<JobOptions, 'primary' | 'secondary'> {
  /** The databases on A and B: `<name>_a` and `<name>_b` unless given. */
  databases?: { primary?: string; secondary?: string };
  /** DDL run on both sides (the secondary starts with the shape, without rows). */
  schema: string;
  /** SQL run on the primary only, after the schema: the rows the application already has. */
  primaryData?: string;
  /**
   * A command list run at once and required to succeed, e.g. 'bucardo.install bucardo.add_triggers
   * bucardo.start' for a replicating job; none by default.
   */
  flow?: string;
  /** Per-run time bound of `tool` (a hang must fail the test, not the file's limit). */
  toolTimeoutMs?: number;
}

export interface JobBetween {
  a: ClusterInfo;
  b: ClusterInfo;
  primaryDb: string;
  secondaryDb: string;
  job: WrittenJob;
  /** `wrapper.js -c <job> -l <list>`. */
  tool(list: string, env?: Record<string, string>): Promise<ToolResult>;
  /** The same, asserted to exit 0 (its output in the assertion's message). */
  ok(list: string, env?: Record<string, string>): Promise<ToolResult>;
}

/**
 * Two fresh databases with `schema` and a job between them; the job is forgotten after `t` (or after
 * the file when `t` is not given, for a job that several tests of a file share: a job's life from
 * install to uninstall costs some 15 s of CPU, docs/performance.md).
 */
export async function jobBetween(
  t: TestContext | undefined,
  options: JobBetweenOptions,
): Promise<JobBetween> {
  const { a, b } = await clusters();
  const { databases, schema, primaryData, flow, toolTimeoutMs, ...jobOptions } = options;
  const primaryDb = databases?.primary ?? `${options.name}_a`;
  const secondaryDb = databases?.secondary ?? `${options.name}_b`;
  await freshDatabase(a, primaryDb, schema + (primaryData ? `\n${primaryData}` : ''));
  await freshDatabase(b, secondaryDb, schema);
  const job = writeJobConfig({
    ...jobOptions,
    primary: { cluster: a, dbname: primaryDb },
    secondary: { cluster: b, dbname: secondaryDb },
  });
  databasesMade.set(`${a.port}/${primaryDb}`, { cluster: a, name: primaryDb });
  databasesMade.set(`${b.port}/${secondaryDb}`, { cluster: b, name: secondaryDb });
  const forget = (): Promise<void> => forgetJob(job, options.metadata ?? a);
  if (t) t.after(forget);
  else sharedJobs.push(forget);
  const tool = (list: string, env?: Record<string, string>): Promise<ToolResult> =>
    runTool(['-c', job.file, '-l', list], {
      ...(env ? { env } : {}),
      ...(toolTimeoutMs ? { timeoutMs: toolTimeoutMs } : {}),
    });
  const ok = async (list: string, env?: Record<string, string>): Promise<ToolResult> => {
    const result = await tool(list, env);
    assert.equal(result.code, 0, `${list}\n${result.stdout}\n${result.stderr}`);
    return result;
  };
  if (flow) await ok(flow);
  return { a, b, primaryDb, secondaryDb, job, tool, ok };
}
