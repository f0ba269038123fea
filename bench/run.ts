/**
 * `npm run bench`: krypton's benchmarks. Every figure is printed next to a baseline measured in the
 * same run on the same machine (these machines are shared and noisy), as a ratio.
 * BENCH_SCALE=0.1 shrinks every document count (for a quick look); BENCH_ONLY=name runs one section;
 * BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' passes node flags to every host the benchmark starts.
 */
import { writeFileSync, mkdtempSync, existsSync, rmSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { indexFields } from '../src/query/field-indexer.js';
import { ab, CLI, closePools, cpuMicros, fmt, freePort, loadExamples, request, startHost, type BenchHost } from './support.js';

const SCALE = Number(process.env['BENCH_SCALE'] ?? 1);
const ONLY = process.env['BENCH_ONLY'];
const n = (count: number) => Math.max(1000, Math.round(count * SCALE));
const results: Record<string, unknown> = {};
/** The middle value (the upper one of an even count). */
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function report(section: string, lines: Record<string, string | number>): void {
  results[section] = lines;
  console.log(`\n## ${section}`);
  for (const [k, v] of Object.entries(lines)) console.log(`  ${k.padEnd(52)} ${typeof v === 'number' ? fmt(v, v < 10 ? 2 : 0) : v}`);
}

/**
 * The seeds' load (ab -c 5, no keep-alive) against krypton and against a bare node:http server.
 * Both get the same requests in the same order. The first round after start is reported apart
 * ("cold"): V8 is still compiling krypton's request path then (measured: 365 functions optimized
 * in the first 5,000 requests, 84 in the next 5,000, 11 after), while the bare server's few
 * functions are optimized within the warm-up. The goal is checked on the eleven rounds after it:
 * each round runs bare and krypton back to back (bare first in even rounds, krypton first in odd
 * ones) so that a slow minute of this shared machine hits both, and the goal is the median of the
 * per-round ratios.
 */
async function benchPost(): Promise<void> {
  const requests = n(20_000);
  // Eleven: one round of this shared machine moves by up to ±25%, and the median of seven still
  // moved by ±0.06 from one run to the next.
  const rounds = 11;
  const bodyDir = mkdtempSync(join(tmpdir(), 'kb-'));
  const body = join(bodyDir, 'example.json');
  writeFileSync(body, '{"name": "example-1", "counter": 1}\n');
  const port = await freePort();
  const bare = spawn(process.execPath, [join(import.meta.dirname, 'bare-server.mjs'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => bare.stdout!.once('data', r));
  const host = await startHost();
  try {
    const bareUrl = `http://127.0.0.1:${port}/core/examples`;
    const kryptonUrl = `${host.uri}/core/examples`;
    ab(bareUrl, body, 2000, 5); // warm-up
    ab(kryptonUrl, body, 2000, 5);
    const cold = { bare: ab(bareUrl, body, requests, 5), krypton: ab(kryptonUrl, body, requests, 5) };
    const warm: Array<{ bare: number; krypton: number }> = [];
    // CPU per request of each server in each round: a figure the machine's noise moves less than req/s.
    const cpu: Record<'bare' | 'krypton', Array<{ main: number; all: number }>> = { bare: [], krypton: [] };
    const measured = (name: 'bare' | 'krypton', pid: number, url: string): number => {
      const before = cpuMicros(pid);
      const rps = ab(url, body, requests, 5);
      const after = cpuMicros(pid);
      if (before && after) cpu[name].push({ main: (after.main - before.main) / requests, all: (after.all - before.all) / requests });
      return rps;
    };
    for (let r = 0; r < rounds; r++) {
      // Each round pairs one bare run with one krypton run; which goes first alternates, so neither
      // always runs right after the other (its sockets closing, its writes being flushed).
      if (r % 2 === 0) {
        const b = measured('bare', bare.pid!, bareUrl);
        warm.push({ bare: b, krypton: measured('krypton', host.proc.pid!, kryptonUrl) });
      } else {
        const k = measured('krypton', host.proc.pid!, kryptonUrl);
        warm.push({ bare: measured('bare', bare.pid!, bareUrl), krypton: k });
      }
    }
    // Clients that keep connections alive (ab -k): reported, not the goal (the seeds' load has none).
    const kept = { bare: ab(bareUrl, body, requests, 5, true), krypton: ab(kryptonUrl, body, requests, 5, true) };
    const ratios = warm.map((w) => w.krypton / w.bare);
    const mid = median(ratios);
    const list = (xs: number[], digits = 0) => xs.map((x) => fmt(x, digits)).join(' / ');
    const cpuRows: Record<string, string | number> = {};
    if (cpu.bare.length === rounds && cpu.krypton.length === rounds) {
      const main = { bare: median(cpu.bare.map((c) => c.main)), krypton: median(cpu.krypton.map((c) => c.main)) };
      cpuRows['warm rounds: main-thread CPU a request, bare / krypton (µs, median)'] = list([main.bare, main.krypton], 1);
      cpuRows["warm rounds: all threads' CPU a request, bare / krypton (µs, median)"] = list([median(cpu.bare.map((c) => c.all)), median(cpu.krypton.map((c) => c.all))], 1);
      cpuRows['main-thread CPU ratio bare / krypton (reported: req/s if each were bound by its main thread)'] = main.bare / main.krypton;
    }
    report(`POST /core/examples, ab -c 5 -n ${requests} (no keep-alive)`, {
      'cold round: bare / krypton (req/s)': list([cold.bare, cold.krypton]),
      'cold round: ratio (reported, not the goal)': cold.krypton / cold.bare,
      [`warm rounds: bare (req/s, ${rounds} rounds)`]: list(warm.map((w) => w.bare)),
      'warm rounds: krypton, durable writes (req/s)': list(warm.map((w) => w.krypton)),
      'warm rounds: ratio krypton / bare, each': list(ratios, 2),
      'ratio krypton / bare, median (goal >= 0.70)': mid,
      ...cpuRows,
      'keep-alive round (ab -k): bare / krypton (req/s)': list([kept.bare, kept.krypton]),
      'keep-alive round: ratio (reported, not the goal)': kept.krypton / kept.bare,
      'krypton peak RSS (MB)': host.peakRssMb(),
    });
  } finally {
    bare.kill('SIGTERM');
    await host.stop();
    rmSync(bodyDir, { recursive: true, force: true });
  }
}

/** Query latency and paged scan over 100,000 documents. */
async function benchQueries(): Promise<void> {
  const count = n(100_000);
  const host = await startHost();
  try {
    await loadExamples(host.uri, count);
    const target = `doc-${Math.floor(count / 2)}`;
    const time = async (fn: () => Promise<unknown>, reps: number) => {
      const t: number[] = [];
      for (let i = 0; i < reps; i++) {
        const s = performance.now();
        await fn();
        t.push(performance.now() - s);
      }
      return median(t);
    };
    const getMs = await time(() => request(`${host.uri}/core/examples/${target}`, 'GET'), 300);
    const insideIndex: number[] = [];
    const queryMs = await time(async () => {
      const r = await request(`${host.uri}/core/query-tasks`, 'POST', { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: target } } } });
      if (r.results.documentLinks.length !== 1) throw new Error(`query found ${r.results.documentLinks.length}`);
      insideIndex.push(r.results.queryTimeMicros);
    }, 300);
    // Paged scan of every document, expanded, 10,000 per page.
    const scanStart = performance.now();
    const first = await request(`${host.uri}/core/query-tasks`, 'POST', {
      taskInfo: { isDirect: true },
      querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, options: ['EXPAND_CONTENT'], resultLimit: 10_000 },
    });
    let next: string | undefined = first.results.nextPageLink;
    let scanned = 0;
    while (next) {
      const page = await request(`${host.uri}${next}`, 'GET');
      scanned += page.results.documentLinks.length;
      next = page.results.nextPageLink;
    }
    const scanSeconds = (performance.now() - scanStart) / 1000;
    if (scanned !== count) throw new Error(`scan returned ${scanned} of ${count}`);
    // Baseline: the same rows read straight from SQLite in this process.
    const db = new Database(join(host.sandbox, 'index.sqlite'), { readonly: true });
    const rawStart = performance.now();
    let rawRows = 0;
    for (const row of db.prepare('SELECT json FROM docs WHERE latest = 1').iterate()) rawRows += (row as { json: string }).json.length > 0 ? 1 : 0;
    const rawSeconds = (performance.now() - rawStart) / 1000;
    db.close();
    report(`queries over ${fmt(count)} documents`, {
      'GET one document by link, median (ms) [baseline]': getMs,
      'direct term query on name, median round trip (ms)': queryMs,
      'ratio query / GET': queryMs / getMs,
      'term query time inside the index, median (queryTimeMicros)': median(insideIndex),
      'paged scan, EXPAND_CONTENT, 10,000/page (docs/s)': scanned / scanSeconds,
      'raw SQLite read of the same rows in-process (docs/s)': rawRows / rawSeconds,
      'ratio scan / raw read': scanned / scanSeconds / (rawRows / rawSeconds),
    });
  } finally {
    await host.stop();
  }
}

/** Raw copy limit: read every row of one sandbox's index and insert it into another, one process. */
async function rawCopy(sourceSandbox: string): Promise<{ docs: number; seconds: number }> {
  const src = new Database(join(sourceSandbox, 'index.sqlite'), { readonly: true });
  const dir = mkdtempSync(join(tmpdir(), 'kb-raw-'));
  const dst = SqliteStore.open(dir, { writer: 'sync' });
  const started = performance.now();
  let count = 0;
  let batch: Array<Record<string, unknown>> = [];
  const flush = () => {
    dst.transaction(() => {
      for (const r of batch) {
        const doc = JSON.parse(r['json'] as string);
        dst.write(
          {
            link: r['link'] as string,
            factory: r['factory'] as string,
            version: r['version'] as number,
            kind: r['kind'] as string,
            updateTime: r['update_time'] as number,
            action: r['action'] as string,
            expiration: 0,
            owner: 'raw',
            authPrincipal: null,
            json: JSON.stringify(doc),
          },
          indexFields(doc),
        );
      }
    });
    count += batch.length;
    batch = [];
  };
  for (const row of src.prepare('SELECT * FROM docs WHERE latest = 1').iterate()) {
    batch.push(row as Record<string, unknown>);
    if (batch.length === 10_000) flush();
  }
  flush();
  const seconds = (performance.now() - started) / 1000;
  src.close();
  await dst.close();
  rmSync(dir, { recursive: true, force: true });
  return { docs: count, seconds };
}

/** A migration's figures: its wall time, and the time and documents after its first tenth (the rest of the run, past its cold start). */
async function migrate(blue: BenchHost, green: BenchHost, count: number): Promise<{ seconds: number; afterFirstTenth: { seconds: number; docs: number }; peakBlue: number; peakGreen: number }> {
  const started = performance.now();
  let tenth: { at: number; docs: number } | undefined;
  const task = await request(`${green.uri}/management/migration-tasks`, 'POST', {
    sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
    destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
    sourceFactoryLink: '/core/examples',
    destinationFactoryLink: '/core/examples',
  });
  for (;;) {
    const t = await request(`${green.uri}${task.documentSelfLink}`, 'GET');
    if (t.taskInfo.stage === 'FAILED') throw new Error(JSON.stringify(t.taskInfo));
    if (t.taskInfo.stage === 'FINISHED') {
      if (t.progress.processedServiceCount !== count) throw new Error(`migrated ${t.progress.processedServiceCount} of ${count}`);
      break;
    }
    if (!tenth && t.progress.processedServiceCount >= count / 10) tenth = { at: performance.now(), docs: t.progress.processedServiceCount };
    await new Promise((r) => setTimeout(r, 25));
  }
  const ended = performance.now();
  const from = tenth ?? { at: started, docs: 0 };
  return { seconds: (ended - started) / 1000, afterFirstTenth: { seconds: (ended - from.at) / 1000, docs: count - from.docs }, peakBlue: blue.peakRssMb(), peakGreen: green.peakRssMb() };
}

/**
 * Migration between two hosts vs the raw copy limit; then 1,000,000 documents for memory. The
 * 100,000-document migration runs three times, each between two fresh hosts (green starts cold, as
 * in an upgrade): the goal is checked on the median, as the POST goal is on the median of its rounds,
 * because one run on this shared machine moves by ±10% from one minute to the next.
 */
async function benchMigration(): Promise<void> {
  const sizes = [n(100_000), n(1_000_000)];
  const rows: Record<string, string | number> = {};
  for (const count of sizes) {
    const first = count === sizes[0];
    const runs: Awaited<ReturnType<typeof migrate>>[] = [];
    const after: Record<string, string | number> = {};
    for (let run = 0; run < (first ? 3 : 1); run++) {
      const [blue, green] = await Promise.all([startHost(), startHost()]);
      try {
        await loadExamples(blue.uri, count);
        blue.resetPeakRss(); // the peak while serving the migration, not while the benchmark loaded it
        runs.push(await migrate(blue, green, count));
        if (!first) {
          green.resetPeakRss();
          const started = performance.now();
          const listing = await request(`${green.uri}/core/examples`, 'GET');
          if (listing.documentCount !== count) throw new Error(`listing returned ${listing.documentCount}`);
          after[`${fmt(count)} docs: plain factory listing, one GET (s)`] = (performance.now() - started) / 1000;
          after[`${fmt(count)} docs: green peak RSS while listing (MB)`] = green.peakRssMb();
        }
        if (first && run === 0) {
          const raw = await rawCopy(blue.sandbox);
          after[`${fmt(count)} docs: raw index copy, one process, no HTTP (docs/s) [baseline]`] = raw.docs / raw.seconds;
          after[`${fmt(count)} docs: ratio raw / first migration (reported, not a goal: DECISIONS)`] = raw.docs / raw.seconds / (count / runs[0]!.seconds);
        }
      } finally {
        await Promise.all([blue.stop(), green.stop()]);
      }
    }
    const rates = runs.map((m) => count / m.seconds);
    if (runs.length > 1) rows[`${fmt(count)} docs: end-to-end migration, each run (docs/s)`] = rates.map((r) => fmt(r)).join(' / ');
    rows[`${fmt(count)} docs: end-to-end migration${runs.length > 1 ? ', median' : ''} (docs/s; goal >= 40,000)`] = median(rates);
    rows[`${fmt(count)} docs: rate past the first tenth${runs.length > 1 ? ', median' : ''} (docs/s; reported: the start runs cold)`] = median(
      runs.map((m) => m.afterFirstTenth.docs / m.afterFirstTenth.seconds),
    );
    rows[`${fmt(count)} docs: peak RSS blue / green${runs.length > 1 ? ', highest of the runs' : ''} (MB; goal <= 300)`] =
      `${Math.max(...runs.map((m) => m.peakBlue))} / ${Math.max(...runs.map((m) => m.peakGreen))}`;
    Object.assign(rows, after);
  }
  report('migration task between two hosts', rows);
}

/** A duration printed by `krypton cutover` ("12 ms", "3.4 s") in milliseconds. */
function printedMs(text: string, pattern: RegExp): number {
  const m = pattern.exec(text);
  if (!m) throw new Error(`no ${pattern} in:\n${text}`);
  return m[2] === 's' ? Number(m[1]) * 1000 : Number(m[1]);
}

/**
 * `krypton cutover` of 100,000 documents while ab writes to blue: a continuous task has copied
 * the factory (its first run, a full copy, is the baseline), then the command freezes blue, runs
 * the final delta from the task's checkpoint and verifies every document id and update time. The
 * figure is how long blue refuses writes before green is verified, against the full copy's time.
 */
async function benchCutover(): Promise<void> {
  const count = n(100_000);
  const [blue, green] = await Promise.all([startHost(), startHost()]);
  const body = join(mkdtempSync(join(tmpdir(), 'kb-')), 'example.json');
  writeFileSync(body, '{"name": "example-1", "counter": 1}\n');
  try {
    await loadExamples(blue.uri, count);
    const started = performance.now();
    const task = await request(`${green.uri}/management/migration-tasks`, 'POST', {
      sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
      destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
      sourceFactoryLink: '/core/examples',
      destinationFactoryLink: '/core/examples',
      continuousMigration: true,
      maintenanceIntervalMicros: 1_000_000,
      querySpec: { options: ['INCLUDE_DELETED'] },
    });
    for (;;) {
      const t = await request(`${green.uri}${task.documentSelfLink}`, 'GET');
      if (t.taskInfo.stage === 'FAILED') throw new Error(JSON.stringify(t.taskInfo));
      if (t.taskInfo.stage === 'FINISHED') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const fullCopyMs = performance.now() - started;
    // Clients keep writing to blue (the seeds' ab load) until the freeze refuses them.
    const writer = spawn('ab', ['-q', '-r', '-p', body, '-T', 'application/json', '-c', '5', '-n', '1000000', `${blue.uri}/core/examples`], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 3000));
    const out = execFileSync(
      process.execPath,
      [CLI, 'cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', `--task=${task.documentSelfLink}`, '--pollMillis=50'],
      { encoding: 'utf8' },
    );
    writer.kill();
    const window = printedMs(out, /writes were refused for ([\d.]+) (m?s)/);
    const verified = /3\/4 verify \(digest\): (\d+) documents/.exec(out)?.[1];
    const rolledBack = performance.now();
    execFileSync(process.execPath, [CLI, 'cutover', '--rollback', `--source=${blue.uri}`], { encoding: 'utf8' });
    report(`krypton cutover of ${fmt(count)} documents under ab write load`, {
      'full copy: first run of the continuous task (s) [baseline]': fullCopyMs / 1000,
      'documents verified equal on blue and green': Number(verified),
      'freeze, writes in flight drained (ms)': printedMs(out, /1\/4 freeze[^\n]*\((\d+(?:\.\d+)?) (m?s)\)\n/),
      'final delta from the checkpoint (ms)': printedMs(out, /2\/4 final delta: [^\n]*\((\d+(?:\.\d+)?) (m?s)\)\n/),
      'verification, digests of both sides (ms)': printedMs(out, /3\/4 verify[^\n]*\((\d+(?:\.\d+)?) (m?s)\)\n/),
      'writes refused, freeze to verified (s)': window / 1000,
      'ratio window / full copy': window / fullCopyMs,
      'rollback command, process start included (ms)': performance.now() - rolledBack,
    });
  } finally {
    await Promise.all([blue.stop(), green.stop()]);
  }
}

async function benchCluster(): Promise<void> {
  const path = join(import.meta.dirname, 'cluster-bench.ts');
  if (!existsSync(path)) return;
  const mod = (await import(path)) as { runClusterBench: () => Promise<Record<string, string | number>> };
  report('node groups', await mod.runClusterBench());
}

const sections: Record<string, () => Promise<void>> = { post: benchPost, queries: benchQueries, migration: benchMigration, cutover: benchCutover, cluster: benchCluster };
for (const [name, fn] of Object.entries(sections)) {
  if (ONLY && ONLY !== name) continue;
  try {
    await fn();
  } catch (err) {
    console.error(`\n## ${name}: FAILED\n${(err as Error).stack}`);
    process.exitCode = 1;
  }
}
await closePools();
writeFileSync(join(tmpdir(), 'krypton-bench-results.json'), JSON.stringify(results, null, 2));
