// The mat_views plugin: Bucardo does not replicate materialized views, so they are refreshed on the
// secondary once its tables are complete. Command bodies are loaded on first use.
import { definePlugin } from '../../src/core/plugin.js';
import { formatRefresh } from './format.js';
import { parseMatViewSettings, type MatViewSettings } from './settings.js';

const refresh = () => import('./refresh.js');

export default definePlugin<MatViewSettings>({
  name: 'mat_views',
  summary: 'refresh the materialized views on the secondary (Bucardo does not replicate them)',
  parseSettings: parseMatViewSettings,
  commands: {
    refresh: {
      perTarget: true,
      summary:
        'refresh every materialized view in scope on the secondary, in dependency order, independent ones in parallel',
      run: async (ctx) => (await refresh()).refreshViews(ctx),
      validate: async (ctx) => (await refresh()).validateRefresh(ctx),
      format: formatRefresh,
    },
  },
});
