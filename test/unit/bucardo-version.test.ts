// bucardoVersion (src/core/bucardo/run.ts): the version a Perl bucardo declares is read from its text;
// anything else is asked with --version; a missing executable has none.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { bucardoVersion } from '../../src/core/bucardo/run.js';

test('bucardoVersion reads a Perl script, runs anything else, finds nothing missing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bucardo-version-'));
  try {
    // The declared version wins: this script would print another if it were run.
    const perl = path.join(dir, 'bucardo-perl');
    writeFileSync(
      perl,
      '#!/usr/bin/perl\nuse strict;\nour $VERSION = \'5.9.1\';\nprint "bucardo version 1.0\\n";\n',
    );
    chmodSync(perl, 0o755);
    assert.equal(await bucardoVersion(perl), '5.9.1');
    const wrapper = path.join(dir, 'bucardo-wrapper');
    writeFileSync(wrapper, "#!/bin/sh\n# our $VERSION = '9.9.9';\necho 'bucardo version 5.1.0'\n");
    chmodSync(wrapper, 0o755);
    assert.equal(await bucardoVersion(wrapper), '5.1.0');
    // Found by name on PATH, as execve finds it; a file that is not executable is not bucardo.
    const notExecutable = path.join(dir, 'bucardo-plain');
    writeFileSync(notExecutable, "#!/usr/bin/perl\nour $VERSION = '5.6.0';\n");
    const savedPath = process.env['PATH'];
    process.env['PATH'] = `${dir}:${savedPath}`;
    try {
      assert.equal(await bucardoVersion('bucardo-perl'), '5.9.1');
      assert.equal(await bucardoVersion('bucardo-plain'), undefined);
    } finally {
      process.env['PATH'] = savedPath;
    }
    assert.equal(await bucardoVersion(path.join(dir, 'missing')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
