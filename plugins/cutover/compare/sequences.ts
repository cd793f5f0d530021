// Sequences on both sides, compared by the next value each would hand out; and the cutover's
// sequence step: set the secondary's sequences past the primary's by a safety margin, never lowering.
import type { Client } from '../../../src/core/db.js';
import type { Relation } from '../../../src/core/objects.js';
import { quoteQualified } from '../../../src/core/quote.js';

interface SequenceState {
  next: bigint;
  increment: bigint;
  min: bigint;
  max: bigint;
}

async function readSequence(
  client: Client,
  sequence: Pick<Relation, 'schema' | 'name'>,
): Promise<SequenceState | undefined> {
  const name = quoteQualified(sequence.schema, sequence.name);
  const { rows: found } = await client.query<{ increment: string; min: string; max: string }>(
    `SELECT seqincrement::text AS increment, seqmin::text AS min, seqmax::text AS max
       FROM pg_sequence WHERE seqrelid = to_regclass($1)`,
    [name],
  );
  if (!found[0]) return undefined;
  const { rows } = await client.query<{ last_value: string; is_called: boolean }>(
    `SELECT last_value::text, is_called FROM ${name}`,
  );
  const increment = BigInt(found[0].increment);
  const last = BigInt(rows[0]!.last_value);
  return {
    next: rows[0]!.is_called ? last + increment : last,
    increment,
    min: BigInt(found[0].min),
    max: BigInt(found[0].max),
  };
}

export type SequenceStatus =
  'match' | 'ahead' | 'behind' | 'missing on the secondary' | 'missing on the primary';

export interface SequenceReport {
  sequence: string;
  /** The next value each side would hand out. */
  primaryNext?: string;
  secondaryNext?: string;
  status: SequenceStatus;
}

/** How far `value` is past `reference` in the sequence's direction (negative: behind). */
function distance(value: bigint, reference: bigint, increment: bigint): bigint {
  return increment > 0n ? value - reference : reference - value;
}

export async function compareSequences(
  primary: Client,
  secondary: Client,
  sequences: Relation[],
): Promise<SequenceReport[]> {
  const reports: SequenceReport[] = [];
  for (const sequence of sequences) {
    const label = `${sequence.schema}.${sequence.name}`;
    const [ours, theirs] = await Promise.all([
      readSequence(primary, sequence),
      readSequence(secondary, sequence),
    ]);
    if (!ours) {
      reports.push({ sequence: label, status: 'missing on the primary' });
      continue;
    }
    if (!theirs) {
      reports.push({ sequence: label, primaryNext: String(ours.next), status: 'missing on the secondary' });
      continue;
    }
    const gap = distance(theirs.next, ours.next, ours.increment);
    reports.push({
      sequence: label,
      primaryNext: String(ours.next),
      secondaryNext: String(theirs.next),
      status: gap === 0n ? 'match' : gap > 0n ? 'ahead' : 'behind',
    });
  }
  return reports;
}

export interface SequenceChange {
  sequence: string;
  from: string;
  to: string;
}

/**
 * Sets each secondary sequence to hand out primary-next + margin increments next (within the
 * sequence's bounds). A secondary already at or past that value is left alone: rerunning after the
 * secondary took writes must never hand out a value twice.
 */
export async function advanceSequences(
  primary: Client,
  secondary: Client,
  sequences: Relation[],
  margin: number,
): Promise<SequenceChange[]> {
  const changes: SequenceChange[] = [];
  for (const sequence of sequences) {
    const [ours, theirs] = await Promise.all([
      readSequence(primary, sequence),
      readSequence(secondary, sequence),
    ]);
    if (!ours || !theirs) continue;
    let target = ours.next + BigInt(margin) * ours.increment;
    if (target > theirs.max) target = theirs.max;
    if (target < theirs.min) target = theirs.min;
    if (distance(theirs.next, target, ours.increment) >= 0n) continue;
    await secondary.query('SELECT setval(to_regclass($1), $2::bigint, false)', [
      quoteQualified(sequence.schema, sequence.name),
      String(target),
    ]);
    changes.push({
      sequence: `${sequence.schema}.${sequence.name}`,
      from: String(theirs.next),
      to: String(target),
    });
  }
  return changes;
}
