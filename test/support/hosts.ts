import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'krypton.js');

/**
 * Directories tempDir made in this test process, removed when it exits: a run of the suite would
 * otherwise leave hundreds of sandboxes behind, gigabytes in all. KRYPTON_KEEP_TEST_DIRS=1 keeps
 * them (to look into a failure).
 */
const made: string[] = [];
process.once('exit', () => {
  if (process.env['KRYPTON_KEEP_TEST_DIRS'] === '1') return;
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'krypton-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export interface RunningHost {
  port: number;
  uri: string;
  sandbox: string;
  proc: ChildProcess;
  output: () => string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop: () => Promise<number | null>;
  /** SIGKILL (kill -9) and wait. */
  kill: () => Promise<void>;
}

/** Starts `krypton host` as a real process and waits for its ready line. */
/** `opts.execWith`: a command that runs the host's node command line (it must exec it, keeping the pid: `setpriv …`). */
export async function startHost(args: string[] = [], opts: { sandbox?: string; port?: number; timeoutMs?: number; env?: Record<string, string>; execWith?: string[] } = {}): Promise<RunningHost> {
  const port = opts.port ?? (await freePort());
  const sandbox = opts.sandbox ?? tempDir();
  const command = [...(opts.execWith ?? []), process.execPath, CLI, 'host', `--port=${port}`, `--sandbox=${sandbox}`, '--logLevel=warn', ...args];
  const proc = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) =>
    proc.once('exit', (code, signal) => {
      // A host killed by a signal it did not ask for (a native crash) says so in its output.
      if (signal && signal !== 'SIGKILL') out += `[host process ended by ${signal}]\n`;
      r(code);
    }),
  );
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (!out.includes('krypton host ready')) {
    if (proc.exitCode !== null) throw new Error(`host exited with ${proc.exitCode}: ${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`host not ready in time: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    uri: `http://127.0.0.1:${port}`,
    sandbox,
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** One HTTP request as a client would send it. */
export async function http(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** POSTs `/core/examples/after` until a host whose writes were refused takes them again; returns the stored document. */
export async function writesTakenAgain(h: RunningHost): Promise<Record<string, unknown>> {
  let last = '';
  try {
    return await waitFor(
      async () => {
        const r = await http('POST', `${h.uri}/core/examples`, { name: 'after', documentSelfLink: 'after' });
        last = `${r.status} ${r.text.slice(0, 300)}`;
        return r.status === 200 ? r.json : undefined;
      },
      'writes taken again',
      30_000,
      250,
    );
  } catch (err) {
    // The host's log without stack lines, for the reason the writes stayed refused.
    const log = h
      .output()
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('at '))
      .map((l) => l.slice(0, 400))
      .slice(-40)
      .join('\n');
    throw new Error(`${(err as Error).message}; last answer: ${last.slice(0, 200)}; host log (end):\n${log}`);
  }
}

/** Starts the `krypton` CLI (a command and its flags) as a user would; its output so far, and its exit. */
export function startCli(args: string[]): { stdout: () => string; stderr: () => string; exited: Promise<number | null>; proc: ChildProcess } {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
  return { stdout: () => stdout, stderr: () => stderr, exited, proc };
}

/** Runs the `krypton` CLI to its end; its exit code and output. */
export async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args);
  const code = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}
