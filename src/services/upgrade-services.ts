import { createHash } from 'node:crypto';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { DEFAULT_DRAIN_TIMEOUT_MICROS, WRITE_FREEZE_LINK } from '../core/write-freeze.js';
import { contentText, excludedFromSignature } from './content-signature.js';
import { SimpleService } from './core-services.js';
import { FactoryService } from './factory-service.js';

export const FACTORY_DIGEST_LINK = '/management/factory-digest';
const FACTORY_DIGEST_KIND = 'krypton:FactoryDigest';
/** Rows of the index read per turn by a digest (the host serves other requests in between). */
const DIGEST_BATCH = 5_000;

/**
 * `/management/write-freeze`: GET the state; PUT (or PATCH) `{"frozen": true, "reason": "…",
 * "drainTimeoutMicros": N}` freezes this host's document writes, `{"frozen": false}` ends it. The
 * answer to a freeze comes once the writes admitted before it are done (`drained`), or after the
 * drain timeout (`drained: false`, `writesInFlight` > 0).
 */
export function writeFreezeService(host: Host): Service {
  const change = async (op: Operation): Promise<Reply> => {
    const body = op.bodyObject();
    if (!body || typeof body['frozen'] !== 'boolean') fail('VALIDATION', 'body must be {"frozen": true|false, "reason"?: string, "drainTimeoutMicros"?: integer}');
    const reason = body['reason'] ?? '';
    if (typeof reason !== 'string' || reason.length > 1000) fail('VALIDATION', 'reason must be a string of at most 1,000 characters');
    const timeout = body['drainTimeoutMicros'] ?? DEFAULT_DRAIN_TIMEOUT_MICROS;
    if (!Number.isSafeInteger(timeout) || (timeout as number) < 0) fail('VALIDATION', 'drainTimeoutMicros must be a non-negative integer');
    if (!body['frozen']) {
      await host.writeFreeze.unfreeze();
      return { status: 200, body: host.writeFreeze.describe() };
    }
    const drain = await host.writeFreeze.freeze(reason, timeout as number);
    return { status: 200, body: { ...host.writeFreeze.describe(), drained: drain.drained, drainedWriteCount: drain.drainedWrites, drainMicros: drain.drainMicros } };
  };
  return new SimpleService(WRITE_FREEZE_LINK, {
    GET: () => ({ status: 200, body: host.writeFreeze.describe() }),
    PUT: change,
    PATCH: change,
  });
}

/**
 * `/management/factory-digest?factoryLink=/core/examples[&asOfMicros=T][&fromUpdateTimeMicros=A]
 * [&toUpdateTimeMicros=B][&list=true]`: the live documents of a factory in this host's index (not
 * deleted, not expired at T, default now) updated in [A, B) (default: all), their count, the oldest
 * and newest update times, and a SHA-256 over every document's id (its link without the factory)
 * and `documentUpdateTimeMicros`, in update-time order. A migration keeps both, so a destination
 * that holds exactly the source's documents has the same digest, also under another factory link
 * or after a transformation that keeps links. `list=true` adds the first LIST_LIMIT `[id, update
 * time]` pairs (`documents`, `listTruncated`): with a time range, what tells two sides apart.
 * `split=N` (2 to 64) adds `splitUpdateTimesMicros`: update times that cut the range into N parts
 * of about as many documents each, for a bisection that halves documents rather than time.
 * `content=true` hashes each document's content too (contentText: its user fields, as a migration
 * without transformation keeps them), and a listed document carries the first 16 hex digits of its
 * content's SHA-256. Every acknowledged write is read.
 */
export function factoryDigestService(host: Host): Service {
  const long = (op: Operation, name: string, fallback: number): number => {
    const text = op.query.get(name);
    const v = text === undefined ? fallback : Number(text);
    if (!Number.isSafeInteger(v) || v < 0) fail('VALIDATION', `${name} must be a non-negative integer`);
    return v;
  };
  return new SimpleService(FACTORY_DIGEST_LINK, {
    GET: async (op) => {
      const factoryLink = op.query.get('factoryLink');
      if (!factoryLink) fail('VALIDATION', 'factoryLink is required, e.g. ?factoryLink=/core/examples');
      const factory = host.service(factoryLink);
      if (!(factory instanceof FactoryService)) fail('NOT_FOUND', `no factory at ${factoryLink}`);
      const content = op.query.get('content') === 'true' ? excludedFromSignature(factory.def.schema) : undefined;
      const range = { asOf: long(op, 'asOfMicros', host.clock.nowMicros()), from: long(op, 'fromUpdateTimeMicros', 0), to: long(op, 'toUpdateTimeMicros', Number.MAX_SAFE_INTEGER) };
      const split = long(op, 'split', 0);
      if (split > 64) fail('VALIDATION', 'split must be at most 64');
      return { status: 200, body: await digest(host, factoryLink, range, op.query.get('list') === 'true', split, content) };
    },
  });
}

/** Pairs a listing digest returns at most. */
const LIST_LIMIT = 1000;
/** Update times a split digest keeps, at most, to choose its split points from. */
const MAX_MARKS = 512;

/**
 * `content`: hash each document's content too, without these user fields (see contentText);
 * undefined: ids and update times only.
 */
async function digest(
  host: Host,
  factoryLink: string,
  range: { asOf: number; from: number; to: number },
  list: boolean,
  split: number,
  content: ReadonlySet<string> | undefined,
): Promise<Record<string, unknown>> {
  await host.store.commits.settle();
  const started = host.clock.nowMicros();
  const hash = createHash('sha256');
  const prefix = factoryLink.length + 1;
  const { asOf } = range;
  let count = 0;
  let oldest = 0;
  let newest = 0;
  const listed: Array<[string, number] | [string, number, string]> = [];
  /** Every `step`-th document's update time, for split points: at most MAX_MARKS, `step` doubling as needed. */
  let marks: number[] = [];
  let step = 1;
  // (from, '') sorts before every link updated at `from`: the range starts there inclusively.
  let after: [number, string] = [range.from, ''];
  const sql = `SELECT link, update_time, action, expiration${content ? ', json' : ''} FROM docs
     WHERE factory = ? AND latest = 1 AND (update_time, link) > (?, ?) AND update_time < ?
     ORDER BY update_time, link LIMIT ${DIGEST_BATCH}`;
  for (;;) {
    const rows = host.store.rows(sql, [factoryLink, after[0], after[1], range.to]) as Array<[string, number, string, number, string?]>;
    // One hash update per batch: its lines joined (a native call per row cost a third of the time).
    let text = '';
    for (const [link, updateTime, action, expiration, json] of rows) {
      if (action === 'DELETE' || (expiration > 0 && expiration <= asOf)) continue;
      const id = link.slice(prefix);
      if (content) {
        const c = contentText(json!, content);
        text += `${id}\t${updateTime}\t${c}\n`;
        if (list && listed.length < LIST_LIMIT) listed.push([id, updateTime, createHash('sha256').update(c).digest('hex').slice(0, 16)]);
      } else {
        text += `${id}\t${updateTime}\n`;
        if (list && listed.length < LIST_LIMIT) listed.push([id, updateTime]);
      }
      if (split > 1 && count % step === 0) {
        marks.push(updateTime);
        if (marks.length >= MAX_MARKS) {
          marks = marks.filter((_, k) => k % 2 === 0);
          step *= 2;
        }
      }
      if (count === 0) oldest = updateTime;
      newest = updateTime;
      count++;
    }
    hash.update(text);
    if (rows.length < DIGEST_BATCH) break;
    const last = rows[rows.length - 1]!;
    after = [last[1], last[0]];
    await yieldTurn();
  }
  const listing = list ? { documents: listed, listTruncated: count > listed.length } : {};
  // Update times that cut the range into `split` parts of about as many documents each.
  const splits =
    split > 1
      ? { splitUpdateTimesMicros: [...new Set(Array.from({ length: split - 1 }, (_, k) => marks[Math.floor(((k + 1) * marks.length) / split)]!))].filter((t) => t !== undefined && t > range.from) }
      : {};
  return {
    factoryLink,
    documentCount: count,
    digest: hash.digest('hex'),
    ...(content ? { content: true } : {}),
    oldestUpdateTimeMicros: oldest,
    newestUpdateTimeMicros: newest,
    asOfMicros: asOf,
    ...(range.from > 0 ? { fromUpdateTimeMicros: range.from } : {}),
    ...(range.to < Number.MAX_SAFE_INTEGER ? { toUpdateTimeMicros: range.to } : {}),
    ...listing,
    ...splits,
    durationMicros: host.clock.nowMicros() - started,
    hostId: host.id,
    documentKind: FACTORY_DIGEST_KIND,
  };
}
