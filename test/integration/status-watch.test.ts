// bucardo.status --watch through a real terminal: one block per job of a -c1/-c2 session, redrawn in
// place with the trend, until Ctrl-C brings the prompt back.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { clusters, writeJobConfig } from '../support/harness.js';
import { KEYS, PtySession } from '../support/pty.js';

const PROMPT = /Enter the command you wish to run here, or type "exit": $/;
let session: PtySession | undefined;
after(() => session?.kill());

test("status --watch 1 redraws both jobs' blocks until Ctrl-C", async () => {
  const { a, b } = await clusters();
  const first = writeJobConfig({
    name: 'w1',
    primary: { cluster: a, dbname: 'postgres' },
    secondary: { cluster: b, dbname: 'postgres' },
  });
  const second = writeJobConfig({
    name: 'w2',
    primary: { cluster: b, dbname: 'postgres' },
    secondary: { cluster: a, dbname: 'postgres' },
  });
  session = new PtySession(['-c1', first.file, '-c2', second.file]);
  let at = await session.waitFor(PROMPT, 30_000);
  session.send(`status --watch 1${KEYS.enter}`);
  at = await session.waitFor(/refresh #1 at/, 30_000, at);
  const afterFirst = at;
  at = await session.waitFor(/refresh #2 at/, 30_000, at);
  const secondRefresh = session.output.slice(afterFirst, at + 2000);
  assert.match(secondRefresh, /Job w1 \[c1\]/);
  assert.match(secondRefresh, /Job w2 \[c2\]/);
  assert.match(secondRefresh, /State {9}: stopped \(exit code 2\)/);
  assert.match(secondRefresh, /Trend {9}: backlog 0 change\(s\) \(steady\)/);
  // Redrawn in place: the cursor moves up over the previous block before the second one.
  assert.match(
    (session as unknown as { raw: string }).raw,
    // eslint-disable-next-line no-control-regex -- the terminal's escape codes are what the test looks for
    /\u001b\[\d+A\u001b\[0JStatus of 2 job\(s\), refresh #2/,
  );
  session.send(KEYS.ctrlC);
  at = await session.waitFor(/Stopped watching after \d+ refresh\(es\)\./, 20_000, at);
  await session.waitFor(PROMPT, 20_000, at);
  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
});
