import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { RawJson, type Operation, type Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { resultJson } from './query-engine.js';
import type { QueryPages } from './query-pages.js';
import { QUERY_TASK_KIND, withResults } from './query-task-service.js';

/** Forwards a page GET to the node that holds the page (cluster); single node: always local. */
export type PeerForwarder = (peerId: string, op: Operation, pagePath: string) => Promise<Reply | undefined>;

/** `/core/query-page/<id>`: one page of a paginated query, answered as a QueryTask. */
export class QueryPageService implements Service {
  readonly link = '/core/query-page';

  constructor(
    private readonly host: Host,
    private readonly pages: QueryPages,
    private readonly pageLink: (pageId: string) => string,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    return fail('NOT_FOUND', `Service not found: ${op.uri}`);
  }

  async handleChild(op: Operation, childLink: string): Promise<Reply> {
    if (op.action !== 'GET') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    return this.host.store.read(() => this.servePage(childLink.slice(this.link.length + 1), op));
  }

  servePage(pageId: string, op: Operation): Reply {
    // Auth: a page is a QueryTask document of the principal whose scope produced it.
    op.authz?.check('GET', { documentSelfLink: `${this.link}/${pageId}`, documentKind: QUERY_TASK_KIND, documentAuthPrincipalLink: this.pages.scopeOf(pageId)?.principal });
    const limit = Number(op.query.get('$limit') ?? 0);
    const served = this.pages.serve(pageId, Number.isFinite(limit) ? limit : 0);
    const results = resultJson(served.page, {
      owner: this.host.id,
      nextPageLink: served.nextPageId ? this.pageLink(served.nextPageId) : undefined,
      prevPageLink: served.prevPageId ? this.pageLink(served.prevPageId) : undefined,
    });
    const doc: Doc = {
      taskInfo: { stage: 'FINISHED', isDirect: true },
      querySpec: served.spec,
      indexLink: '/core/document-index',
      documentVersion: 0,
      documentKind: QUERY_TASK_KIND,
      documentSelfLink: `${this.link}/${pageId}`,
      documentUpdateTimeMicros: this.host.clock.nowMicros(),
      documentExpirationTimeMicros: served.expiresAtMicros,
      documentOwner: this.host.id,
    };
    return { status: 200, body: new RawJson(withResults(doc, results)) };
  }
}

/** `/core/query-page-forwarding?peer=<hostId>&path=<pageId>`: the default form of page links. */
export class QueryPageForwardingService implements Service {
  readonly link = '/core/query-page-forwarding';
  forwarder: PeerForwarder = async () => undefined;

  constructor(
    private readonly host: Host,
    private readonly pageService: QueryPageService,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action !== 'GET') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const path = op.query.get('path');
    const peer = op.query.get('peer');
    if (!path) fail('VALIDATION', 'link uri parameter is required');
    if (path.includes('/') || path.includes('..')) fail('VALIDATION', `invalid page path: ${path}`);
    if (peer && peer !== this.host.id) {
      const forwarded = await this.forwarder(peer, op, `/core/query-page/${path}`);
      if (forwarded) return forwarded;
      fail('NOT_FOUND', `query page ${path} is on node ${peer}, which is not a member of this group`);
    }
    return this.pageService.servePage(path, op);
  }
}
