import type { Host } from '../core/host.js';
import { fail } from '../core/errors.js';
import { groupClause, groupKeyOf, hasOption, planQuery, MAX_PAGE_BYTES, runGroups, runPage, type QueryPage, type QueryPlan } from './query-engine.js';

/** `resultLimit` of a query that is not paged (Xenon writes Integer.MAX_VALUE into the spec). */
export const MAX_UNPAGED = 2147483647;

/** Xenon's page size for groups when `groupResultLimit` is not given. */
export const DEFAULT_GROUP_LIMIT = 10_000;

export interface PageEntry {
  plan: QueryPlan;
  limit: number;
  after: unknown[] | undefined;
  /** Rows the first page skips (`querySpec.offset`); later pages start at their cursor. */
  offset: number;
  prevPageId: string | undefined;
  expiresAtMicros: number;
  /** Task JSON fields echoed on a page GET (querySpec etc.). */
  spec: unknown;
  /** GROUP_BY: this is a page of groups (`limit` of them), starting after this group value. */
  groups?: { after: string | number | undefined };
}

/** A page of groups: each group's first page of documents, by group value. */
export interface ServedGroups {
  groupPages: Map<string, string>;
  nextPageId: string | undefined;
  queryTimeMicros: number;
}

export interface ServedPage {
  pageId: string;
  page: QueryPage;
  nextPageId: string | undefined;
  prevPageId: string | undefined;
  expiresAtMicros: number;
  spec: unknown;
}

/**
 * Live query pages (`/core/query-page/<id>`). A page holds its query plan and a keyset cursor, not
 * results: pages of a million-document query cost the same memory as pages of ten. Unlike Xenon's
 * snapshot pages, a page reflects the index when it is fetched; keyset order guarantees that no
 * document present for the whole scan is skipped or repeated.
 */
export class QueryPages {
  private readonly pages = new Map<string, PageEntry>();

  constructor(private readonly host: Host) {}

  /** Registers the first page of a query (skipping `offset` rows); returns its id. */
  open(plan: QueryPlan, limit: number, expiresAtMicros: number, spec: unknown, offset = plan.spec.offset ?? 0): string {
    return this.add({ plan, limit, after: undefined, offset, prevPageId: undefined, expiresAtMicros, spec });
  }

  /**
   * Ids are the host's strictly increasing clock, so the map's order is the pages' age. Each page
   * holds about 1.4 KB (its plan and query; measured: RSS +85 MB after 60,000 paged queries), and a
   * client may open pages faster than they expire (10 minutes by default), so at most
   * `queryPageLimit` are kept: beyond it the oldest is dropped, and its link answers 404 as an
   * expired page does.
   */
  private add(e: PageEntry): string {
    const id = String(this.host.clock.nowMicros());
    this.pages.set(id, e);
    if (this.pages.size > this.host.options.queryPageLimit) this.pages.delete(this.pages.keys().next().value as string);
    return id;
  }

  /** A live page. 404 for unknown/expired ids. */
  entry(pageId: string): PageEntry {
    const e = this.pages.get(pageId);
    if (!e || e.expiresAtMicros <= this.host.clock.nowMicros()) {
      if (e) this.pages.delete(pageId);
      fail('NOT_FOUND', `query page ${pageId} not found or expired`);
    }
    return e;
  }

  /**
   * A live page, about to be served: a SINGLE_USE page is removed, so it is served once (a second
   * GET is 404). 404 for unknown/expired ids.
   */
  take(pageId: string): PageEntry {
    const e = this.entry(pageId);
    if (hasOption(e.plan.spec, 'SINGLE_USE')) this.pages.delete(pageId);
    return e;
  }

  /** Registers the page that follows `pageId`'s rows, from the keyset cursor `after`; returns its id (see wayBack). */
  follow(pageId: string, e: PageEntry, after: unknown[]): string {
    return this.add({ ...e, after, offset: 0, prevPageId: wayBack(e, pageId) });
  }

  /** Runs page `pageId` (its entry `e`, see take) whole; registers the next page when more rows follow. */
  serve(pageId: string, e: PageEntry, limitOverride?: number): ServedPage {
    const limit = limitOverride && limitOverride > 0 ? limitOverride : e.limit;
    const page = runPage(this.host, e.plan, limit, e.after, e.offset, this.host.store, MAX_PAGE_BYTES);
    const nextPageId = page.after ? this.follow(pageId, e, page.after) : undefined;
    return { pageId, page, nextPageId, prevPageId: e.prevPageId, expiresAtMicros: e.expiresAtMicros, spec: e.spec };
  }

  /** GROUP_BY: registers the first page of groups of a query (see serveGroups); returns its id. */
  openGroups(plan: QueryPlan, expiresAtMicros: number, spec: unknown): string {
    return this.add(this.groupEntry(plan, expiresAtMicros, spec));
  }

  /** The entry of a query's first page of groups, not registered. */
  groupEntry(plan: QueryPlan, expiresAtMicros: number, spec: unknown): PageEntry {
    const limit = plan.spec.groupResultLimit ?? DEFAULT_GROUP_LIMIT;
    return { plan, limit, after: undefined, offset: 0, prevPageId: undefined, expiresAtMicros, spec, groups: { after: undefined } };
  }

  /**
   * Serves a page of groups (entry `e`, registered as `pageId` or not yet): for each group value,
   * registers the first page of that group's documents (the query AND the group field equal to the
   * value, sorted by `sortTerm`, `resultLimit` a page), and the next page of groups when more follow.
   */
  serveGroups(pageId: string | undefined, e: PageEntry): ServedGroups {
    const started = performance.now();
    const key = groupKeyOf(e.plan.spec);
    const { values, more } = runGroups(this.host, e.plan, key, e.limit, e.groups?.after);
    const docSpec = { ...e.plan.spec, options: (e.plan.spec.options ?? []).filter((o) => o !== 'GROUP_BY') };
    const groupPages = new Map<string, string>();
    for (const value of values) {
      const plan: QueryPlan = { ...planQuery(docSpec, groupClause(key, value)), ownerFilter: e.plan.ownerFilter, readScope: e.plan.readScope };
      groupPages.set(
        String(value),
        this.add({ plan, limit: docSpec.resultLimit ?? MAX_UNPAGED, after: undefined, offset: 0, prevPageId: undefined, expiresAtMicros: e.expiresAtMicros, spec: e.spec }),
      );
    }
    const nextPageId = more ? this.add({ ...e, groups: { after: values[values.length - 1] }, prevPageId: wayBack(e, pageId) }) : undefined;
    return { groupPages, nextPageId, queryTimeMicros: Math.max(1, Math.round((performance.now() - started) * 1000)) };
  }

  /** The read scope a page was opened with (auth: pages stay with their principal). */
  scopeOf(pageId: string): QueryPlan['readScope'] {
    return this.pages.get(pageId)?.plan.readScope;
  }

  /** Drops expired pages (host maintenance). */
  sweep(nowMicros: number): void {
    for (const [id, e] of this.pages) if (e.expiresAtMicros <= nowMicros) this.pages.delete(id);
  }

  get size(): number {
    return this.pages.size;
  }
}

/**
 * The `prevPageLink` of the page that follows page `pageId` (undefined: none). FORWARD_ONLY pages
 * have no way back, as in Xenon; nor have SINGLE_USE pages (the page before is gone once served).
 */
function wayBack(e: PageEntry, pageId: string | undefined): string | undefined {
  return hasOption(e.plan.spec, 'FORWARD_ONLY') || hasOption(e.plan.spec, 'SINGLE_USE') ? undefined : pageId;
}
