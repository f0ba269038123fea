import { Type, type Static } from '@sinclair/typebox';
import { fail } from '../core/errors.js';
import { longField, type Doc } from '../core/document.js';
import { defineStatefulService } from '../core/service-definition.js';

export const EXAMPLE_KIND = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';
const STRICT_UPDATE_KIND = 'com:vmware:xenon:services:common:ExampleService:StrictUpdateRequest';

/** Xenon's annotations of ExampleServiceState, as template options (see utility-handlers describeProperty). */
const AUTO_MERGE = ['AUTO_MERGE_IF_NOT_NULL'];
const ExampleSchema = Type.Object({
  keyValues: Type.Optional(Type.Record(Type.String(), Type.String(), { description: '@KEYVALUE', examples: [{ key1: 'value1', key2: 'value2' }], usageOptions: ['OPTIONAL', ...AUTO_MERGE] })),
  counter: Type.Optional(Type.Integer({ description: 'Version counter' })),
  sortedCounter: Type.Optional(Type.Integer({ indexingOptions: ['SORT'] })),
  name: Type.Optional(Type.String({ description: '@NAME', examples: ['myExample'], usageOptions: AUTO_MERGE, indexingOptions: ['SORT'] })),
  tags: Type.Optional(Type.Array(Type.String(), { description: '@TAGS', examples: [['tag1', 'tag2']], usageOptions: AUTO_MERGE, indexingOptions: ['EXPAND'] })),
  id: Type.Optional(Type.String({ usageOptions: ['ID', 'REQUIRED'] })),
  required: Type.Optional(Type.String({ usageOptions: ['REQUIRED'] })),
  isFromMigration: Type.Optional(Type.Boolean({ usageOptions: ['SERVICE_USE'], indexingOptions: ['EXCLUDE_FROM_SIGNATURE'] })),
});

export type ExampleState = Static<typeof ExampleSchema> & Doc;

/** Xenon field order: keyValues, counter, sortedCounter, name, tags, id, required, isFromMigration. */
const FIELD_ORDER = ['keyValues', 'counter', 'sortedCounter', 'name', 'tags', 'id', 'required', 'isFromMigration'] as const;
const ORDERED_FIELDS: ReadonlySet<string> = new Set(FIELD_ORDER);

/** `s` in Xenon's field order (other fields after, in their order), without null or undefined values. */
function ordered(s: Doc): ExampleState {
  const out: Doc = {};
  for (const k of FIELD_ORDER) if (s[k] !== undefined && s[k] !== null) out[k] = s[k];
  for (const k in s) if (!ORDERED_FIELDS.has(k) && s[k] !== undefined && s[k] !== null) out[k] = s[k];
  return out as ExampleState;
}

function numberish(body: Doc, name: string): number | undefined {
  if (body[name] === undefined || body[name] === null) return undefined;
  const n = longField(body, name);
  if (n === undefined) fail('VALIDATION', `${name} must be an integer`);
  // A Java long beyond 2^53 would be stored rounded (JavaScript numbers): refused instead.
  if (!Number.isSafeInteger(n)) fail('VALIDATION', `${name} must be an integer between -(2^53 - 1) and 2^53 - 1 (krypton stores JavaScript numbers)`);
  return n;
}

/** PATCH bodies are partial, so the schema cannot check them: wrong types are refused here. */
function checkPatchTypes(body: Doc): void {
  const present = (k: string) => body[k] !== undefined && body[k] !== null;
  if (present('name') && typeof body['name'] !== 'string') fail('VALIDATION', 'name must be a string');
  if (present('tags') && (!Array.isArray(body['tags']) || (body['tags'] as unknown[]).some((t) => typeof t !== 'string'))) fail('VALIDATION', 'tags must be an array of strings');
  if (present('keyValues')) {
    const kv = body['keyValues'];
    if (typeof kv !== 'object' || Array.isArray(kv) || Object.values(kv as Doc).some((v) => v !== null && typeof v !== 'string')) fail('VALIDATION', 'keyValues must map strings to strings');
  }
}

function unique(tags: unknown): string[] | undefined {
  return Array.isArray(tags) ? [...new Set(tags as string[])] : (tags as undefined);
}

/**
 * Xenon's ExampleService (`/core/examples`), written with krypton's service authoring API.
 * PATCH merges (counter never decreases, tags only grow, null in keyValues removes a key) and,
 * as in Xenon, sets documentExpirationTimeMicros to the body's value (omitted: cleared).
 */
export const ExampleService = defineStatefulService<ExampleState>({
  factoryLink: '/core/examples',
  documentKind: EXAMPLE_KIND,
  schema: ExampleSchema,
  versionRetentionLimit: 100,
  versionRetentionFloor: 20,
  fixedItemNameFields: ['keyValues'],
  create: ({ body, fromMigration }) => {
    if (body.name === undefined || body.name === null) fail('VALIDATION', 'name is required');
    // A migrated document keeps the source's fields exactly (no defaults added), so green equals blue.
    // Built in Xenon's field order at once (what ordered() would make of it, without a second copy).
    const state: Doc = {};
    const keyValues = body.keyValues ?? (fromMigration ? undefined : {});
    if (keyValues != null) state['keyValues'] = keyValues;
    const counter = numberish(body, 'counter');
    if (counter !== undefined) state['counter'] = counter;
    const sortedCounter = numberish(body, 'sortedCounter');
    if (sortedCounter !== undefined) state['sortedCounter'] = sortedCounter;
    state['name'] = body.name;
    const tags = unique(body.tags) ?? (fromMigration ? undefined : []);
    if (tags != null) state['tags'] = tags;
    if (body.id != null) state['id'] = body.id;
    if (body.required != null) state['required'] = body.required;
    state['isFromMigration'] = fromMigration;
    // Fields the schema does not name follow, in the body's order (the schema then judges them).
    for (const k in body) if (!ORDERED_FIELDS.has(k) && body[k] != null) state[k] = body[k];
    return state as ExampleState;
  },
  put: ({ current, body }) => {
    if (current.name != null && (body['name'] === undefined || body['name'] === null)) fail('VALIDATION', 'name must be set');
    const counter = numberish(body, 'counter');
    const next: Doc = { ...body, tags: unique(body['tags']) };
    if (counter !== undefined) next['counter'] = Math.max(counter, current.counter ?? counter);
    for (const k of Object.keys(next)) if (k.startsWith('document')) delete next[k];
    return ordered(next);
  },
  patch: ({ current, body }) => {
    if (body['kind'] === STRICT_UPDATE_KIND) {
      if (body['name'] == null) fail('VALIDATION', 'name is required');
      const v = longField(body, 'documentVersion');
      if (v !== current.documentVersion) fail('VALIDATION', `Current version ${String(current.documentVersion)}. Request version ${String(v)}`);
      return ordered({ ...current, name: body['name'] });
    }
    checkPatchTypes(body);
    const next: Doc = { ...current };
    if (typeof body['name'] === 'string') next['name'] = body['name'];
    const counter = numberish(body, 'counter');
    if (counter !== undefined) next['counter'] = Math.max(counter, current.counter ?? counter);
    if (Array.isArray(body['tags'])) next['tags'] = [...new Set([...(current.tags ?? []), ...(body['tags'] as string[])])];
    if (body['keyValues'] && typeof body['keyValues'] === 'object') {
      const kv: Record<string, string> = { ...(current.keyValues ?? {}) };
      for (const [k, v] of Object.entries(body['keyValues'] as Doc)) {
        if (v === null) delete kv[k];
        else kv[k] = v as string;
      }
      next['keyValues'] = kv;
    }
    next['documentExpirationTimeMicros'] = longField(body, 'documentExpirationTimeMicros') ?? 0;
    return ordered(next) as ExampleState;
  },
});
