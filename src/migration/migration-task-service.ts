import { fail, toServiceErrorResponse } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { RawJson, type Operation, type Reply } from '../core/operation.js';
import { ServiceStats } from '../core/service.js';
import { defineStatefulService } from '../core/service-definition.js';
import { FactoryService } from '../services/factory-service.js';
import { runMigration, sleep } from './migration-runner.js';
import { initialState, MIGRATION_TASK_KIND, MIGRATION_TASKS_LINK, TERMINAL_STAGES, type MigrationTaskState, type TaskStage } from './migration-state.js';

const SAVE_INTERVAL_MS = 250;

export const MigrationTaskDefinition = defineStatefulService<Doc>({
  factoryLink: MIGRATION_TASKS_LINK,
  documentKind: MIGRATION_TASK_KIND,
  versionRetentionLimit: 20,
  versionRetentionFloor: 10,
  // An expired task reports FAILED instead of vanishing (Xenon deleted it silently).
  expirationPurges: false,
});

interface Running {
  abort: AbortController;
  done: Promise<void>;
}

/**
 * Supplies the headers a task's remote calls carry (auth: the identity of the task's creator,
 * see src/auth/migration-auth.ts). May throw to fail the run (the creator lost its rights).
 */
export type TaskIdentity = (principal: string | undefined, task: MigrationTaskState) => Record<string, string>;

/**
 * `/management/migration-tasks`: started on every host. A task is an explicit state machine
 * (CREATED → STARTED → FINISHED | FAILED | CANCELLED) whose persisted document is the single source
 * of truth, checkpoints included, so a task running when the host stops resumes when it restarts.
 */
export class MigrationTaskService extends FactoryService {
  private readonly running = new Map<string, Running>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastSave = new Map<string, number>();
  /**
   * Outcomes of finished runs not recorded yet (the index refuses writes, e.g. a full disk, or a
   * group lacks its quorum): a GET of the task answers with them meanwhile (see saveOutcome).
   */
  private readonly unrecorded = new Map<string, MigrationTaskState>();
  identity: TaskIdentity = () => ({});
  /**
   * Optional in-process import into this host's factories (set by install). `credentials`: the
   * task's identity headers, for documents a group routes to the member that owns them.
   */
  importLocally:
    | ((
        factoryLink: string,
        docs: Doc[],
        history: boolean,
        overwrite: boolean,
        principal: string | undefined,
        credentials: Record<string, string>,
      ) => Promise<import('../services/document-writer.js').ImportOutcome[]>)
    | undefined;

  constructor(private readonly taskHost: Host) {
    super(taskHost, MigrationTaskDefinition);
  }

  override async handle(op: Operation): Promise<Reply> {
    if (op.action !== 'POST') return super.handle(op);
    const body = op.bodyObject() ?? {};
    const state = initialState(body, this.taskHost.options.migrationIntervalMicros);
    const create: Doc = { ...state, ...(body['documentSelfLink'] ? { documentSelfLink: body['documentSelfLink'] } : {}) };
    const exp = body['documentExpirationTimeMicros'];
    if (exp !== undefined) create['documentExpirationTimeMicros'] = exp;
    if (op.principal) create['ownerPrincipal'] = op.principal;
    const doc = await this.writer.create({ body: create, fromMigration: false, forceIndexUpdate: false, principal: op.principal, op });
    const stage = state.taskInfo.stage;
    if (stage === 'CREATED') this.start(doc['documentSelfLink'] as string);
    else if (stage === 'CANCELLED' && state.continuousMigration) this.schedule(doc['documentSelfLink'] as string, state.maintenanceIntervalMicros);
    return { status: 200, body: doc };
  }

  override async handleChild(op: Operation, childLink: string, suffix: string | undefined): Promise<Reply> {
    if (suffix === 'stats' && op.action === 'GET') return { status: 200, body: this.statsDocument(childLink, op) };
    if (!suffix && op.action === 'PATCH') return this.patch(op, childLink);
    // A task's settings and identity are fixed at POST, where its rights are checked: a PUT could
    // swap its source, factories or ownerPrincipal (the identity it runs as) after that check.
    if (!suffix && op.action === 'PUT') fail('METHOD_NOT_ALLOWED', 'a migration task cannot be replaced: PATCH taskInfo.stage (CANCELLED or STARTED), or POST a new task');
    if (!suffix && op.action === 'DELETE') await this.cancel(childLink);
    const reply = await super.handleChild(op, childLink, suffix);
    const outcome = !suffix && op.action === 'GET' && reply.status === 200 ? this.unrecorded.get(childLink) : undefined;
    if (!outcome) return reply;
    const stored = (reply.body instanceof RawJson ? JSON.parse(reply.body.text) : reply.body) as Doc;
    return { ...reply, body: { ...stored, taskInfo: outcome.taskInfo, progress: outcome.progress, checkpoints: outcome.checkpoints } };
  }

  private load(link: string): MigrationTaskState | undefined {
    const v = this.taskHost.store.getLatest(link);
    return v && v.action !== 'DELETE' ? (JSON.parse(v.json) as MigrationTaskState) : undefined;
  }

  private async patch(op: Operation, link: string): Promise<Reply> {
    const state = this.load(link);
    if (!state) fail('NOT_FOUND', `Service not found: ${op.uri}`);
    const body = op.bodyObject() ?? {};
    const stage = ((body['taskInfo'] ?? {}) as Doc)['stage'] as TaskStage | undefined;
    if (stage === 'CANCELLED') {
      await this.cancel(link);
      const doc = await this.save(link, { ...(this.load(link) ?? state), taskInfo: { stage: 'CANCELLED', isDirect: false } }, true);
      return { status: 200, body: doc };
    }
    if (stage === 'STARTED' || stage === 'CREATED') {
      if (this.running.has(link)) fail('CONFLICT', `migration task ${link} is already running`);
      this.start(link);
      return { status: 200, body: this.load(link) };
    }
    return fail('VALIDATION', 'PATCH supports taskInfo.stage CANCELLED (stop) or STARTED (run again)');
  }

  /** Persists the task document; progress saves are throttled, stage changes are not. */
  private async save(link: string, state: MigrationTaskState, force: boolean): Promise<Doc | undefined> {
    const now = Date.now();
    if (!force && now - (this.lastSave.get(link) ?? 0) < SAVE_INTERVAL_MS) return undefined;
    this.lastSave.set(link, now);
    return this.writer.update(link, 'PUT', { body: state, fromMigration: false, forceIndexUpdate: false, principal: state['ownerPrincipal'] as string | undefined, op: undefined });
  }

  /** Starts a run now (first run: CREATED → STARTED). */
  start(link: string): void {
    if (this.running.has(link)) return;
    const abort = new AbortController();
    const done = this.run(link, abort)
      .catch((err) => this.taskHost.log.error({ err, link }, 'migration task run crashed'))
      .finally(() => {
        this.running.delete(link);
        // Progress saves are throttled within a run only: nothing is kept for a task between runs.
        this.lastSave.delete(link);
      });
    this.running.set(link, { abort, done });
  }

  private async run(link: string, abort: AbortController): Promise<void> {
    const loaded = this.load(link);
    if (!loaded) return;
    const state: MigrationTaskState = { ...loaded, taskInfo: { stage: 'STARTED', isDirect: false } };
    state.progress.runCount++;
    const principal = state['ownerPrincipal'] as string | undefined;
    const started = performance.now();
    try {
      // Inside the try: a STARTED state the group cannot record (no quorum) fails this run like any
      // other cause, and a continuous task still runs again at the next interval.
      await this.save(link, state, true);
      await runMigration({
        host: this.taskHost,
        state,
        signal: abort.signal,
        headers: () => this.identity(principal, state),
        save: () => void this.save(link, state, false).catch((err) => this.taskHost.log.warn({ err, link }, 'saving migration progress failed')),
        ...(this.importLocally ? { importLocally: (f: string, d: Doc[], h: boolean, o: boolean) => this.importLocally!(f, d, h, o, principal, this.identity(principal, state)) } : {}),
      });
      if (abort.signal.aborted) return await this.saveCancelled(link, state);
      state.taskInfo = { stage: 'FINISHED', isDirect: false, durationMicros: Math.round((performance.now() - started) * 1000) };
      this.taskHost.log.info({ link, progress: state.progress }, 'migration run finished');
    } catch (err) {
      if (abort.signal.aborted) return await this.saveCancelled(link, state);
      const failure = toServiceErrorResponse(err);
      state.taskInfo = { stage: 'FAILED', isDirect: false, failure, durationMicros: Math.round((performance.now() - started) * 1000) };
      this.taskHost.log.warn({ link, message: failure.message }, 'migration run failed');
    }
    try {
      await this.saveOutcome(link, state, abort.signal);
    } catch (err) {
      this.taskHost.log.warn({ link, message: (err as Error).message }, 'migration task state not saved');
      // The task document is gone (DELETE, or purged): nothing to record, nothing to run again.
      if ((err as { statusCode?: number }).statusCode === 404) return;
    }
    if (state.continuousMigration) this.schedule(link, state.maintenanceIntervalMicros);
  }

  /** A cancelled run's progress and checkpoints (what it wrote until it stopped); the canceller records the stage. */
  private async saveCancelled(link: string, state: MigrationTaskState): Promise<void> {
    await this.save(link, state, true).catch((err) => this.taskHost.log.warn({ link, message: (err as Error).message }, 'progress of the cancelled run not saved'));
  }

  /**
   * The outcome must be recorded: retried with backoff (at most 5 s apart) for as long as it takes (a
   * node group may refuse writes for a moment; a full disk until space is freed, which the host
   * notices by itself). Meanwhile GET answers with it (unrecorded). Ends without recording if the
   * task is deleted (404) or the run is aborted (a cancel, or the host stopping: the stored stage is
   * still STARTED, so the next start runs the task again from its checkpoints).
   */
  private async saveOutcome(link: string, state: MigrationTaskState, signal: AbortSignal): Promise<void> {
    this.unrecorded.set(link, state);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.save(link, state, true);
          if (attempt > 1) this.taskHost.log.info({ link, attempts: attempt, stage: state.taskInfo.stage }, 'migration outcome recorded');
          return;
        } catch (err) {
          if (signal.aborted || (err as { statusCode?: number }).statusCode === 404) throw err;
          // Logged at the first failures, then every tenth (about once a minute).
          if (attempt <= 3 || attempt % 10 === 0) this.taskHost.log.warn({ link, attempt, reason: (err as Error).message }, 'recording the migration outcome failed; retrying');
          await sleep(Math.min(5000, 250 * 2 ** attempt), signal);
          if (signal.aborted) throw err;
        }
      }
    } finally {
      this.unrecorded.delete(link);
    }
  }

  /** Continuous tasks: the next run after the interval (a failed run is retried the same way). */
  private schedule(link: string, intervalMicros: number): void {
    clearTimeout(this.timers.get(link));
    const t = setTimeout(
      () => {
        this.timers.delete(link);
        const s = this.load(link);
        if (s?.continuousMigration && s.taskInfo.stage !== 'CANCELLED') this.start(link);
        else if (s?.continuousMigration && s.taskInfo.stage === 'CANCELLED' && s.progress.runCount === 0) this.start(link);
      },
      Math.max(1, intervalMicros / 1000),
    );
    t.unref();
    this.timers.set(link, t);
  }

  private async cancel(link: string): Promise<void> {
    clearTimeout(this.timers.get(link));
    this.timers.delete(link);
    const r = this.running.get(link);
    if (!r) return;
    r.abort.abort();
    await r.done.catch(() => undefined);
  }

  /** `<task>/stats`: the progress counters under Xenon's stat names. */
  private statsDocument(link: string, op: Operation): Doc {
    const state = this.load(link);
    if (!state) fail('NOT_FOUND', `Service not found: ${op.uri}`);
    const stats = new ServiceStats();
    const now = this.taskHost.clock.nowMicros();
    const p = state.progress;
    if (p.processedServiceCount > 0) stats.set('processedServiceCount', p.processedServiceCount, now);
    if (p.runCount > 0) {
      stats.set('estimatedTotalServiceCount', p.estimatedTotalServiceCount, now);
      stats.set('countQueryTimeDurationMicros', p.countQueryTimeDurationMicros ?? -1, now);
      stats.set('fetchedDocumentCount', p.fetchedDocumentCount, now);
      stats.set('skippedServiceCount', p.skippedServiceCount, now);
    }
    if (p.deletedDocumentCount > 0) stats.set('deletedDocumentCount', p.deletedDocumentCount, now);
    if (p.retrievalOperationsDurationMicros > 0) stats.set('retrievalOperationsDurationMicros', p.retrievalOperationsDurationMicros, now);
    for (const [node, micros] of Object.entries(p.retrievalQueryTimeDurationMicros ?? {})) stats.set(`retrievalQueryTimeDurationMicros-${node}`, micros, now);
    if (state.transformationServiceLink) {
      stats.set('beforeTransformDocumentCount', p.beforeTransformDocumentCount, now);
      stats.set('afterTransformDocumentCount', p.afterTransformDocumentCount, now);
    }
    return stats.toDocument(`${link}/stats`, this.taskHost.id);
  }

  /** Resumes tasks that were running (or continuous) when the host stopped. */
  resumeAll(): void {
    const rows = this.taskHost.store.all<{ json: string }>("SELECT json FROM docs WHERE factory = ? AND latest = 1 AND action != 'DELETE'", [MIGRATION_TASKS_LINK]);
    for (const { json } of rows) {
      const s = JSON.parse(json) as MigrationTaskState & Doc;
      const link = s['documentSelfLink'] as string;
      // Node groups: every member holds a replica of the task; only the node that ran it resumes it.
      if (s['documentOwner'] !== undefined && s['documentOwner'] !== this.taskHost.id) continue;
      if (!TERMINAL_STAGES.has(s.taskInfo.stage)) {
        this.taskHost.log.info({ link, checkpoints: s.checkpoints }, 'resuming migration task from its checkpoint');
        this.start(link);
      } else if (s.continuousMigration && s.taskInfo.stage !== 'CANCELLED') this.schedule(link, s.maintenanceIntervalMicros);
    }
  }

  async stopAll(): Promise<void> {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    // Runs are abandoned, not cancelled: their persisted stage stays STARTED so they resume.
    for (const r of this.running.values()) r.abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done.catch(() => undefined)));
  }
}
