// The fork_bucardo plugin: the original tool's sed changes to Bucardo's own code (for example to
// log the delta count in normal mode), made safely. The installed files are never edited: this job
// gets a changed private copy in its state dir and runs its bucardo commands and daemon from it,
// while other jobs keep the packaged Bucardo. Command bodies are loaded on first use.
import { definePlugin } from '../../src/core/plugin.js';
import { appliedFork, useFork } from './fork.js';
import { formatApply } from './format.js';
import { parseForkSettings, type ForkSettings } from './settings.js';

const apply = () => import('./apply.js');

export default definePlugin<ForkSettings>({
  name: 'fork_bucardo',
  summary:
    'run this job on a private copy of Bucardo changed by sed substitutions; the installed files stay untouched',
  parseSettings: parseForkSettings,
  configureJob: (job) => useFork(job, appliedFork(job.paths.stateDir)),
  commands: {
    apply_changes: {
      summary:
        "copy Bucardo's files into the job's state dir and apply every change of the fork_bucardo section " +
        '(restart the daemon after)',
      run: async (ctx) => (await apply()).applyChanges(ctx),
      validate: async (ctx) => (await apply()).validateApply(ctx),
      format: formatApply,
    },
    revert: {
      summary:
        "remove the job's copy: its bucardo commands and next daemon start use the packaged Bucardo again",
      run: async (ctx) => (await apply()).revert(ctx),
      validate: async (ctx) => (await apply()).validateRevert(ctx),
    },
  },
});
