import { fail, toServiceErrorResponse } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { RawJson, type Operation, type Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { FactoryService } from '../services/factory-service.js';
import { Kinds, REPLICATION_LINK, SYNCH_LINK, type ReplicationRequest, type ReplicationResult, type RollbackRequest, type SynchFetchRequest, type SynchSummaryRequest } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import { requireMember, type PeerAuth } from './peer-auth.js';
import { summaryPage, type ReplicaStore } from './replica-store.js';
import type { Synchronizer } from './synchronizer.js';

function writerOf(host: Host, factoryLink: unknown): FactoryService {
  const f = typeof factoryLink === 'string' ? host.service(factoryLink) : undefined;
  if (!(f instanceof FactoryService)) fail('NOT_FOUND', `factory ${String(factoryLink)} is not started on ${host.uri}`);
  return f;
}

/**
 * `POST /core/node-selectors/default/replication` (members only): a batch of replicated writes
 * (`ReplicationRequest`, one result per item) or a `RollbackRequest`. Replicas never run handlers.
 */
export class ReplicationService implements Service {
  readonly link = REPLICATION_LINK;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly auth: PeerAuth,
    private readonly replicas: ReplicaStore,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    requireMember(op, this.auth, this.group, 'replication');
    if (op.action !== 'POST') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = (op.bodyObject() ?? {}) as Doc;
    if (body['kind'] === Kinds.ROLLBACK_REQUEST) {
      const r = body as unknown as RollbackRequest;
      writerOf(this.host, r.factoryLink);
      await this.replicas.revoke(r.factoryLink, r.revocations);
      return { status: 200, body: {} };
    }
    if (body['kind'] !== Kinds.REPLICATION_REQUEST || !Array.isArray(body['items'])) fail('VALIDATION', 'expected a ReplicationRequest or a RollbackRequest');
    const req = body as unknown as ReplicationRequest;
    const results = await Promise.all(
      req.items.map(async (item): Promise<ReplicationResult> => {
        try {
          return await this.replicas.apply(writerOf(this.host, item.factoryLink).writer, item.versions, req.mode === 'synch' ? 'synch' : 'replicate');
        } catch (err) {
          const e = toServiceErrorResponse(err);
          return { status: 'failed', statusCode: e.statusCode, message: e.message ?? 'replication failed' };
        }
      }),
    );
    return { status: 200, body: { results } };
  }
}

/**
 * `/core/node-selectors/default/synch`: POST (members only) answers synchronization summaries and
 * documents; GET shows this node's synchronization status.
 */
export class SynchService implements Service {
  readonly link = SYNCH_LINK;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly auth: PeerAuth,
    private readonly replicas: ReplicaStore,
    private readonly synchronizer: Synchronizer,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action === 'GET') return { status: 200, body: { ...this.synchronizer.status, nodeStatus: this.group.self().status, documentOwner: this.host.id } };
    requireMember(op, this.auth, this.group, 'synchronization');
    if (op.action !== 'POST') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = (op.bodyObject() ?? {}) as Doc;
    if (body['kind'] === Kinds.SYNCH_SUMMARY_REQUEST) return this.summary(body as unknown as SynchSummaryRequest);
    if (body['kind'] === Kinds.SYNCH_FETCH_REQUEST) return this.fetch(body as unknown as SynchFetchRequest);
    return fail('VALIDATION', 'expected a SynchSummaryRequest or a SynchFetchRequest');
  }

  private summary(req: SynchSummaryRequest): Reply {
    writerOf(this.host, req.factoryLink);
    const limit = Math.min(Math.max(1, Number(req.limit) || 1000), 10_000);
    const rows = summaryPage(this.host, req.factoryLink, req.afterLink ?? '', limit + 1);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const out: Doc = { entries: page };
    if (!req.afterLink) out['revocations'] = this.replicas.revocations(req.factoryLink);
    if (more) out['nextAfterLink'] = page[page.length - 1]![0];
    return { status: 200, body: out };
  }

  private fetch(req: SynchFetchRequest): Reply {
    writerOf(this.host, req.factoryLink);
    if (!Array.isArray(req.links)) fail('VALIDATION', 'links must be an array');
    const docs: string[] = [];
    for (const l of req.links) {
      const v = this.host.store.getLatest(l);
      if (v && v.factory === req.factoryLink) docs.push(v.json);
    }
    return { status: 200, body: new RawJson(`{"documents":[${docs.join(',')}]}`) };
  }
}
