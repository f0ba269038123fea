import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CLI, http, startHost, tempDir } from './support/hosts.js';

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('krypton host CLI', () => {
  it('refuses unknown and malformed flags with exit code 2 and a clear message', () => {
    let r = cli(['host', '--prot=8000']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown flag --prot/);
    r = cli(['host', 'port=8000']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Arguments must start with --/);
    r = cli(['host', '--port=abc']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--port must be an integer/);
    r = cli(['frobnicate']);
    assert.equal(r.status, 2);
    const refused: Array<[string, RegExp]> = [
      ['--port=99999', /--port must be at most 65535/],
      ['--port=-5', /--port must not be negative/],
      ['--port=', /--port must be an integer/],
      ['--publicUri=notauri', /--publicUri must be an http\(s\) URI/],
      ['--logLevel=bogus', /--logLevel must be one of/],
      ['--services=', /--services must not be empty/],
      ['--requestPayloadSizeLimit=0', /--requestPayloadSizeLimit must be positive/],
      ['--services=/no/such/module.mjs', /--services=\/no\/such\/module\.mjs: cannot load .*: no such file/],
    ];
    for (const [flag, message] of refused) {
      r = cli(['host', `--sandbox=${tempDir()}`, flag]);
      assert.equal(r.status, 2, flag);
      assert.match(r.stderr, message, flag);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${flag}: no stack trace`);
    }
    const bad = join(tempDir(), 'syntax.mjs');
    writeFileSync(bad, 'export const x = ;\n');
    r = cli(['host', `--sandbox=${tempDir()}`, `--services=${bad}`]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot load .*syntax\.mjs: SyntaxError/);
  });

  it('listens on an IPv6 address and advertises it in brackets', async () => {
    const h = await startHost(['--bindAddress=::1']);
    try {
      assert.match(h.output(), new RegExp(`uri=http://\\[::1\\]:${h.port}`));
      const r = await fetch(`http://[::1]:${h.port}/core/node-groups/default`);
      assert.equal(r.status, 200);
    } finally {
      await h.stop();
    }
  });

  it('prints the flags of each command for --help, and every flag for krypton help (exit 0)', () => {
    const host = cli(['host', '--help']);
    assert.equal(host.status, 0);
    assert.match(host.stdout, /--peerNodes=<list>/);
    const migrate = cli(['migrate', '--help']);
    assert.equal(migrate.status, 0);
    assert.match(migrate.stdout, /--destination=<string>/);
    assert.doesNotMatch(migrate.stdout, /--peerNodes/);
    const all = cli(['help']);
    assert.equal(all.status, 0);
    assert.match(all.stdout, /--peerNodes=<list>/);
    assert.match(all.stdout, /--all-versions|--allVersions/);
  });

  it('prints one ready line, keeps its id in the sandbox, and stops gracefully on SIGTERM with exit 0', async () => {
    const sandbox = tempDir();
    const h = await startHost(['--id=blueNodeAtPort8000', '--adminPassword=changeme'], { sandbox });
    const ready = h
      .output()
      .split('\n')
      .filter((l) => l.includes('krypton host ready'));
    assert.equal(ready.length, 1);
    assert.match(ready[0]!, new RegExp(`id=blueNodeAtPort8000 uri=http://127.0.0.1:${h.port} sandbox=${sandbox.replace(/[/\\^$*+?.()|[\]{}]/g, '\\$&')}`));
    const created = await http('POST', `${h.uri}/core/examples`, { name: 'persisted', documentSelfLink: 'p' });
    assert.equal(created.status, 200);
    assert.equal(await h.stop(), 0);
    const again = await startHost([], { sandbox });
    assert.match(again.output(), /id=blueNodeAtPort8000/, 'the id is kept in the sandbox');
    const r = await http('GET', `${again.uri}/core/examples/p`);
    assert.equal(r.json.name, 'persisted');
    assert.equal(await again.stop(), 0);
  });

  it('stops gracefully on a SIGTERM sent the moment it says ready', async () => {
    // Before, the signal listener came after the ready line: 25 of 30 such hosts were killed outright.
    for (let i = 0; i < 8; i++) {
      const proc = spawn(process.execPath, [CLI, 'host', '--port=0', `--sandbox=${tempDir()}`, '--logLevel=info'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let sent = false;
      proc.stdout.on('data', (d) => {
        out += d;
        if (!sent && out.includes('krypton host ready')) {
          sent = true;
          proc.kill('SIGTERM');
        }
      });
      proc.stderr.on('data', (d) => (out += d));
      const [code, signal] = await new Promise<[number | null, string | null]>((r) => proc.once('exit', (c, s) => r([c, s])));
      assert.deepEqual([code, signal], [0, null], `run ${i}: ${out}`);
      assert.match(out, /"msg":"stopped"/);
    }
  });

  it('refuses a sandbox written by a newer format with a clear message', async () => {
    const sandbox = tempDir();
    const h = await startHost([], { sandbox });
    await h.stop();
    const db = new Database(join(sandbox, 'index.sqlite'));
    db.prepare("UPDATE meta SET value = '999' WHERE key = 'formatVersion'").run();
    db.close();
    const r = cli(['host', '--port=0', `--sandbox=${sandbox}`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /written by a newer krypton \(index format 999/);
  });

  it('refuses a second host on a sandbox in use; a kill -9 leaves no stale lock; a port in use is a one-line error', async () => {
    const sandbox = tempDir();
    const first = await startHost(['--id=first'], { sandbox });
    let next: Awaited<ReturnType<typeof startHost>> | undefined;
    try {
      assert.equal((await http('POST', `${first.uri}/core/examples`, { name: 'kept', documentSelfLink: 'k' })).status, 200);
      const second = cli(['host', '--port=0', '--id=second', `--sandbox=${sandbox}`]);
      assert.equal(second.status, 1);
      assert.match(second.stderr, new RegExp(`the sandbox .* is in use by another krypton host \\(pid ${first.proc.pid},`));
      assert.doesNotMatch(second.stderr, /\n\s+at /, 'a message, not a stack trace');
      // The first host is untouched: same id, same data, still writing.
      assert.equal((await http('GET', `${first.uri}/core/examples/k`)).json.name, 'kept');
      assert.equal((await http('POST', `${first.uri}/core/examples`, { name: 'after', documentSelfLink: 'a' })).status, 200);
      assert.match(JSON.stringify((await http('GET', `${first.uri}/core/management`)).json), /"first"/);

      // Its port is taken: refused with one line, and the sandbox it tried is free again at once.
      const other = tempDir();
      const busy = cli(['host', `--port=${first.port}`, `--sandbox=${other}`]);
      assert.equal(busy.status, 1);
      assert.equal(busy.stderr.trim(), `krypton: cannot listen on 127.0.0.1:${first.port}: the address is in use (another process listens there)`);
      const free = await startHost([], { sandbox: other });
      await free.stop();

      await first.kill();
      next = await startHost([], { sandbox });
      assert.match(next.output(), /id=first/, 'the sandbox, its id and its data belong to the new host');
      assert.equal((await http('GET', `${next.uri}/core/examples/a`)).json.name, 'after');
    } finally {
      await first.stop();
      await next?.stop();
    }
  });

  it('loads user services with --services', async () => {
    const dir = tempDir();
    const mod = join(dir, 'svc.mjs');
    writeFileSync(
      mod,
      `export const Hello = { type: 'stateless', link: '/hello', handlers: { GET: () => ({ greeting: 'hi' }) } };\n` +
        `export const Notes = { type: 'stateful', factoryLink: '/notes', documentKind: 'notes', create: ({ body }) => ({ text: String(body.text ?? '') }) };\n`,
    );
    const h = await startHost([`--services=${mod}`]);
    try {
      assert.deepEqual((await http('GET', `${h.uri}/hello`)).json, { greeting: 'hi' });
      const n = await http('POST', `${h.uri}/notes`, { text: 'x', documentSelfLink: 'n1' });
      assert.equal(n.status, 200);
      assert.equal(n.json.documentKind, 'notes');
      assert.equal((await http('PATCH', `${h.uri}/notes/n1`, { text: 'y' })).status, 405);
    } finally {
      await h.stop();
    }
    const bad = cli(['host', '--port=0', `--sandbox=${tempDir()}`, `--services=${join(dir, 'missing.mjs')}`]);
    assert.notEqual(bad.status, 0);
  });
});
