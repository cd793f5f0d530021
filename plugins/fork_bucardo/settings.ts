// The fork_bucardo section of a job's config, in the original tool's format:
//   fork_bucardo:
//     <any name>: {file: /usr/share/perl5/Bucardo.pm, pattern: '...', replacement: '...'}
// Loaded with the plugin's index, so it stays light (no pg, no execa). The sed syntax is checked here,
// so a config with a pattern this tool would read differently from sed never loads.
import type { ConfigReader } from '../../src/config/reader.js';
import type { JobConfig } from '../../src/config/types.js';
import { compileSubstitution, SedSyntaxError } from './sed.js';

export interface ForkChange {
  /** The change's name in the section (arbitrary, as in the original tool). */
  name: string;
  /** One of BUCARDO_FILES. */
  file: string;
  pattern: string;
  replacement: string;
}

export interface ForkSettings {
  changes: ForkChange[];
}

/**
 * The files of Debian's bucardo package that hold code the tool runs (`dpkg -L bucardo`, less its
 * documentation, /etc/bucardorc, which the tool never reads, and the init script, which it never
 * runs), each with where the job's private copy goes: bin/ is the executable, lib/ is put first on
 * Perl's module path, share/ holds the schema.
 */
export const BUCARDO_FILES: Record<string, string> = {
  '/usr/bin/bucardo': 'bin/bucardo',
  '/usr/share/perl5/Bucardo.pm': 'lib/Bucardo.pm',
  '/usr/share/bucardo/bucardo.schema': 'share/bucardo.schema',
};

const CHANGE_KEYS = ['file', 'pattern', 'replacement'];

export function parseForkSettings(
  reader: ConfigReader,
  raw: unknown,
  where: string,
  config: JobConfig,
): ForkSettings {
  // The original tool's config.yml ships this section with placeholder paths while the plugin is
  // not in its plugins list: a disabled plugin's section is accepted as it stands and ignored.
  if (!config.plugins.includes('fork_bucardo')) return { changes: [] };
  const section = reader.section(raw, where, Object.keys(raw && typeof raw === 'object' ? raw : {}));
  const changes: ForkChange[] = [];
  for (const [name, value] of Object.entries(section)) {
    const path = `${where}.${name}`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      reader.problem(
        path,
        "expected a change: {file: /usr/share/perl5/Bucardo.pm, pattern: '...', " + "replacement: '...'}",
      );
      continue;
    }
    const change = reader.section(value, path, CHANGE_KEYS);
    const file = reader.requiredString(change, 'file', path);
    const pattern = reader.requiredString(change, 'pattern', path);
    // An empty replacement deletes the matched text, as in sed; only a missing key is a mistake.
    const replacement =
      change['replacement'] === undefined ? undefined : reader.string(change, 'replacement', path, '');
    if (replacement === undefined)
      reader.problem(`${path}.replacement`, "is required ('' deletes the matched text)");
    if (file && !(file in BUCARDO_FILES)) {
      const allowed = Object.keys(BUCARDO_FILES).join(', ');
      reader.problem(
        `${path}.file`,
        `'${file}' is not one of Bucardo's installed files this plugin can fork: ` + allowed,
      );
    }
    if (pattern) {
      try {
        compileSubstitution(pattern, replacement ?? '');
      } catch (error) {
        if (!(error instanceof SedSyntaxError)) throw error;
        reader.problem(path, error.message);
      }
    }
    changes.push({ name, file, pattern, replacement: replacement ?? '' });
  }
  // No change at all is allowed: fork_bucardo.revert needs the plugin enabled, not a change.
  return { changes };
}

export function forkSettings(config: JobConfig): ForkSettings {
  return (config.pluginSettings['fork_bucardo'] as ForkSettings | undefined) ?? { changes: [] };
}
