// withThousands prints what toLocaleString('en-US') printed before it replaced it (src/core/numbers.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withThousands } from '../../src/core/numbers.js';

test('withThousands groups digits as toLocaleString en-US does', () => {
  const values = [0, -0, 7, 42, 999, 1000, 12_345, 999_999, 1_000_000, 123_456_789, -1_234_567];
  values.push(Number.MAX_SAFE_INTEGER, 1.5, 2 ** 60);
  for (const value of values)
    assert.equal(withThousands(value), value.toLocaleString('en-US'), String(value));
});
