import { fail } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import { mapLimit } from '../core/map-limit.js';
import { call, Semaphore } from './migration-http.js';
import { timeout, type RunContext } from './migration-runner.js';

/**
 * Calls in flight at once, per run (its slices and source nodes together): half the client's
 * connections to one host (16), so a slow or hung transformation service leaves connections to
 * that host for every other task's calls.
 */
const TRANSFORM_CONCURRENCY = 8;
const callSlots = new WeakMap<RunContext, Semaphore>();

/**
 * Calls the transformation service once per document (or per version, with ALL_VERSIONS) on a
 * destination node. Contract v1 (default): `{ "<doc json>": "<factory>" }` → `{ "<json>": "<factory>" }`;
 * v2 (USE_TRANSFORM_REQUEST): TransformRequest → TransformResponse. Returns factory → groups of
 * documents (a group is one document's versions). A failing call fails the run with its error.
 */
export async function transformDocuments(ctx: RunContext, versions: Doc[], destinations: string[]): Promise<{ groups: Map<string, Doc[][]>; empty: number }> {
  const { state } = ctx;
  const v2 = state.migrationOptions.includes('USE_TRANSFORM_REQUEST');
  const node = destinations[Math.floor(Math.random() * destinations.length)]!;
  const url = `${node}${state.transformationServiceLink}`;
  state.progress.beforeTransformDocumentCount += versions.length;
  const slots = callSlots.get(ctx) ?? new Semaphore(TRANSFORM_CONCURRENCY);
  callSlots.set(ctx, slots);
  const answers = await mapLimit(versions, TRANSFORM_CONCURRENCY, async (doc) => {
    const json = JSON.stringify(doc);
    const body = v2 ? { originalDocument: json, destinationLink: state.destinationFactoryLink } : { [json]: state.destinationFactoryLink };
    const res = await slots.run(() => call<Doc>(ctx.host.client, url, { method: 'POST', headers: ctx.headers(), body, ...timeout(ctx) }, `transformation ${url}`, ctx.signal));
    const map = v2 ? (res?.['destinationLinks'] as Doc | undefined) : res;
    if (!map || typeof map !== 'object') fail('VALIDATION', `transformation ${url} returned no ${v2 ? 'destinationLinks' : 'map'}`);
    return Object.entries(map).map(([text, factory]) => {
      if (typeof factory !== 'string') fail('VALIDATION', `transformation ${url} returned a non-string factory link`);
      let parsed: Doc;
      try {
        parsed = JSON.parse(text) as Doc;
      } catch {
        fail('VALIDATION', `transformation ${url} returned a key that is not a JSON document`);
      }
      return { factory, doc: parsed };
    });
  });
  // Versions of one source document stay together per (factory, link) so history replays in order.
  const out = new Map<string, Map<string, Doc[]>>();
  let count = 0;
  for (const entries of answers) {
    for (const { factory, doc } of entries) {
      const byLink = out.get(factory) ?? new Map<string, Doc[]>();
      const key = String(doc['documentSelfLink'] ?? `#${count}`);
      const group = byLink.get(key) ?? [];
      group.push(doc);
      byLink.set(key, group);
      out.set(factory, byLink);
      count++;
    }
  }
  state.progress.afterTransformDocumentCount += count;
  const empty = answers.filter((a) => a.length === 0).length;
  return { groups: new Map([...out].map(([f, m]) => [f, [...m.values()]])), empty };
}
