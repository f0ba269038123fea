import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { JsonStream, Pragma, RawJson, REQUEST_COUNT_STAT, type Operation, type ReadScope, type Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import type { StatefulServiceDefinition } from '../core/service-definition.js';
import { DocumentWriter, type WriteInput } from './document-writer.js';
import { QueryPageService } from '../query/query-page-service.js';
import { DEFAULT_ORDER, elapsedMicros, resultEnd, streamResultRows, type QueryPlan } from '../query/query-engine.js';
import { odataFactoryQuery } from './odata-listing.js';
import { configDocument, templateDocument, genericUtility } from './utility-handlers.js';

/** A listing has no limit (Xenon's Integer.MAX_VALUE). */
const UNLIMITED = 2147483647;
/** A listing reads the factory's index in order, so small batches cost nothing extra and keep memory low. */
const LISTING_BATCHES = { first: 1000, links: 1000, documents: 1000 };

/**
 * A stateful service's factory (e.g. `/core/examples`) and its children (`/core/examples/<id>`):
 * creation, listing (streamed), OData queries, and GET/PUT/PATCH/DELETE of children.
 */
export class FactoryService implements Service {
  readonly link: string;
  readonly writer: DocumentWriter;

  constructor(
    private readonly host: Host,
    readonly def: StatefulServiceDefinition,
  ) {
    this.link = def.factoryLink;
    this.writer = new DocumentWriter(host, def);
  }

  /** The id a POST without documentSelfLink gets; undefined: a generated one (subclasses derive ids). */
  defaultSelfLink(_body: Doc): string | undefined {
    return undefined;
  }

  private input(op: Operation): WriteInput {
    return {
      body: op.bodyObject() ?? {},
      fromMigration: op.hasPragma(Pragma.FROM_MIGRATION),
      forceIndexUpdate: op.hasPragma(Pragma.FORCE_INDEX_UPDATE),
      principal: op.principal,
      op,
    };
  }

  /** May throw at once (a bad body): the host dispatches inside a try. Not async: see DocumentWriter.commitReplicated. */
  handle(op: Operation): Promise<Reply> {
    switch (op.action) {
      case 'POST':
        return this.writer.create(this.input(op)).then((doc) => ({ status: 200, body: this.writer.replyBody(doc) }));
      case 'GET':
        return this.list(op);
      case 'OPTIONS':
        return Promise.resolve({ status: 200, body: templateDocument(this.host, this.def, true) });
      default:
        return fail('VALIDATION', 'Action not supported');
    }
  }

  async handleUtility(op: Operation, suffix: string): Promise<Reply> {
    if (suffix === 'template' && op.action === 'GET') return { status: 200, body: JSON.stringify(templateDocument(this.host, this.def, true), null, 2) };
    if (suffix === 'config' && op.action === 'GET') return { status: 200, body: configDocument(this.host, this.def, `${this.link}/config`, true) };
    return genericUtility(this.host, this.link, op, suffix);
  }

  async handleChild(op: Operation, childLink: string, suffix: string | undefined): Promise<Reply> {
    if (suffix) return this.childUtility(op, childLink, suffix);
    this.host.statsFor(childLink).adjust(REQUEST_COUNT_STAT[op.action], 1, this.host.clock.nowMicros());
    switch (op.action) {
      case 'GET':
        return { status: 200, body: new RawJson(this.readLive(childLink, op).json) };
      case 'OPTIONS':
        return { status: 200, body: templateDocument(this.host, this.def, false) };
      case 'POST':
        this.readLive(childLink, op, true);
        return fail('METHOD_NOT_ALLOWED', 'Action not supported: POST');
      case 'PUT':
      case 'PATCH':
      case 'DELETE': {
        const input = this.input(op);
        // Xenon failed with a 500 and no message; a missing body is the client's error.
        if (op.action === 'PATCH' && !op.hasBody()) fail('VALIDATION', 'PATCH requires a body');
        const doc = await this.writer.update(childLink, op.action, input);
        return { status: 200, body: doc ? this.writer.replyBody(doc) : undefined };
      }
    }
  }

  /** The live version of a child, or Xenon's 404s (never existed / deleted). */
  readLive(link: string, op: Operation, postToChild = false) {
    const v = this.host.store.getLatest(link);
    const now = this.host.clock.nowMicros();
    if (!this.writer.isLive(v, now)) fail('NOT_FOUND', `Service not found: ${op.uri}`);
    if (v.action === 'DELETE') {
      if (postToChild) fail('ALREADY_EXISTS', `Service already started: ${link}`);
      fail('DELETED', `Service not found: ${op.uri}`);
    }
    return v;
  }

  private async childUtility(op: Operation, childLink: string, suffix: string): Promise<Reply> {
    const v = this.readLive(childLink, op);
    if (suffix === 'template' && op.action === 'GET') return { status: 200, body: JSON.stringify(templateDocument(this.host, this.def, false), null, 2) };
    if (suffix === 'config' && op.action === 'GET') {
      return { status: 200, body: { ...configDocument(this.host, this.def, `${childLink}/config`, false), version: v.version } };
    }
    return genericUtility(this.host, childLink, op, suffix);
  }

  private async list(op: Operation): Promise<Reply> {
    if (op.query.has('path') || op.query.has('peer')) return this.odataPage(op);
    const odata = ['$top', '$count', '$limit', '$skip', '$select', '$orderby', '$filter'].some((p) => op.query.has(p));
    if (odata) return odataFactoryQuery(this.host, this.def, op);
    return { status: 200, body: new JsonStream(this.streamListing(op.rawQuery.includes('expand'), op.authz?.readScope)) };
  }

  /**
   * A later page of a `$limit` query (`?path=<page>&peer=<host>`): the results alone, page links in
   * this factory's form. A page held here is served (streamed when large) by the page service
   * itself; one held by another member comes through the forwarding service and is rewritten.
   */
  private async odataPage(op: Operation): Promise<Reply> {
    const path = op.query.get('path');
    const peer = op.query.get('peer');
    const local = this.host.service('/core/query-page');
    if (path && !path.includes('/') && (!peer || peer === this.host.id) && local instanceof QueryPageService) {
      return local.servePage(path, op, (id) => `${this.link}?path=${id}&peer=${this.host.id}`);
    }
    const pageService = this.host.service('/core/query-page-forwarding');
    if (!pageService) fail('NOT_FOUND', `Service not found: ${op.uri}`);
    const reply = await pageService.handle(op);
    let text = '';
    if (reply.body instanceof JsonStream) for await (const chunk of reply.body.chunks) text += chunk;
    else text = (reply.body as RawJson).text;
    const task = JSON.parse(text) as Doc;
    const results = task['results'] as Doc;
    for (const k of ['nextPageLink', 'prevPageLink']) {
      const l = results[k];
      if (typeof l === 'string') {
        const q = new URLSearchParams(l.split('?')[1]);
        results[k] = `${this.link}?path=${q.get('path')}&peer=${q.get('peer') ?? this.host.id}`;
      }
    }
    return { status: 200, body: results };
  }

  /**
   * Plain listing (Xenon order: version descending, then index order), streamed in keyset
   * batches (streamResultRows) so a factory of any size is listed with bounded memory (Xenon
   * answers 500 above 10,000). With expand, a second pass streams the documents after the links
   * (Xenon's field order), so memory stays bounded there too.
   */
  private async *streamListing(expand: boolean, readScope: ReadScope | undefined): AsyncGenerator<string> {
    const started = performance.now();
    const plan: QueryPlan = {
      readScope,
      spec: { options: expand ? ['EXPAND_CONTENT'] : [] },
      where: { sql: 'd.factory = ?', params: [this.link] },
      keys: [...DEFAULT_ORDER],
    };
    yield '{';
    const tail = (count: number) => `,${resultEnd(count, elapsedMicros(started), { owner: this.host.id })}}`;
    yield* streamResultRows(this.host, plan, UNLIMITED, {}, tail, LISTING_BATCHES);
  }
}
