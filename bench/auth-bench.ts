/**
 * What auth costs (docs/auth.md, "Measured"). Starts real hosts — auth off, auth on — and compares,
 * in the same run: a document GET, a 10,000-document listing, a login, and token verification.
 * Run: npm run build && node --import tsx bench/auth-bench.ts
 */
import { Pool } from 'undici';
import { startHost, type RunningHost } from '../test/support/hosts.js';
import { ADMIN, ADMIN_PASSWORD, AUTH_ARGS, as, createAs, createUser, grant, login, q } from '../test/support/auth.js';
import { TokenSigner } from '../src/auth/auth-token.js';

const DOCS = 10_000;

async function timeRequests(pool: Pool, path: string, headers: Record<string, string>, n: number, concurrency = 16): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) {
        const r = await pool.request({ method: 'GET', path, headers });
        await r.body.text();
        if (r.statusCode !== 200) throw new Error(`${path} answered ${r.statusCode}`);
      }
    }),
  );
  return (performance.now() - t0) / n;
}

async function main(): Promise<void> {
  const off = await startHost([]);
  const on = await startHost(AUTH_ARGS);
  const hosts: RunningHost[] = [off, on];
  try {
    const admin = await login(on.uri, ADMIN, ADMIN_PASSWORD);
    const reader = await createUser(on.uri, admin, 'reader@bench', 'reader-pw');
    await grant(on.uri, admin, 'reader', { userLinks: [reader], query: q.any(q.prefix('/core/examples/d-1')), verbs: ['GET'] });
    const readerToken = await login(on.uri, 'reader@bench', 'reader-pw');
    await Promise.all([createAs(off.uri, admin, DOCS, 'd', '/core/examples', 32), createAs(on.uri, admin, DOCS, 'd', '/core/examples', 32)]);
    const poolOff = new Pool(off.uri, { connections: 16 });
    const poolOn = new Pool(on.uri, { connections: 16 });
    const rows: Array<[string, number, number, number]> = [];
    for (let round = 0; round < 2; round++) {
      const get = [
        await timeRequests(poolOff, '/core/examples/d-1', {}, 5000),
        await timeRequests(poolOn, '/core/examples/d-1', as(admin), 5000),
        await timeRequests(poolOn, '/core/examples/d-1', as(readerToken), 5000),
      ];
      const list = [
        await timeRequests(poolOff, '/core/examples', {}, 40, 4),
        await timeRequests(poolOn, '/core/examples', as(admin), 40, 4),
        await timeRequests(poolOn, '/core/examples', as(readerToken), 40, 4),
      ];
      if (round === 1)
        rows.push(['GET one document (ms/request, 16 in flight)', ...get] as [string, number, number, number], [`GET listing of ${DOCS} documents (ms)`, ...list] as [string, number, number, number]);
    }
    const logins: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await login(on.uri, 'reader@bench', 'reader-pw');
      logins.push(performance.now() - t0);
    }
    logins.sort((a, b) => a - b);
    const signer = new TokenSigner(new TextEncoder().encode('x'.repeat(64)), () => Date.now() * 1000);
    const token = signer.sign('/core/authz/users/a@b', Math.floor(Date.now() / 1000) + 3600);
    const n = 5000;
    let t0 = performance.now();
    for (let i = 0; i < n; i++) await signer.verify(token);
    const verifyUs = ((performance.now() - t0) * 1000) / n;
    t0 = performance.now();
    for (let i = 0; i < n; i++) signer.sign('/core/authz/users/a@b', 2_000_000_000);
    const signUs = ((performance.now() - t0) * 1000) / n;
    console.log('\n| measure | auth off | auth on, admin (wildcard) | auth on, reader (1 prefix) | ratio admin/off |');
    console.log('|---|---|---|---|---|');
    for (const [name, a, b, c] of rows) console.log(`| ${name} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${c.toFixed(3)} | ${(b / a).toFixed(2)} |`);
    console.log(`\nlogin (scrypt N=2^15): median ${logins[5]!.toFixed(0)} ms, min ${logins[0]!.toFixed(0)} ms`);
    console.log(`token verification without cache (jose, HS256): ${verifyUs.toFixed(1)} µs; signing: ${signUs.toFixed(1)} µs; a cached token costs a Map lookup`);
    await Promise.all([poolOff.close(), poolOn.close()]);
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
  }
}

await main();
