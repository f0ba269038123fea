import type { IncomingHttpHeaders } from 'node:http';
import { toServiceErrorResponse } from '../core/errors.js';
import { mapLimit } from '../core/map-limit.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { JsonStream, Operation, RawJson } from '../core/operation.js';
import type { QuerySpecification } from './query-types.js';

/** Selected-link GETs in flight at once for one page (EXPAND_LINKS). */
const EXPAND_CONCURRENCY = 16;

/** The request headers a selected-link GET carries over from the query: who asks. */
const CALLER_HEADERS = ['x-xenon-auth-token', 'cookie', 'authorization'] as const;

/**
 * SELECT_LINKS: the values of the link fields `spec.linkTerms` names in one document, as Xenon
 * reports them: `field` for a string, `field.item.<i>` for each string of a collection. Other
 * values (absent, null, numbers, objects) are left out.
 */
export function selectLinks(spec: QuerySpecification, doc: Doc): Record<string, string> {
  const out: Record<string, string> = {};
  for (const term of spec.linkTerms ?? []) {
    const name = term.propertyName;
    const value = doc[name];
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (typeof item === 'string') out[`${name}.item.${i}`] = item;
      });
    }
  }
  return out;
}

/** Every distinct link a page selected, in first-seen order. */
export function distinctSelected(perDocument: ReadonlyMap<string, Readonly<Record<string, string>>>): string[] {
  const seen = new Set<string>();
  for (const links of perDocument.values()) for (const l of Object.values(links)) seen.add(l);
  return [...seen];
}

/**
 * EXPAND_LINKS: GETs each selected link through this host, as the query's caller (its token goes
 * along, so what the caller may not read answers 403), and returns link → the JSON the GET
 * answered: the document, or the ServiceErrorResponse of a failed GET (as Xenon puts it there).
 */
export async function expandSelected(host: Host, links: readonly string[], caller: IncomingHttpHeaders): Promise<Map<string, string>> {
  const headers: Record<string, string> = {};
  for (const h of CALLER_HEADERS) {
    const v = caller[h];
    if (typeof v === 'string') headers[h] = v;
  }
  // getJson never rejects (a failed GET answers its error), so every link gets its answer.
  const answers = await mapLimit(links, EXPAND_CONCURRENCY, (link) => getJson(host, link, headers));
  return new Map(links.map((l, i) => [l, answers[i]!]));
}

async function getJson(host: Host, link: string, headers: Record<string, string>): Promise<string> {
  try {
    const q = link.indexOf('?');
    const path = q < 0 ? link : link.slice(0, q);
    if (!path.startsWith('/')) return JSON.stringify(toServiceErrorResponse(new Error(`not a link of this host: ${link}`)));
    const op = new Operation({
      action: 'GET',
      path,
      rawQuery: q < 0 ? '' : link.slice(q + 1),
      headers,
      bodyText: undefined,
      contentType: undefined,
      uri: () => `${host.uri}${link}`,
      remoteAddress: () => undefined,
    });
    const reply = await host.dispatch(op);
    return await bodyText(reply.body);
  } catch (err) {
    return JSON.stringify(toServiceErrorResponse(err));
  }
}

async function bodyText(body: unknown): Promise<string> {
  if (body instanceof RawJson) return body.text;
  if (body instanceof JsonStream) {
    let text = '';
    for await (const chunk of body.chunks) text += chunk;
    return text;
  }
  return JSON.stringify(body ?? {});
}
