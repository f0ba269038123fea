/**
 * Node-group benchmark (issue #4), called by bench/run.ts or run alone:
 *   node --import tsx bench/cluster-bench.ts            (BENCH_SCALE=0.1 for a quick look)
 * 1. POST /core/examples throughput: one host vs a 3-node group (quorum 2, every write forwarded to
 *    its owner and replicated), same client, same concurrency, measured in the same run.
 * 2. The time a new node needs to synchronize 100,000 documents from a 2-node group.
 */
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { closePools, fmt, loadExamples, request, startHost, type BenchHost } from './support.js';

const SCALE = Number(process.env['BENCH_SCALE'] ?? 1);
const scaled = (n: number) => Math.max(1000, Math.round(n * SCALE));
const GROUP = ['--groupSecret=bench-group-secret', '--gossipIntervalMicros=200000'];
const CONCURRENCY = 32;

/** POSTs n small documents spread over the given hosts, CONCURRENCY in flight; returns requests/s. */
async function postLoad(uris: string[], n: number): Promise<number> {
  const pools = uris.map((u) => new Pool(u, { connections: Math.ceil(CONCURRENCY / uris.length) }));
  const body = JSON.stringify({ name: 'example-1', counter: 1 });
  let next = 0;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, w) => {
        const pool = pools[w % pools.length]!;
        while (next < n) {
          next++;
          const res = await pool.request({ method: 'POST', path: '/core/examples', headers: { 'content-type': 'application/json' }, body });
          const text = await res.body.text();
          if (res.statusCode !== 200) throw new Error(`POST answered ${res.statusCode}: ${text.slice(0, 300)}`);
        }
      }),
    );
    return n / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function converged(hosts: BenchHost[], quorum: number): Promise<void> {
  await waitUntil(`${hosts.length} hosts to converge`, async () => {
    const states = await Promise.all(hosts.map((h) => request(`${h.uri}/core/node-groups/default`, 'GET')));
    const ok = states.every((s) => {
      const nodes = Object.values(s.nodes) as Array<{ status: string; membershipQuorum: number }>;
      return nodes.length === hosts.length && nodes.every((x) => x.status === 'AVAILABLE' && x.membershipQuorum === quorum);
    });
    return ok && new Set(states.map((s) => s.membershipUpdateTimeMicros)).size === 1;
  });
}

/** Starts hosts that join the first one, and sets the group's quorum. */
async function startGroup(n: number): Promise<BenchHost[]> {
  const first = await startHost(GROUP);
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => startHost([...GROUP, `--peerNodes=${first.uri}`])));
  const hosts = [first, ...rest];
  const quorum = Math.floor(n / 2) + 1;
  await waitUntil('members to join', async () => Object.keys((await request(`${first.uri}/core/node-groups/default`, 'GET')).nodes).length === n);
  await request(`${first.uri}/core/node-groups/default`, 'PATCH', { kind: 'com:vmware:xenon:services:common:NodeGroupService:UpdateQuorumRequest', isGroupUpdate: true, membershipQuorum: quorum });
  await converged(hosts, quorum);
  return hosts;
}

async function count(h: BenchHost): Promise<number> {
  return (await request(`${h.uri}/core/examples?$count=true`, 'GET')).totalCount as number;
}

async function benchWrites(results: Record<string, number | string>): Promise<void> {
  const n = scaled(20_000);
  const single = await startHost();
  let group: BenchHost[] = [];
  try {
    await postLoad([single.uri], 2000);
    const singleRps = await postLoad([single.uri], n);
    group = await startGroup(3);
    await postLoad(
      group.map((h) => h.uri),
      2000,
    );
    const groupRps = await postLoad(
      group.map((h) => h.uri),
      n,
    );
    // A member outside a write's quorum receives it moments after the client's answer.
    const answered = performance.now();
    let counts: number[] = [];
    await waitUntil(
      `every member to hold ${n + 2000} documents`,
      async () => {
        counts = await Promise.all(group.map(count));
        return counts.every((c) => c === n + 2000);
      },
      30_000,
    ).catch(() => {
      throw new Error(`replicas differ 30 s after the load: ${counts.join(', ')}`);
    });
    results['last member holds every write, after the last answer (ms)'] = Math.round(performance.now() - answered);
    results[`POST /core/examples, 1 host (req/s, ${n} requests, ${CONCURRENCY} in flight)`] = Math.round(singleRps);
    results['POST /core/examples, 3-node group, quorum 2 (req/s, spread over members)'] = Math.round(groupRps);
    results['ratio group / single host'] = Number((groupRps / singleRps).toFixed(2));
    results['group member peak RSS (MB)'] = Math.max(...group.map((h) => h.peakRssMb()));
  } finally {
    await Promise.all([single.stop(), ...group.map((h) => h.stop())]);
  }
}

async function benchSynchronization(results: Record<string, number | string>): Promise<void> {
  const n = scaled(100_000);
  const group = await startGroup(2);
  let joiner: BenchHost | undefined;
  try {
    const loadStarted = performance.now();
    await loadExamples(group[0]!.uri, n, 'doc', 10_000);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const started = performance.now();
    joiner = await startHost([...GROUP, `--peerNodes=${group[0]!.uri}`]);
    const ready = performance.now();
    await waitUntil(`the new node to hold ${n} documents`, async () => (await count(joiner!)) === n, 300_000);
    const seconds = (performance.now() - started) / 1000;
    let synch: { joinDurationMicros?: number } = {};
    await waitUntil('the new node to report its synchronization', async () => {
      synch = await request(`${joiner!.uri}/core/node-selectors/default/synch`, 'GET');
      return synch.joinDurationMicros !== undefined;
    });
    await converged([...group, joiner], 2);
    results[`load ${n} documents into a 2-node group via migration-import (docs/s, replicated)`] = Math.round(n / loadSeconds);
    results[`new node: start → holds all ${n} documents (s)`] = Number(seconds.toFixed(2));
    results['  of which process start to ready (s)'] = Number(((ready - started) / 1000).toFixed(2));
    results['  synchronization pass, as the node reports it (s)'] = Number(((synch.joinDurationMicros ?? 0) / 1e6).toFixed(2));
    results['  synchronized documents/s'] = Math.round(n / seconds);
    results['new node peak RSS (MB)'] = joiner.peakRssMb();
  } finally {
    await Promise.all([...group.map((h) => h.stop()), joiner?.stop()]);
  }
}

/** Runs both measurements; returns the figures (also printed by the caller or by main below). */
export async function runClusterBench(): Promise<Record<string, number | string>> {
  const results: Record<string, number | string> = {};
  try {
    await benchWrites(results);
    await benchSynchronization(results);
  } finally {
    await closePools();
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runClusterBench();
  console.log('\n## Node groups');
  for (const [k, v] of Object.entries(r)) console.log(`  ${k.padEnd(78)} ${typeof v === 'number' ? fmt(v, v < 10 ? 2 : 0) : v}`);
}
