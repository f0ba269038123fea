import type { Host } from '../core/host.js';
import { fail } from '../core/errors.js';
import { hasOption, runPage, type QueryPage, type QueryPlan } from './query-engine.js';

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

  private add(e: PageEntry): string {
    const id = String(this.host.clock.nowMicros());
    this.pages.set(id, e);
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
   * Registers the page that follows `pageId`'s rows, from the keyset cursor `after`; returns its id.
   * FORWARD_ONLY pages have no way back (no `prevPageLink`), as in Xenon.
   */
  follow(pageId: string, e: PageEntry, after: unknown[]): string {
    return this.add({ ...e, after, offset: 0, prevPageId: hasOption(e.plan.spec, 'FORWARD_ONLY') ? undefined : pageId });
  }

  /** Runs a page whole; registers the next page when more rows follow. 404 for unknown/expired ids. */
  serve(pageId: string, limitOverride?: number): ServedPage {
    const e = this.entry(pageId);
    const limit = limitOverride && limitOverride > 0 ? limitOverride : e.limit;
    const page = runPage(this.host, e.plan, limit, e.after, e.offset);
    const nextPageId = page.after ? this.follow(pageId, e, page.after) : undefined;
    return { pageId, page, nextPageId, prevPageId: e.prevPageId, expiresAtMicros: e.expiresAtMicros, spec: e.spec };
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
