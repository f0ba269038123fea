import { startHost, loadExamples, request, closePools } from './support.ts';
const count = Number(process.env.N ?? 100000);
const prof = process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof/mp'] : [];
// startHost spawns node CLI; inject profiling via NODE_OPTIONS
if (prof.length) process.env.BENCH_NODE_ARGS = prof.join(' ');
const [blue, green] = await Promise.all([startHost(), startHost()]);
delete process.env.BENCH_NODE_ARGS;
await loadExamples(blue.uri, count);
blue.resetPeakRss();
const cpu = (pid: number) => { const fs = require('node:fs'); return fs.readdirSync(`/proc/${pid}/task`).map((t: string) => { const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').split(') ')[1].split(' '); return [t, Number(s[11]) + Number(s[12])]; }); };
import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);
const b0 = cpu(blue.proc.pid!), g0 = cpu(green.proc.pid!);
const s = performance.now();
const task = await request(`${green.uri}/management/migration-tasks`, 'POST', { sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`, destinationNodeGroupReference: `${green.uri}/core/node-groups/default`, sourceFactoryLink: '/core/examples', destinationFactoryLink: '/core/examples' });
for (;;) { const t = await request(`${green.uri}${task.documentSelfLink}`, 'GET'); if (t.taskInfo.stage === 'FAILED') throw new Error(JSON.stringify(t.taskInfo)); if (t.taskInfo.stage === 'FINISHED') break; await new Promise((r) => setTimeout(r, 25)); }
const secs = (performance.now() - s) / 1000;
const b1 = cpu(blue.proc.pid!), g1 = cpu(green.proc.pid!);
const d = (a: any[], b: any[]) => b.map(([t, v]: any, i: number) => `${t}:${((v - (a.find((x: any) => x[0] === t)?.[1] ?? 0)) * 10000 / count).toFixed(1)}`).filter((x: string) => !x.endsWith(':0.0')).join(' ');
console.log(`${count} docs ${secs.toFixed(2)}s ${(count / secs).toFixed(0)} docs/s; peak blue ${blue.peakRssMb()} green ${green.peakRssMb()} MB`);
console.log('blue us/doc by thread', d(b0, b1)); console.log('green us/doc by thread', d(g0, g1));
await Promise.all([blue.stop(), green.stop()]); await closePools();
