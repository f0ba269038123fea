import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { DocumentView, matchesQuery } from '../auth/query-matcher.js';
import { FactoryService } from '../services/factory-service.js';
import type { WriteOp } from '../store/write-ops.js';
import { hasOption, isExpanded, resultEnd, shapeDocument } from './query-engine.js';
import type { QuerySpecification } from './query-types.js';

/** Xenon's `results.continuousResults`: documents seen matching since the task started. */
export interface ContinuousCounts {
  documentCountAdded: number;
  documentCountUpdated: number;
  documentCountDeleted: number;
}

/** One committed version that matches a task's query. */
export interface MatchedUpdate {
  link: string;
  action: string;
  json: string;
}

/** A live CONTINUOUS query task. */
export interface ContinuousTask {
  link: string;
  spec: QuerySpecification;
  /** With auth on: may the task's creator read this document now? undefined: auth is off. */
  mayRead: ((doc: Doc) => boolean) | undefined;
  /** Called with each matching update, in commit order. */
  matched: (update: MatchedUpdate) => void;
}

/** A CONTINUOUS task's `results` after each update: that document, the counts so far, and for COUNT the running count. */
export class ContinuousResults {
  readonly counts: ContinuousCounts = { documentCountAdded: 0, documentCountUpdated: 0, documentCountDeleted: 0 };

  constructor(
    private readonly spec: QuerySpecification,
    private readonly owner: string,
    /** COUNT: the number of matching documents (the initial count, + added − deleted). */
    private documentCount: number,
  ) {}

  /** Counts `u` and answers the task's new `results` (JSON). */
  next(u: MatchedUpdate): string {
    const counting = hasOption(this.spec, 'COUNT');
    if (u.action === 'DELETE') {
      this.counts.documentCountDeleted++;
      this.documentCount = Math.max(0, this.documentCount - 1);
    } else if (u.action === 'POST') {
      this.counts.documentCountAdded++;
      this.documentCount++;
    } else this.counts.documentCountUpdated++;
    const parts = [`"documentLinks":${counting ? '[]' : JSON.stringify([u.link])}`];
    if (isExpanded(this.spec) && !counting) parts.push(`"documents":{${JSON.stringify(u.link)}:${shapeDocument(this.spec, u.json)}}`);
    parts.push(`"continuousResults":${JSON.stringify(this.counts)}`);
    parts.push(resultEnd(counting ? this.documentCount : 1, 1, { owner: this.owner }));
    return `{${parts.join(',')}}`;
  }
}

/**
 * CONTINUOUS query tasks (xenon-core-wire.md §8): after its initial results a task stays STARTED
 * until it expires or is deleted, and each index update whose new version matches its query
 * PATCHes it: `results` then holds that document (`documentLinks`, and `documents` when expanded)
 * and `continuousResults` the counts so far of documents created (added), updated and deleted while
 * matching. A COUNT task's `documentCount` stays the running number of matches. The task's
 * subscribers (`<task>/subscriptions`) are sent each PATCH.
 *
 * Updates are matched in memory (auth/query-matcher.ts: the same semantics as the compiled SQL)
 * against the new version, as Xenon's index does; a version that does not match is not reported.
 * The index hook sees every committed write (requests, migration imports, node-group replicas).
 */
export class ContinuousQueries {
  private readonly tasks = new Map<string, ContinuousTask>();
  private watching = false;

  constructor(private readonly host: Host) {}

  get size(): number {
    return this.tasks.size;
  }

  add(task: ContinuousTask): void {
    if (!this.watching) {
      this.watching = true;
      this.host.store.commits.onCommitted((ops) => {
        if (this.tasks.size > 0) this.committed(ops);
      });
    }
    this.tasks.set(task.link, task);
  }

  remove(link: string): void {
    this.tasks.delete(link);
  }

  private committed(ops: readonly WriteOp[]): void {
    for (const op of ops) {
      if (op.t !== 'write') continue;
      const v = op.v;
      let view: DocumentView | undefined;
      for (const task of this.tasks.values()) {
        view ??= new DocumentView(JSON.parse(v.json) as Doc, fixedItemNameFields(this.host, v.factory));
        if (!matchesQuery(task.spec.query!, view)) continue;
        if (task.mayRead && !task.mayRead(view.doc)) continue;
        task.matched({ link: v.link, action: v.action, json: v.json });
      }
    }
  }
}

/** The FIXED_ITEM_NAME fields of the factory a document belongs to (how its fields are indexed). */
function fixedItemNameFields(host: Host, factoryLink: string): readonly string[] {
  const factory = host.service(factoryLink);
  return factory instanceof FactoryService ? (factory.def.fixedItemNameFields ?? []) : [];
}
