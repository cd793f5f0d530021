// Sizes as operators write them in a config ("10 GB", "500MB", "10 gigabytes", "0") and as
// PostgreSQL's pg_size_pretty prints them: binary multiples, so "1 GB" means 1024^3 bytes.

const UNITS: [RegExp, number][] = [
  [/^(b|bytes?)$/, 1],
  [/^(k|kb|kib|kilobytes?)$/, 1024],
  [/^(m|mb|mib|megabytes?)$/, 1024 ** 2],
  [/^(g|gb|gib|gigabytes?)$/, 1024 ** 3],
  [/^(t|tb|tib|terabytes?)$/, 1024 ** 4],
];

/** Bytes for a size like "10 GB"; undefined when the text is not a size. A bare number is bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(value);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2]!.toLowerCase();
  if (unit === '') return Math.round(amount);
  const multiplier = UNITS.find(([pattern]) => pattern.test(unit))?.[1];
  return multiplier === undefined ? undefined : Math.round(amount * multiplier);
}

export const SIZE_EXAMPLES = '"10 GB", "10GB", "10 gigabytes", "500 MB", "0"';

/** "1.2 GB", like pg_size_pretty. */
export function formatSize(bytes: number): string {
  const steps = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let step = 0;
  while (Math.abs(value) >= 1024 && step < steps.length - 1) {
    value /= 1024;
    step += 1;
  }
  const shown = value >= 10 ? String(Math.round(value)) : value.toFixed(1).replace(/\.0$/, '');
  return step === 0 ? `${value} bytes` : `${shown} ${steps[step]}`;
}
