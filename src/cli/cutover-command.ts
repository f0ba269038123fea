import { HttpClient } from '../core/http-client.js';
import type { Doc } from '../core/document.js';
import { parseFlags, UsageError, usage, type FlagSpec } from './flags.js';
import { watchCtrlC } from './ctrl-c.js';
import { verifyEqual, type Member } from './cutover-verify.js';
import { buildTask, followTask, MIGRATE_FLAGS, type TaskDoc } from './migrate-command.js';

export const CUTOVER_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  source: { type: 'string', help: 'source (blue) host URI: every member of its node group is frozen' },
  destination: { type: 'string', help: 'destination (green) host URI; the final delta runs there' },
  factory: { type: 'string', help: 'source factory link, e.g. /core/examples; several, comma-separated, are migrated and verified one after the other' },
  to: { type: 'string', help: 'destination factory link (default: --factory, or that of its --task); one per --factory' },
  // As for krypton migrate: the final delta is a migration task.
  transform: MIGRATE_FLAGS['transform']!,
  transformRequest: MIGRATE_FLAGS['transformRequest']!,
  query: { type: 'string', help: 'file with a querySpec (JSON) selecting what to migrate (then use --verify=none: the destination holds a subset)' },
  task: {
    type: 'string',
    help: 'link of the continuous migration task on the destination (comma-separated: one per factory): the final delta starts at its checkpoint (and the task is cancelled); without it, the delta reads every source document and skips those already migrated',
  },
  reason: { type: 'string', help: 'why writes are frozen (shown in every refused write; default: cutover to --destination)' },
  verify: {
    type: 'string',
    help: 'digest (default: every document id and update time equal), content (also every user field equal: no --transform), count, or none',
  },
  drainTimeoutMicros: { type: 'int', help: 'how long a freeze waits for writes in flight (default 30000000)' },
  rollback: { type: 'bool', help: 'undo a cutover: unfreeze every member of --source' },
  token: { type: 'string', help: 'x-xenon-auth-token (auth on; a token works on both node groups)' },
  pollMillis: { type: 'int', help: 'poll period of the final delta in ms (default 50: writes are refused meanwhile)' },
});

export function cutoverUsage(): string {
  return `usage: krypton cutover --source=URI --destination=URI --factory=LINK [--name=value ...]
       krypton cutover --rollback --source=URI

Freezes writes on every member of the source node group, runs the final delta (a migration
task), verifies that the destination holds the source's documents, and leaves the source
read-only: clients go to the destination from then on. If the delta or the verification fails,
or on Ctrl-C, the source is unfrozen again (rollback) and the exit code is 1. A second Ctrl-C
quits at once (exit 130), leaving the source frozen: --rollback unfreezes it.

${usage(CUTOVER_FLAGS)}`;
}

/** The steps of a cutover: each says when it starts, and what it did and how long it took when it ends. */
class Steps {
  /** When the first step (the freeze) began: writes are refused from then on. */
  private readonly started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream) {}

  async run<T>(name: string, step: () => Promise<T>, summary: (r: T) => string): Promise<T> {
    const t0 = Date.now();
    this.out.write(`${name} …\n`);
    const r = await step();
    this.out.write(`${name}: ${summary(r)} (${ms(Date.now() - t0)})\n`);
    return r;
  }

  elapsed(): number {
    return Date.now() - this.started;
  }
}

function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${n} ms`;
}

const base = (uri: string) => uri.replace(/\/+$/, '');

/**
 * `krypton cutover`: the maintenance window of a side-by-side upgrade in one command — write
 * freeze on blue, final delta, verification, cutover — with each step timed, and a rollback
 * (unfreeze) when a step fails or on Ctrl-C. `--rollback` unfreezes blue later.
 */
export async function runCutover(args: readonly string[]): Promise<number> {
  const f = parseFlags(args, CUTOVER_FLAGS);
  if (!f['source']) throw new UsageError(`--source is required\n\n${cutoverUsage()}`);
  if (!f['rollback']) for (const req of ['destination', 'factory']) if (!f[req]) throw new UsageError(`--${req} is required\n\n${cutoverUsage()}`);
  const verify = String(f['verify'] ?? 'digest');
  if (!['digest', 'content', 'count', 'none'].includes(verify)) throw new UsageError(`--verify must be digest, content, count or none, not ${verify}`);
  if (verify === 'content' && f['transform']) throw new UsageError('--verify=content compares the documents as they are on both sides: a --transform changes them (use --verify=digest)');
  const source = base(String(f['source']));
  const destination = base(String(f['destination'] ?? ''));
  const headers: Record<string, string> = f['token'] ? { 'x-xenon-auth-token': String(f['token']) } : {};
  const client = new HttpClient(4);
  const out = process.stdout;
  // A second Ctrl-C quits without waiting for the rollback: the members frozen so far stay frozen,
  // and the message says how to unfreeze them.
  const ctrlC = watchCtrlC(
    () => out.write('interrupted: rolling back after the current step (Ctrl-C again quits at once)\n'),
    () => process.stderr.write(`krypton: quit before rolling back: members of ${source} may still refuse writes; unfreeze them with: krypton cutover --rollback --source=${source}\n`),
  );
  try {
    const blue = await members(client, source, headers);
    if (f['rollback']) {
      await unfreeze(client, blue, headers);
      out.write(`rolled back: ${blue.length} member(s) of ${source} take writes again\n`);
      return 0;
    }
    const unavailable = blue.filter((m) => m.status !== 'AVAILABLE');
    if (unavailable.length > 0) {
      process.stderr.write(
        `krypton: ${unavailable.map((m) => `${m.id} (${m.base}) is ${m.status}`).join(', ')}: a member that is not frozen could take writes the final delta misses. Bring it back or remove it from the group first.\n`,
      );
      return 1;
    }
    const green = await members(client, destination, headers);
    // Everything that can be checked is checked before anything is frozen.
    const plans = await planFactories(client, destination, f, headers);
    await hintTasks(client, destination, plans, headers, out);
    const several = plans.length > 1;
    const steps = new Steps(out);
    const reason = String(f['reason'] ?? `cutover to ${destination}`);
    // Members that may be frozen: all but those that refused the freeze (a 4xx: not frozen, and
    // an unfreeze would be refused alike). One whose answer was lost (a timeout) may be frozen.
    const refused = new Set<Member>();
    /** The continuous tasks the deltas replaced (cancelled): a rollback says how to run them again. */
    const replaced: string[] = [];
    const rollback = async (why: string): Promise<number> => {
      process.stderr.write(`krypton: ${why}\n`);
      const frozen = blue.filter((m) => !refused.has(m));
      if (frozen.length === 0) return 1;
      await unfreeze(client, frozen, headers);
      out.write(`rolled back: ${frozen.length} member(s) of ${source} take writes again (writes were refused for ${ms(steps.elapsed())})\n`);
      for (const link of replaced) out.write(`the continuous task ${destination}${link} stays cancelled: PATCH it with {"taskInfo": {"stage": "STARTED"}} to run it again\n`);
      return 1;
    };
    try {
      // 1. Freeze: every member refuses clients' writes; each answers once its writes in flight are done.
      await steps.run(
        `1/4 freeze writes on ${blue.length} member(s) of ${source}`,
        async () => {
          const answers = await Promise.allSettled(
            blue.map(async (m) => {
              const r = await client
                .send<Doc>(`${m.base}/management/write-freeze`, {
                  method: 'PUT',
                  headers,
                  body: { frozen: true, reason, ...(f['drainTimeoutMicros'] !== undefined ? { drainTimeoutMicros: f['drainTimeoutMicros'] } : {}) },
                  timeoutMs: 120_000,
                })
                .catch((err: unknown) => {
                  const status = (err as { statusCode?: number }).statusCode ?? 500;
                  if (status >= 400 && status < 500 && status !== 408) refused.add(m);
                  throw new Error(`${m.base}: ${(err as Error).message}`);
                });
              if (r.body['drained'] !== true) throw new Error(`${m.base} still has ${String(r.body['writesInFlight'])} write(s) in flight after the drain timeout`);
              return r.body;
            }),
          );
          const failed = answers.find((a) => a.status === 'rejected');
          if (failed) throw (failed as PromiseRejectedResult).reason;
          return answers.map((a) => (a as PromiseFulfilledResult<Doc>).value);
        },
        (r) =>
          `frozen; waited ${(Math.max(...r.map((d) => Number(d['drainMicros'] ?? 0))) / 1000).toFixed(1)} ms for ${r.reduce((n, d) => n + Number(d['drainedWriteCount'] ?? 0), 0)} write(s) in flight`,
      );
    } catch (err) {
      return await rollback(`freezing ${source} failed: ${(err as Error).message}`);
    }
    if (ctrlC.pressed) return await rollback('interrupted');
    // 2. Final delta: one migration run per factory over what changed since its continuous task's checkpoint.
    for (const plan of plans) {
      try {
        await steps.run(
          `2/4 final delta${several ? ` of ${plan.sourceFactory}` : ''}`,
          async () => {
            const task = await deltaTask(client, destination, f, plan, headers, out, (link) => replaced.push(link));
            const created = await client.send<TaskDoc>(`${destination}/management/migration-tasks`, { method: 'POST', body: task, headers });
            const link = created.body['documentSelfLink'] as string;
            out.write(`migration task ${destination}${link}\n`);
            const { outcome, task: last } = await followTask(client, `${destination}${link}`, headers, {
              continuous: false,
              pollMillis: Number(f['pollMillis'] ?? 50),
              cancelled: () => ctrlC.pressed,
            });
            if (outcome === 'CANCELLED' && ctrlC.pressed) throw new Error(`interrupted: the final delta${several ? ` of ${plan.sourceFactory}` : ''} was cancelled`);
            if (outcome !== 'FINISHED')
              throw new Error(`the final delta${several ? ` of ${plan.sourceFactory}` : ''} ended ${outcome}${last.taskInfo.failure?.message ? `: ${last.taskInfo.failure.message}` : ''}`);
            return last;
          },
          (t) => `migrated ${t.progress?.processedServiceCount ?? 0}, skipped ${t.progress?.skippedServiceCount ?? 0}, deleted ${t.progress?.deletedDocumentCount ?? 0}`,
        );
      } catch (err) {
        return await rollback((err as Error).message);
      }
      if (ctrlC.pressed) return await rollback('interrupted');
    }
    // 3. Verify: the same documents (ids and update times) on every member of both groups.
    for (const plan of plans) {
      if (verify === 'none') {
        out.write('3/4 verify: skipped (--verify=none)\n');
        break;
      }
      try {
        await steps.run(
          `3/4 verify (${verify})${several ? ` of ${plan.sourceFactory}` : ''}`,
          () => verifyEqual(client, blue, green, plan.sourceFactory, plan.destinationFactory, verify, headers),
          (d) => `${d.documentCount} documents on both sides${verify === 'digest' || verify === 'content' ? `, digest ${d.digest.slice(0, 16)}…` : ''}`,
        );
      } catch (err) {
        return await rollback(`verification${several ? ` of ${plan.sourceFactory}` : ''} failed: ${(err as Error).message}`);
      }
      if (ctrlC.pressed) return await rollback('interrupted');
    }
    // A member that joined blue during the window was never frozen: it may have taken writes the
    // final delta missed. Blue's members are listed again before green is declared complete.
    try {
      const now = await members(client, source, headers);
      const joined = now.filter((m) => !blue.some((b) => b.id === m.id));
      if (joined.length > 0)
        return await rollback(
          `${joined.map((m) => `${m.id} (${m.base})`).join(', ')} joined the node group of ${source} during the window and was not frozen: it may have taken writes the final delta missed. Run the cutover again.`,
        );
    } catch (err) {
      return await rollback(`listing the members of ${source} again failed: ${(err as Error).message}`);
    }
    out.write(
      `4/4 cutover: ${destination} holds ${source}'s documents${several ? ` (${plans.length} factories)` : ''}; ${source} stays read-only (writes answered 503 KRY_ERR_WRITES_FROZEN). Send clients to ${destination} now.\n` +
        `writes were refused for ${ms(steps.elapsed())} so far. To undo: krypton cutover --rollback --source=${source}\n`,
    );
    return 0;
  } finally {
    ctrlC.settle();
    await client.close();
  }
}

/** The members of the node group `uri` belongs to (REPLACED ones left out), with their base URIs. */
async function members(client: HttpClient, uri: string, headers: Record<string, string>): Promise<Member[]> {
  const group = (await client.send<Doc>(`${uri}/core/node-groups/default`, { method: 'GET', headers, timeoutMs: 10_000 })).body;
  const nodes = Object.values((group['nodes'] ?? {}) as Record<string, Doc>).filter((n) => n['status'] !== 'REPLACED');
  if (nodes.length === 0) throw new Error(`${uri}/core/node-groups/default lists no member`);
  return nodes.map((n) => ({ id: String(n['id']), status: String(n['status']), base: base(new URL(String(n['groupReference'])).origin) }));
}

async function unfreeze(client: HttpClient, list: Member[], headers: Record<string, string>): Promise<void> {
  const answers = await Promise.allSettled(list.map((m) => client.send(`${m.base}/management/write-freeze`, { method: 'PUT', headers, body: { frozen: false }, timeoutMs: 30_000 })));
  const failed = answers.map((a, k) => [a, list[k]!] as const).filter(([a]) => a.status === 'rejected');
  if (failed.length > 0) {
    throw new Error(
      `could not unfreeze ${failed.map(([a, m]) => `${m.base} (${((a as PromiseRejectedResult).reason as Error).message})`).join(', ')}: run krypton cutover --rollback --source=… again once they answer`,
    );
  }
}

/** One factory's cutover: where its documents go, and the continuous task that copied them, if any. */
interface Plan {
  sourceFactory: string;
  destinationFactory: string;
  taskLink?: string;
}

const commaList = (v: unknown): string[] =>
  String(v)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);

/**
 * The factories of `--factory` with their destinations (`--to`, else their task's, else the same
 * link) and continuous tasks (`--task`, matched by the factory each migrates), all checked before
 * anything is frozen.
 */
async function planFactories(client: HttpClient, destination: string, f: Record<string, unknown>, headers: Record<string, string>): Promise<Plan[]> {
  const factories = commaList(f['factory']);
  if (new Set(factories).size !== factories.length) throw new UsageError(`--factory names a factory twice: ${String(f['factory'])}`);
  const tos = f['to'] === undefined ? undefined : commaList(f['to']);
  if (tos && tos.length !== factories.length) throw new UsageError(`--to names ${tos.length} factories and --factory ${factories.length}: give one destination per factory`);
  if (factories.length > 1 && (f['transform'] || f['transformRequest'] || f['query'])) {
    throw new UsageError("with several factories, give each one's transformation and query through its continuous task (--task), not --transform or --query");
  }
  const tasks = new Map<string, { link: string; doc: TaskDoc }>();
  for (const link of f['task'] === undefined ? [] : commaList(f['task']).map((t) => t.replace(/^https?:\/\/[^/]+/, ''))) {
    const doc = (await client.send<TaskDoc>(`${destination}${link}`, { method: 'GET', headers })).body;
    const factory = String(doc['sourceFactoryLink']);
    if (!factories.includes(factory)) throw new UsageError(`--task=${link} migrates ${factory}, which --factory does not name`);
    if (tasks.has(factory)) throw new UsageError(`--task names two tasks of ${factory}: ${tasks.get(factory)!.link} and ${link}`);
    tasks.set(factory, { link, doc });
  }
  return factories.map((factory, k) => {
    const task = tasks.get(factory);
    return { sourceFactory: factory, destinationFactory: tos?.[k] ?? (task?.doc['destinationFactoryLink'] as string | undefined) ?? factory, ...(task ? { taskLink: task.link } : {}) };
  });
}

/**
 * Names the continuous tasks on the destination that migrate a factory given without `--task`:
 * with one, the final delta would start at its checkpoint instead of reading every document while
 * writes are refused. A hint only (said before anything is frozen); a listing that fails is passed over.
 */
async function hintTasks(client: HttpClient, destination: string, plans: Plan[], headers: Record<string, string>, out: NodeJS.WriteStream): Promise<void> {
  const without = plans.filter((p) => !p.taskLink).map((p) => p.sourceFactory);
  if (without.length === 0) return;
  let tasks: TaskDoc[];
  try {
    const listing = await client.send<Doc>(`${destination}/management/migration-tasks?expand`, { method: 'GET', headers, timeoutMs: 10_000 });
    tasks = Object.values((listing.body['documents'] ?? {}) as Record<string, TaskDoc>);
  } catch {
    return;
  }
  for (const t of tasks) {
    const factory = String(t['sourceFactoryLink']);
    if (t['continuousMigration'] !== true || !without.includes(factory) || ['CANCELLED', 'FAILED'].includes(t.taskInfo?.stage)) continue;
    out.write(
      `note: the continuous task ${String(t['documentSelfLink'])} migrates ${factory} to ${destination}: with --task=${String(t['documentSelfLink'])} the final delta would start at its checkpoint instead of reading every document of ${factory}\n`,
    );
  }
}

/**
 * A factory's final delta task: the CLI's migrate flags, or those of its continuous task (which is
 * cancelled first) from its checkpoint on. Deleted documents are carried (INCLUDE_DELETED).
 */
async function deltaTask(
  client: HttpClient,
  destination: string,
  f: Record<string, unknown>,
  plan: Plan,
  headers: Record<string, string>,
  out: NodeJS.WriteStream,
  onCancelled: (link: string) => void,
): Promise<Doc> {
  const task = buildTask({ ...f, factory: plan.sourceFactory, to: plan.destinationFactory, continuous: false });
  if (plan.taskLink) {
    const link = plan.taskLink;
    const uri = `${destination}${link}`;
    // Read after the freeze: the checkpoint no longer moves past what blue holds.
    const running = (await client.send<TaskDoc>(uri, { method: 'GET', headers })).body;
    await client.send(uri, { method: 'PATCH', headers, body: { taskInfo: { stage: 'CANCELLED' } } });
    onCancelled(link);
    const checkpoints = Object.values((running['checkpoints'] ?? {}) as Record<string, { updateTimeMicros: number }>).map((c) => c.updateTimeMicros);
    const carriedDeletions = (((running['querySpec'] as Doc | undefined)?.['options'] as string[] | undefined) ?? []).includes('INCLUDE_DELETED');
    // The lowest checkpoint: what any source node has not yet handed over starts at or after it.
    // A task that did not carry deletions passed over them: the delta then reads from the start.
    const since = !carriedDeletions ? 0 : checkpoints.length > 0 ? Math.min(...checkpoints) : Number(running['latestSourceUpdateTimeMicros'] ?? 0);
    out.write(
      carriedDeletions
        ? `cancelled ${link}; the delta starts at its checkpoint ${since} (${new Date(since / 1000).toISOString()})\n`
        : `cancelled ${link}; it did not carry deletions (querySpec.options lacks INCLUDE_DELETED), so the delta reads every source document to find them (those migrated already are skipped)\n`,
    );
    // The task's own transformation and query, unless a flag gives them.
    const flagOf = { transformationServiceLink: 'transform', querySpec: 'query' } as const;
    for (const [k, flag] of Object.entries(flagOf)) if (running[k] !== undefined && f[flag] === undefined) task[k] = running[k];
    task['migrationOptions'] = ((running['migrationOptions'] as string[] | undefined) ?? []).filter((o) => o !== 'CONTINUOUS');
    task['latestSourceUpdateTimeMicros'] = since;
  }
  const spec = { ...((task['querySpec'] as Doc | undefined) ?? {}) };
  const options = new Set((spec['options'] as string[] | undefined) ?? []);
  options.add('INCLUDE_DELETED');
  spec['options'] = [...options];
  task['querySpec'] = spec;
  return task;
}
