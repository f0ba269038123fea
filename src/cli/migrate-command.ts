import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { type ClientResponse, HttpClient } from '../core/http-client.js';
import type { Doc } from '../core/document.js';
import { parseFlags, UsageError, usage, type FlagSpec } from './flags.js';
import { watchCtrlC } from './ctrl-c.js';

export const MIGRATE_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  source: { type: 'string', help: 'source (blue) host URI, e.g. http://localhost:8000' },
  destination: { type: 'string', help: 'destination (green) host URI; the task runs there' },
  factory: { type: 'string', help: 'source factory link, e.g. /core/examples' },
  to: { type: 'string', help: 'destination factory link (default: --factory)' },
  transform: { type: 'string', help: 'transformation service link on the destination' },
  transformRequest: { type: 'bool', help: 'use the TransformRequest contract (USE_TRANSFORM_REQUEST)' },
  query: { type: 'string', help: 'file with a querySpec (JSON) selecting what to migrate' },
  continuous: { type: 'bool', help: 're-run every --interval until interrupted (Ctrl-C cancels the task)' },
  interval: { type: 'int', help: 'continuous interval in microseconds (default 60000000)' },
  allVersions: { type: 'bool', help: 'migrate every retained version (ALL_VERSIONS)' },
  'all-versions': { type: 'bool', help: 'same as --allVersions' },
  estimate: { type: 'bool', help: 'count the source first for a progress total (ESTIMATE_COUNT; default true)' },
  token: { type: 'string', help: 'x-xenon-auth-token to use on the destination (auth on)' },
  pollMillis: { type: 'int', help: 'progress poll period in ms (default 500)' },
});

export function migrateUsage(): string {
  return `usage: krypton migrate --source=URI --destination=URI --factory=LINK [--name=value ...]\n\n${usage(MIGRATE_FLAGS)}`;
}

export interface TaskDoc extends Doc {
  taskInfo: { stage: string; failure?: { message?: string } };
  progress?: { processedServiceCount: number; skippedServiceCount: number; deletedDocumentCount?: number; estimatedTotalServiceCount: number; fetchedDocumentCount: number; runCount: number };
}

export function buildTask(f: Record<string, unknown>): Doc {
  const source = String(f['source']).replace(/\/$/, '');
  const destination = String(f['destination']).replace(/\/$/, '');
  const options: string[] = [];
  if (f['allVersions'] || f['all-versions']) options.push('ALL_VERSIONS');
  if (f['estimate'] !== false) options.push('ESTIMATE_COUNT');
  if (f['transformRequest']) options.push('USE_TRANSFORM_REQUEST');
  const task: Doc = {
    sourceNodeGroupReference: `${source}/core/node-groups/default`,
    destinationNodeGroupReference: `${destination}/core/node-groups/default`,
    sourceFactoryLink: f['factory'],
    destinationFactoryLink: f['to'] ?? f['factory'],
    continuousMigration: f['continuous'] === true,
    migrationOptions: options,
  };
  if (f['interval']) task['maintenanceIntervalMicros'] = f['interval'];
  if (f['transform']) task['transformationServiceLink'] = f['transform'];
  if (f['query']) {
    try {
      task['querySpec'] = JSON.parse(readFileSync(String(f['query']), 'utf8'));
    } catch (err) {
      throw new UsageError(`--query=${String(f['query'])}: ${(err as Error).message}`);
    }
  }
  return task;
}

/**
 * `krypton migrate`: posts a migration task to the destination, follows it with a progress bar
 * (plain lines when not on a terminal), exits 0 when FINISHED, 1 with the failure message.
 */
export async function runMigrate(args: readonly string[]): Promise<number> {
  const f = parseFlags(args, MIGRATE_FLAGS);
  for (const req of ['source', 'destination', 'factory']) if (!f[req]) throw new UsageError(`--${req} is required\n\n${migrateUsage()}`);
  const destination = String(f['destination']).replace(/\/$/, '');
  const client = new HttpClient(2);
  const headers: Record<string, string> = f['token'] ? { 'x-xenon-auth-token': String(f['token']) } : {};
  // Ctrl-C from here on cancels the task, even while it is being created (it is cancelled as soon
  // as its link is known), so an interrupted CLI never leaves a task running on the destination.
  const ctrlC = watchCtrlC();
  let created: ClientResponse<TaskDoc>;
  try {
    created = await client.send<TaskDoc>(`${destination}/management/migration-tasks`, { method: 'POST', body: buildTask(f), headers });
  } catch (err) {
    ctrlC.settle();
    await client.close();
    throw err;
  }
  const link = created.body['documentSelfLink'] as string;
  process.stdout.write(`migration task ${destination}${link}\n`);
  try {
    const { outcome } = await followTask(client, `${destination}${link}`, headers, {
      continuous: f['continuous'] === true,
      pollMillis: Number(f['pollMillis'] ?? 500),
      cancelled: () => ctrlC.pressed,
    });
    return outcome === 'FINISHED' ? 0 : outcome === 'CANCELLED' && ctrlC.pressed ? 130 : 1;
  } finally {
    ctrlC.settle();
    await client.close();
  }
}

export interface FollowOptions {
  /** Follow until cancelled (a continuous task never ends by itself). */
  continuous: boolean;
  pollMillis: number;
  /** Polled each round: true cancels the task (PATCH CANCELLED) and ends the follow. */
  cancelled: () => boolean;
  /** Where progress goes (default stdout); failures go to stderr. */
  out?: NodeJS.WriteStream;
}

/**
 * Follows a migration task with a progress bar (processed / estimated total, documents per second,
 * ETA), or plain progress lines when not on a terminal, until it ends (or is cancelled). Prints
 * the outcome and returns it with the task's last state.
 */
export async function followTask(client: HttpClient, taskUri: string, headers: Record<string, string>, o: FollowOptions): Promise<{ outcome: 'FINISHED' | 'FAILED' | 'CANCELLED'; task: TaskDoc }> {
  const out = o.out ?? process.stdout;
  const tty = out.isTTY === true;
  // Totals and ETA are shown only once the estimate is known ('?' before): the bar's own ETA is
  // 'NFs' at a zero rate and its total a placeholder.
  const bar = tty
    ? new cliProgress.SingleBar({ stream: out, format: ' {bar} {percentage}% | {value}/{totalText} docs | {rate} docs/s | ETA {etaText} | {stage}' }, cliProgress.Presets.shades_classic)
    : undefined;
  const started = Date.now();
  let barStarted = false;
  let lastLine = 0;
  const reachable = new Reachability(out);
  for (;;) {
    const task = await reachable.poll(() => client.send<TaskDoc>(taskUri, { method: 'GET', headers }));
    if (!task) {
      await new Promise((r) => setTimeout(r, o.pollMillis));
      continue;
    }
    const p = task.progress;
    const done = (p?.processedServiceCount ?? 0) + (p?.skippedServiceCount ?? 0);
    const known = p !== undefined && p.estimatedTotalServiceCount > 0;
    const total = known ? Math.max(p.estimatedTotalServiceCount, done) : Math.max(done, 1);
    const rate = Math.round(done / Math.max((Date.now() - started) / 1000, 0.001));
    const payload = { rate, stage: task.taskInfo.stage, totalText: known ? String(total) : '?', etaText: known && rate > 0 ? formatSeconds((total - done) / rate) : '?' };
    if (bar) {
      if (!barStarted) bar.start(total, done, payload);
      barStarted = true;
      bar.setTotal(total);
      bar.update(done, payload);
    } else if (Date.now() - lastLine > 1000 || ['FINISHED', 'FAILED'].includes(task.taskInfo.stage)) {
      lastLine = Date.now();
      out.write(`stage=${task.taskInfo.stage} processed=${p?.processedServiceCount ?? 0} skipped=${p?.skippedServiceCount ?? 0} total=${p?.estimatedTotalServiceCount ?? -1} rate=${rate}/s\n`);
    }
    if (o.cancelled()) {
      await client.send(taskUri, { method: 'PATCH', body: { taskInfo: { stage: 'CANCELLED' } }, headers });
      bar?.stop();
      out.write('migration cancelled\n');
      return { outcome: 'CANCELLED', task };
    }
    if (!o.continuous && task.taskInfo.stage === 'FINISHED') {
      bar?.stop();
      out.write(`FINISHED: migrated ${p?.processedServiceCount ?? 0}, skipped ${p?.skippedServiceCount ?? 0} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      return { outcome: 'FINISHED', task };
    }
    // A cancelled task (by someone else) never runs again, not even a continuous one.
    if (task.taskInfo.stage === 'CANCELLED' || (!o.continuous && task.taskInfo.stage === 'FAILED')) {
      bar?.stop();
      process.stderr.write(`${task.taskInfo.stage}: ${task.taskInfo.failure?.message ?? (task.taskInfo.stage === 'CANCELLED' ? 'the task was cancelled' : 'unknown error')}\n`);
      return { outcome: task.taskInfo.stage, task };
    }
    await new Promise((r) => setTimeout(r, o.pollMillis));
  }
}

function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  return t >= 3600 ? `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m` : t >= 60 ? `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s` : `${t}s`;
}

/** How long the destination may be unreachable (restarting: the task resumes there) before the CLI gives up. */
const UNREACHABLE_LIMIT_MS = 120_000;

/**
 * Polls the task through a destination that may restart: an unreachable host or a 5xx is retried
 * (one line says so) for up to UNREACHABLE_LIMIT_MS; a 4xx, or a longer outage, ends the CLI.
 */
class Reachability {
  private since: number | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  async poll(get: () => Promise<ClientResponse<TaskDoc>>): Promise<TaskDoc | undefined> {
    try {
      const task = (await get()).body;
      if (this.since !== undefined) this.out.write('destination reachable again\n');
      this.since = undefined;
      return task;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      if (status < 500 && status !== 408) throw err;
      const now = Date.now();
      if (this.since === undefined) {
        this.since = now;
        this.out.write(`destination unreachable (${(err as Error).message}); retrying for up to ${UNREACHABLE_LIMIT_MS / 1000} s\n`);
      }
      if (now - this.since > UNREACHABLE_LIMIT_MS) throw err;
      return undefined;
    }
  }
}
