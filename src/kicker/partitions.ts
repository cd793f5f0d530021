// schema.auto_add_partitions: the kicker adds new leaf partitions of the job's replicated partitioned
// tables by itself (a partition created ahead of time by the application or pg_partman), within a
// minute, the way schema.add_tables does (src/core/bucardo/add-tables.ts). With
// schema.create_missing_partitions it first creates a partition missing on the secondary from the
// primary's definition. Runs beside kicking; a failure is logged and tried again at the next look.
import { detachedActivity } from '../core/activity.js';
import { CommandOptions } from '../core/arguments.js';
import {
  addTablesToJob,
  createMissingPartitions,
  partitionSettings,
  unreplicatedTables,
} from '../core/bucardo/add-tables.js';
import { recordedTableSyncs } from '../core/bucardo/syncs.js';
import { DatabaseContext } from '../core/context.js';
import { targetViews, type Job } from '../core/job.js';
import type { CommandContext } from '../core/plugin.js';

/** How often the kicker looks for new partitions: "within a minute" with room for the work itself. */
export const PARTITION_LOOK_EVERY_MS = 20_000;

/** A command context for core work run by the kicker: no terminal, no questions, its own sessions. */
function kickerContext(job: Job, db: DatabaseContext, log: (text: string) => void): CommandContext {
  const context: CommandContext = {
    job,
    jobs: [job],
    activity: db.activity!,
    db,
    databases: (other) => (other === job ? db : new DatabaseContext(other, db.activity)),
    progress: () => undefined,
    log,
    prompt: {
      interactive: false,
      confirm: async (_question, answer) => answer,
      select: async () => {
        throw new Error('the kicker cannot ask');
      },
      input: async (_question, value) => value ?? '',
    },
    options: new CommandOptions(),
    args: [],
    announce: { tableCopied: async () => [] },
    // Another target of a fan-out job: the same context on that target's sessions.
    forJob: (other) =>
      other === job ? context : kickerContext(other, new DatabaseContext(other, db.activity), log),
  };
  return context;
}

/**
 * One look: the leaf partitions in scope whose partitioned table already has a leaf in the job's
 * syncs, not replicated yet, are added (after creating the missing ones on the secondary when
 * allowed). Returns lines for the kicker's log; nothing when there is nothing new.
 */
export async function addNewPartitions(job: Job, log: (text: string) => void): Promise<void> {
  const settings = partitionSettings(job);
  if (!settings.autoAddPartitions) return;
  const db = new DatabaseContext(job, detachedActivity());
  try {
    const [primary, secondary, metadata] = await Promise.all([db.primary(), db.secondary(), db.metadata()]);
    const { missing, scope } = await unreplicatedTables(job, { primary, secondary, metadata });
    const recorded = await recordedTableSyncs(metadata, job);
    const replicatedRoots = new Set(
      scope
        .filter((t) => t.partitionRoot && recorded.has(`${t.schema}.${t.name}`))
        .map((t) => `${t.partitionRoot!.schema}.${t.partitionRoot!.name}`),
    );
    const rootOf = new Map(scope.map((t) => [`${t.schema}.${t.name}`, t.partitionRoot]));
    const leaves = missing.filter((t) => {
      const root = rootOf.get(t.table);
      return root && replicatedRoots.has(`${root.schema}.${root.name}`);
    });
    if (leaves.length === 0) return;
    // Each target of a fan-out job (databases.secondaries) needs the partition: the one sync applies
    // its rows to all of them.
    const absentAnywhere = new Set<string>();
    for (const view of targetViews(job)) {
      const viewDb = view === job ? db : new DatabaseContext(view, db.activity);
      try {
        const onView = view === job ? secondary : await viewDb.secondary();
        const { missing: there } =
          view === job
            ? { missing }
            : await unreplicatedTables(view, { primary, secondary: onView, metadata });
        const absent = there.filter(
          (t) =>
            leaves.some((leaf) => leaf.table === t.table) &&
            t.blocked?.includes('does not exist on the secondary'),
        );
        const where = job.config.fanOut ? `target ${view.target}` : 'the secondary';
        absent.forEach((t) => absentAnywhere.add(t.table));
        if (absent.length && settings.createMissingPartitions) {
          const created = await createMissingPartitions(
            { primary, secondary: onView },
            absent,
            job.config.bucardo.lockTimeoutMs,
          );
          if (created.length)
            log(`schema.create_missing_partitions: created ${created.join(', ')} on ${where}`);
        } else if (absent.length)
          log(
            `new partition(s) ${absent.map((t) => t.table).join(', ')} missing on ${where}: create them there (or set schema.create_missing_partitions: true)`,
          );
      } finally {
        if (viewDb !== db) await viewDb.close();
      }
    }
    const wanted = leaves.filter((t) => !t.blocked || absentAnywhere.has(t.table)).map((t) => t.table);
    const result = await addTablesToJob(kickerContext(job, db, log), 'schema.auto_add_partitions', {
      only: wanted,
    });
    if (result.added.length)
      log(`schema.auto_add_partitions: added ${result.added.join(', ')} to the job with their rows`);
    for (const waiting of result.waiting)
      log(`schema.auto_add_partitions: ${waiting.table}: ${waiting.error}; trying again later`);
  } finally {
    await db.close();
  }
}
