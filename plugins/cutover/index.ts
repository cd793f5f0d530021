// The cutover plugin: prove the secondary holds the primary's data, list what still stands between
// the job and a cutover, and walk the operator through the switch itself. Command bodies are loaded
// on first use so the shell's menu appears without loading pg.
import { definePlugin } from '../../src/core/plugin.js';
import { formatCheck, formatFinish, formatRepair, formatVerify } from './format.js';
import { parseCutoverSettings, type CutoverSettings } from './settings.js';

export default definePlugin<CutoverSettings>({
  name: 'cutover',
  summary: "verify the secondary's data against the primary, check readiness, and switch over step by step",
  parseSettings: (reader, raw, path) => parseCutoverSettings(reader, raw, path),
  hooks: {
    // While the way back runs, bucardo.status (which knows only the job's own sync) also shows it.
    // Uninstalling would forget the way back while its triggers keep recording every write on B.
    // The same for the followers' sync of a fan-out job's cutover (follow.ts).
    'bucardo.uninstall': {
      before: async (ctx) => {
        await (await import('./way-back.js')).refuseWhileWayBack(ctx);
        await (await import('./follow.js')).refuseWhileFollowing(ctx);
      },
    },
    'bucardo.status': {
      after: async (ctx) => [
        ...(await (await import('./way-back.js')).wayBackStatus(ctx)),
        ...(await (await import('./follow.js')).followStatus(ctx)),
      ],
    },
  },
  commands: {
    verify: {
      perTarget: true,
      summary:
        'compare every table (row counts and checksums per key range, on the servers) and the sequences; name the differing keys',
      arguments: {
        settle: {
          kind: 'seconds',
          help:
            'tables without change records: how long differing rows may take to arrive (also settle=SECONDS; ' +
            'default cutover.settle_time)',
        },
        strict: { kind: 'flag', help: 'rows in flight and sequences behind fail the verify too' },
      },
      run: async (ctx) => (await import('./verify.js')).verify(ctx),
      format: formatVerify,
    },
    repair: {
      perTarget: true,
      summary:
        'make Bucardo re-apply the rows the last verify found differing (re-queues their keys on the primary), then verify',
      arguments: {
        wait: {
          kind: 'seconds',
          help:
            'how long to wait for Bucardo to apply the re-queued rows (also wait=SECONDS; default ' +
            'cutover.drain_timeout)',
        },
      },
      run: async (ctx) => (await import('./repair.js')).repair(ctx),
      validate: async (ctx) => (await import('./repair.js')).validateRepair(ctx),
      format: formatRepair,
    },
    check: {
      perTarget: true,
      summary:
        'the readiness list: daemon, initial copy, lag, indexes, materialized views, Bucardo errors, a recent verify',
      run: async (ctx) => (await import('./check.js')).check(ctx),
      format: formatCheck,
    },
    finish: {
      summary:
        'the guided switch: check, stop writes, drain, sequences, final check of changed keys, stop replication, drop triggers',
      arguments: {
        'writes-stopped': {
          kind: 'flag',
          help: "you have stopped every write to the primary (list mode's answer to the question)",
        },
        'full-verify': {
          kind: 'flag',
          help: 'the final check reads every row again instead of the keys changed since the last verify (longer pause)',
        },
        'way-back': {
          kind: 'flag',
          help: 'leave reverse replication B→A running after the switch, for cutover.rollback (or cutover.way_back: true)',
        },
        target: {
          kind: 'string',
          placeholder: 'NAME',
          help: 'with databases.secondaries: the target that becomes the new primary (the others follow it or stop, cutover.others)',
        },
      },
      run: async (ctx) => (await import('./finish.js')).finish(ctx),
      validate: async (ctx) => (await import('./finish.js')).validateFinish(ctx),
      format: formatFinish,
    },
    rollback: {
      summary:
        'after finish --way-back: the guided switch back to the primary (stop writes on B, drain, sequences, check, stop the way back)',
      arguments: {
        'writes-stopped': {
          kind: 'flag',
          help: "you have stopped every write to the secondary (list mode's answer to the question)",
        },
        'full-verify': {
          kind: 'flag',
          help: 'the final check reads every row again instead of the keys changed since the last verify (longer pause)',
        },
      },
      run: async (ctx) => (await import('./rollback.js')).rollback(ctx),
      validate: async (ctx) => (await import('./rollback.js')).validateRollback(ctx),
      format: formatFinish,
    },
    release: {
      summary:
        "lift the hold verify puts on Bucardo's purge of change records; after the switch, remove the way back and its triggers",
      run: async (ctx) => (await import('./release.js')).release(ctx),
      validate: async (ctx) => (await import('./release.js')).validateRelease(ctx),
    },
  },
});
