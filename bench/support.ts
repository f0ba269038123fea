import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import { freePort } from '../test/support/hosts.js';

export { freePort };

export const ROOT = resolve(import.meta.dirname, '..');
export const CLI = join(ROOT, 'dist', 'cli', 'krypton.js');

export interface BenchHost {
  uri: string;
  port: number;
  proc: ChildProcess;
  sandbox: string;
  stop(): Promise<void>;
  /** Peak resident set size (VmHWM) in MB, from /proc. */
  peakRssMb(): number;
  /** Resets the peak (clear_refs 5), to measure one phase. */
  resetPeakRss(): void;
}

/** BENCH_NODE_ARGS: node flags for the host; BENCH_CLI: another build's dist/cli/krypton.js (an A/B of two builds). */
export async function startHost(args: string[] = []): Promise<BenchHost> {
  const port = await freePort();
  const sandbox = mkdtempSync(join(tmpdir(), 'krypton-bench-'));
  const proc = spawn(
    process.execPath,
    [...(process.env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? []), process.env['BENCH_CLI'] ?? CLI, 'host', `--port=${port}`, `--sandbox=${sandbox}`, '--logLevel=warn', ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!out.includes('krypton host ready')) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`host did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    uri: `http://127.0.0.1:${port}`,
    port,
    proc,
    sandbox,
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      rmSync(sandbox, { recursive: true, force: true });
    },
    resetPeakRss: () => writeFileSync(`/proc/${proc.pid}/clear_refs`, '5'),
    peakRssMb: () => {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      return Math.round(kb / 1024);
    },
  };
}

const pools = new Map<string, Pool>();
export async function request(url: string, method: string, body?: unknown): Promise<any> {
  const u = new URL(url);
  let pool = pools.get(u.origin);
  if (!pool) {
    pool = new Pool(u.origin, { connections: 8 });
    pools.set(u.origin, pool);
  }
  const res = await pool.request({
    method: method as 'GET',
    path: u.pathname + u.search,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${url} → ${res.statusCode} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

export async function closePools(): Promise<void> {
  await Promise.all([...pools.values()].map((p) => p.close()));
  pools.clear();
}

/** Loads n example documents fast through the batched migration-import endpoint (pages of 2,000, as a migration writes them). */
export async function loadExamples(uri: string, n: number, prefix = 'doc', batch = 2_000): Promise<void> {
  const t0 = Date.now() * 1000;
  for (let start = 0; start < n; start += batch) {
    const documents = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      // The seeds' example document ({"name": "example-1", "counter": 1}), with distinct values.
      documents.push({ name: `${prefix}-${i}`, counter: i, documentSelfLink: `/${prefix}-${i}`, documentUpdateTimeMicros: t0 + i });
    }
    const res = await request(`${uri}/management/migration-import`, 'POST', { destinationFactoryLink: '/core/examples', documents });
    const failed = (res.outcomes as Array<{ result: string }>).filter((o) => o.result === 'failed').length;
    if (failed) throw new Error(`${failed} documents failed to load`);
  }
}

/** Runs Apache ab (the seeds' load tool) and returns requests per second. */
export function ab(url: string, bodyFile: string, n: number, c: number, keepAlive = false): number {
  const args = ['-q', ...(keepAlive ? ['-k'] : []), '-p', bodyFile, '-T', 'application/json', '-c', String(c), '-n', String(n), url];
  const out = execFileSync('ab', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // ab counts a response whose length differs from the first as "failed (Length)": not a failure.
  const m = /Failed requests:\s+(\d+)(?:\s*\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\))?/.exec(out);
  const failed = m ? Number(m[1]) - Number(m[4] ?? 0) : -1;
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (failed !== 0 || non2xx !== 0) throw new Error(`ab reported failures:\n${out}`);
  return Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1]);
}

/**
 * CPU time a process has used so far in µs, from /proc: its main thread's and all its threads'
 * (undefined without /proc). /proc counts in clock ticks of 1/100 s (USER_HZ) on Linux.
 */
export function cpuMicros(pid: number): { main: number; all: number } | undefined {
  const used = (path: string) => {
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime
  };
  try {
    return { main: used(`/proc/${pid}/task/${pid}/stat`), all: used(`/proc/${pid}/stat`) };
  } catch {
    return undefined;
  }
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
