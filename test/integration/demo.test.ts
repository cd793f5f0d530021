// The newcomer's first contact: `node wrapper.js --demo` reaches its prompt quickly, replicates, and
// leaves no process, cluster or file behind after `exit`.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import { KEYS, PtySession } from '../support/pty.js';

const PROMPT = /Enter the command you wish to run here, or type "exit": $/;
let session: PtySession | undefined;
after(() => session?.kill());

/** Live (non-zombie) processes whose command line mentions the text. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(text)) found.push(`${entry}: ${cmdline}`);
    } catch { /* exited meanwhile */ }
  }
  return found;
}

test('--demo reaches the prompt in under 30 s, replicates A→B, and leaves nothing behind after exit', async () => {
  const started = Date.now();
  session = new PtySession(['--demo'], { DEMO_ORDERS: '300000' });
  let at = await session.waitFor(PROMPT, 60_000);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 30, `reached the prompt after ${seconds} s`);
  const dir = /Configs: (\/\S+)\/a_to_b\.yml \(c1\)/.exec(session.output)![1]!;
  assert.match(session.output, /Commands for bucardo/);
  assert.match(session.output, /c1\. \(a_to_b\) or .*c2\. \(b_to_c\)/);

  session.send(`c1.bucardo.install${KEYS.enter}`);
  at = await session.waitFor(/Check: every table in scope recorded \(7\) Pass\./, 60_000, at);
  session.send(`c1.bucardo.add_triggers${KEYS.enter}`);
  at = await session.waitFor(/Check: every table in scope carries exactly the expected bucardo triggers \(7 tables\) Pass\./, 60_000, at);
  session.send(`c1.bucardo.start${KEYS.enter}`);
  at = await session.waitFor(/Check: exactly one live kicker for this job Pass\./, 60_000, at);
  session.send(`c1.bucardo.wait_for_copy${KEYS.enter}`);
  at = await session.waitFor(/Check: initial copy finished Pass\./, 120_000, at);
  assert.ok(processesMentioning(dir).length >= 4, 'the demo runs three clusters and a kicker');
  const daemonPid = readPidFile(`${dir}/a_to_b/run/bucardo.mcp.pid`)!;
  assert.ok(isProcessAlive(daemonPid), 'the Bucardo daemon runs');

  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
  assert.deepEqual(processesMentioning(dir), [], 'no cluster or kicker left');
  assert.equal(isProcessAlive(daemonPid), false, 'the Bucardo daemon has exited');
  assert.equal(existsSync(dir), false, 'the sandbox directory is removed');
});
