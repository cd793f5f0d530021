// Numbers as the operator reads them. Not toLocaleString: its first call loads ICU's locale data,
// some 20 ms of CPU in every tool run that prints a row count (bucardo.scope, install, status).

/** An integer with commas between groups of three digits, as toLocaleString('en-US') prints it. */
export function withThousands(value: number): string {
  if (!Number.isSafeInteger(value)) return value.toLocaleString('en-US');
  const digits = String(Math.abs(value));
  const grouped = digits.replace(/\B(?=(\d{3})+$)/g, ',');
  return value < 0 || Object.is(value, -0) ? `-${grouped}` : grouped;
}
