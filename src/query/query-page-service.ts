import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { JsonStream, RawJson, type Operation, type Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { elapsedMicros, hasOption, resultEnd, resultJson, STREAM_BATCH, streamResultRows } from './query-engine.js';
import type { PageEntry, QueryPages } from './query-pages.js';
import { QUERY_TASK_KIND, SELECT_LINKS_PAGED, withResults } from './query-task-service.js';
import { distinctSelected, expandSelected } from './selected-links.js';

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
    return this.servePage(childLink.slice(this.link.length + 1), op);
  }

  /**
   * One page, read once the index holds every acknowledged write (without blocking the thread).
   * A page of up to STREAM_BATCH rows is answered whole; a larger one (a large `resultLimit` or
   * `$limit`) is streamed in batches, so its size does not decide the host's memory. Answered as a
   * QueryTask document; with `factoryLink` (a factory's `?path=` page of a `$limit` query), as the
   * results alone, with page links in that factory's form.
   */
  async servePage(pageId: string, op: Operation, factoryLink?: (pageId: string) => string): Promise<Reply> {
    // Auth: a page is a QueryTask document of the principal whose scope produced it.
    op.authz?.check('GET', { documentSelfLink: `${this.link}/${pageId}`, documentKind: QUERY_TASK_KIND, documentAuthPrincipalLink: this.pages.scopeOf(pageId)?.principal });
    const given = Number(op.query.get('$limit') ?? 0);
    const override = Number.isFinite(given) && given > 0 ? given : 0;
    const peek = this.pages.entry(pageId);
    const limit = override || peek.limit;
    const spec = peek.plan.spec;
    if (!peek.groups && limit > STREAM_BATCH && hasOption(spec, 'SELECT_LINKS')) fail('INVALID_QUERY', SELECT_LINKS_PAGED);
    const entry = this.pages.take(pageId);
    const linkTo = (id: string | undefined) => (id ? (factoryLink ?? this.pageLink)(id) : undefined);
    if (entry.groups) {
      const served = await this.host.store.read(() => this.pages.serveGroups(pageId, entry));
      const page = { links: [], documents: undefined, count: 0, after: undefined, queryTimeMicros: served.queryTimeMicros };
      const groupPageLinks = new Map([...served.groupPages].map(([value, id]) => [value, linkTo(id)!]));
      const results = resultJson(page, { owner: this.host.id, nextPageLink: linkTo(served.nextPageId), prevPageLink: linkTo(entry.prevPageId), groupPageLinks });
      return { status: 200, body: new RawJson(withResults(this.pageDoc(pageId, entry), results)) };
    }
    if (limit > STREAM_BATCH) return { status: 200, body: new JsonStream(this.streamPage(pageId, entry, limit, linkTo, !factoryLink)) };
    const served = await this.host.store.read(() => this.pages.serve(pageId, entry, override));
    const page = served.page;
    if (page.selectedLinks && hasOption(spec, 'EXPAND_LINKS')) page.selectedDocuments = await expandSelected(this.host, distinctSelected(page.selectedLinks), op.headers);
    const results = resultJson(page, { owner: this.host.id, nextPageLink: linkTo(served.nextPageId), prevPageLink: linkTo(served.prevPageId) });
    return { status: 200, body: new RawJson(factoryLink ? results : withResults(this.pageDoc(pageId, entry), results)) };
  }

  private async *streamPage(pageId: string, entry: PageEntry, limit: number, linkTo: (id: string | undefined) => string | undefined, asTask: boolean): AsyncGenerator<string> {
    const started = performance.now();
    const { taskInfo, querySpec, ...rest } = this.pageDoc(pageId, entry);
    yield asTask ? `{"taskInfo":${JSON.stringify(taskInfo)},"querySpec":${JSON.stringify(querySpec)},"results":{` : '{';
    yield* streamResultRows(this.host, entry.plan, limit, { after: entry.after, offset: entry.offset, paged: true }, (count, cursor) => {
      const next = cursor ? this.pages.follow(pageId, entry, cursor) : undefined;
      const end = resultEnd(count, elapsedMicros(started), { owner: this.host.id, prevPageLink: linkTo(entry.prevPageId), nextPageLink: linkTo(next) });
      return asTask ? `,${end}},${JSON.stringify(rest).slice(1)}` : `,${end}}`;
    });
  }

  /** A page as Xenon answers it: a finished QueryTask document (results go after querySpec). */
  private pageDoc(pageId: string, entry: PageEntry): Doc {
    return {
      taskInfo: { stage: 'FINISHED', isDirect: true },
      querySpec: entry.spec,
      indexLink: '/core/document-index',
      documentVersion: 0,
      documentKind: QUERY_TASK_KIND,
      documentSelfLink: `${this.link}/${pageId}`,
      documentUpdateTimeMicros: this.host.clock.nowMicros(),
      documentExpirationTimeMicros: entry.expiresAtMicros,
      documentOwner: this.host.id,
    };
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
