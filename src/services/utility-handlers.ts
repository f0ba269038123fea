import { randomUUID } from 'node:crypto';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import type { Operation, Reply } from '../core/operation.js';
import type { StatefulServiceDefinition } from '../core/service-definition.js';
import { MAX_CLIENT_STATS, MAX_STAT_NAME_LENGTH } from '../core/service.js';

const CONFIG_KIND = 'com:vmware:xenon:common:ServiceConfiguration';
const CHILD_OPTIONS = ['PERSISTENCE', 'REPLICATION', 'OWNER_SELECTION', 'INSTRUMENTATION', 'CONCURRENT_GET_HANDLING', 'FACTORY_ITEM'];

/** `P/config` (Xenon §10.3). */
export function configDocument(host: Host, def: StatefulServiceDefinition, selfLink: string, isFactory: boolean): Doc {
  const doc: Doc = {
    maintenanceIntervalMicros: host.options.maintenanceIntervalMicros,
    operationQueueLimit: 10000,
    epoch: 0,
    version: 0,
    versionRetentionLimit: def.versionRetentionLimit ?? 1000,
    versionRetentionFloor: def.versionRetentionFloor ?? 500,
    peerNodeSelectorPath: '/core/node-selectors/default',
    documentIndexPath: '/core/document-index',
    options: isFactory ? ['FACTORY', 'REPLICATION', 'INSTRUMENTATION', ...(def.idempotentPost ? ['IDEMPOTENT_POST'] : [])] : CHILD_OPTIONS,
  };
  if (isFactory) doc['childOptions'] = CHILD_OPTIONS;
  return { ...doc, documentVersion: 0, documentKind: CONFIG_KIND, documentSelfLink: selfLink, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: host.id };
}

/**
 * `P/template` and OPTIONS (Xenon §10.2): an instance of the state type filled with example values,
 * with its `documentDescription` derived from the service's TypeBox schema (see describeProperty)
 * plus the built-in fields' descriptions, as Xenon's ServiceDocumentDescription.Builder makes them.
 */
export function templateDocument(host: Host, def: StatefulServiceDefinition, isFactory: boolean): Doc {
  const own = describeFields(def.schema as JsonSchema | undefined, new Set(def.fixedItemNameFields ?? [])) ?? {};
  const propertyDescriptions = withBuiltins(own);
  const instance: Doc = {};
  for (const [name, d] of Object.entries(own)) if ((d as Doc)['exampleValue'] !== undefined) instance[name] = (d as Doc)['exampleValue'];
  const child: Doc = {
    ...instance,
    documentDescription: {
      propertyDescriptions,
      documentIndexingOptions: [],
      serviceCapabilities: CHILD_OPTIONS,
      versionRetentionLimit: def.versionRetentionLimit ?? 1000,
      versionRetentionFloor: def.versionRetentionFloor ?? 500,
      serializedStateSizeLimit: 32768,
    },
    documentVersion: 0,
    documentKind: def.documentKind,
    documentSelfLink: `${def.factoryLink}/child-template`,
    documentUpdateTimeMicros: 0,
    documentExpirationTimeMicros: 0,
    documentOwner: host.id,
  };
  if (!isFactory) return child;
  const link = `${def.factoryLink}/child-template`;
  return { documentLinks: [link], documents: { [link]: child }, documentCount: 1, documentVersion: 0, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: host.id };
}

/** A service's property descriptions and the built-in fields', sorted by name as Xenon's TreeMap keeps them. */
function withBuiltins(own: Doc): Doc {
  const out: Doc = {};
  for (const name of [...Object.keys(own), ...Object.keys(BUILTIN_DESCRIPTIONS)].sort()) out[name] = own[name] ?? BUILTIN_DESCRIPTIONS[name];
  return out;
}

/** The template of a service that has no state schema: its built-in fields described. */
function builtinTemplate(host: Host, selfLink: string): Doc {
  return {
    documentDescription: {
      propertyDescriptions: withBuiltins({}),
      documentIndexingOptions: [],
      serviceCapabilities: [],
      versionRetentionLimit: 1000,
      versionRetentionFloor: 500,
      serializedStateSizeLimit: 32768,
    },
    documentVersion: 0,
    documentSelfLink: selfLink,
    documentUpdateTimeMicros: 0,
    documentExpirationTimeMicros: 0,
    documentOwner: host.id,
  };
}

/**
 * The parts of a (TypeBox) JSON schema a template describes. `indexingOptions` and `usageOptions`
 * are krypton's keywords for Xenon's @PropertyOptions / @UsageOption annotations, e.g.
 * `Type.String({ usageOptions: ['AUTO_MERGE_IF_NOT_NULL'], indexingOptions: ['SORT'] })`.
 */
interface JsonSchema {
  type?: string;
  description?: string;
  examples?: unknown[];
  default?: unknown;
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  indexingOptions?: string[];
  usageOptions?: string[];
}

/** Xenon's enum orders: an EnumSet serializes in declaration order. */
const INDEXING_ORDER = ['EXPAND', 'FIXED_ITEM_NAME', 'STORE_ONLY', 'TEXT', 'CASE_INSENSITIVE', 'EXCLUDE_FROM_SIGNATURE', 'SORT'];
const USAGE_ORDER = ['SINGLE_ASSIGNMENT', 'OPTIONAL', 'SERVICE_USE', 'INFRASTRUCTURE', 'AUTO_MERGE_IF_NOT_NULL', 'ID', 'LINK', 'LINKS', 'SENSITIVE', 'REQUIRED'];

function enumSet(values: Iterable<string>, order: readonly string[]): string[] {
  const set = new Set(values);
  return [...order.filter((v) => set.has(v)), ...[...set].filter((v) => !order.includes(v))];
}

/** Xenon PropertyDescriptions of an object schema's fields; undefined when it names none. */
function describeFields(schema: JsonSchema | undefined, fixedItemNames: ReadonlySet<string> = new Set()): Doc | undefined {
  if (!schema?.properties) return undefined;
  const required = new Set(schema.required ?? []);
  const out: Doc = {};
  for (const [name, p] of Object.entries(schema.properties)) out[name] = describeProperty(name, p, required.has(name), fixedItemNames.has(name));
  return out;
}

/** Xenon's example value of a simple type when the schema gives none (ServiceDocumentDescription.Builder). */
const TYPE_EXAMPLES: Readonly<Record<string, unknown>> = { BOOLEAN: false, LONG: 0, DOUBLE: 0, STRING: 'example string' };

/**
 * One field as Xenon's PropertyDescription, in its field order: typeName (PODO with fieldDescriptions
 * for an object of named fields, MAP for a record, COLLECTION with elementDescription for an array,
 * ENUM with enumValues for a union of string literals); exampleValue (the schema's first example or
 * default, else Xenon's: a UUID for an ID, `some/service` for a `…Link`, the type's zero or
 * "example string"); indexingOptions and usageOptions (the schema's, plus REQUIRED when required,
 * LINK/LINKS by name, EXPAND + FIXED_ITEM_NAME for a fixedItemNameFields field); documentation.
 */
function describeProperty(name: string | undefined, p: JsonSchema, required: boolean, fixedItemName = false): Doc {
  const typeName = typeNameOf(p);
  const usage = [...(p.usageOptions ?? [])];
  const indexing = [...(p.indexingOptions ?? [])];
  if (name?.endsWith('Link')) usage.push('LINK');
  if (name?.endsWith('Links')) {
    usage.push('LINKS');
    indexing.push('EXPAND');
  }
  if (required) usage.push('REQUIRED');
  if (fixedItemName) indexing.push('EXPAND', 'FIXED_ITEM_NAME');
  const usageOptions = enumSet(usage, USAGE_ORDER);
  const indexingOptions = enumSet(indexing, INDEXING_ORDER);
  const d: Doc = { typeName };
  const example =
    p.examples?.[0] ?? p.default ?? (usageOptions.includes('ID') ? randomUUID() : usageOptions.includes('LINK') ? 'some/service' : typeName === 'ENUM' ? undefined : TYPE_EXAMPLES[typeName]);
  if (example !== undefined) d['exampleValue'] = example;
  d['indexingOptions'] = indexingOptions;
  d['usageOptions'] = usageOptions;
  if (p.description) d['propertyDocumentation'] = p.description;
  const fields = describeFields(p);
  if (fields) d['fieldDescriptions'] = fields;
  const element =
    p.type === 'array'
      ? p.items
      : p.type === 'object' && !p.properties
        ? (Object.values(p.patternProperties ?? {})[0] ?? (typeof p.additionalProperties === 'object' ? p.additionalProperties : undefined))
        : undefined;
  if (element) d['elementDescription'] = describeProperty(undefined, element, false);
  const literals = p.anyOf?.map((a) => a.const);
  if (literals && literals.length > 0 && literals.every((v) => typeof v === 'string')) d['enumValues'] = literals;
  return d;
}

/**
 * The built-in fields' descriptions, as Xenon's builder makes them from ServiceDocument: every one
 * INFRASTRUCTURE; all but the expiration excluded from the signature; the expiration merged by PATCH;
 * links LINK, the owner ID; no example for the epoch, owner, principal, source and transaction.
 * (documentUpdateAction and documentDescription are not described, as in Xenon.)
 */
const BUILTIN_DESCRIPTIONS: Readonly<Record<string, Doc>> = Object.freeze(
  Object.fromEntries(
    (
      [
        ['documentVersion', 'LONG', 0],
        ['documentEpoch', 'LONG', undefined],
        ['documentKind', 'STRING', 'example string'],
        ['documentSelfLink', 'STRING', 'some/service'],
        ['documentUpdateTimeMicros', 'LONG', 0],
        ['documentExpirationTimeMicros', 'LONG', 0],
        ['documentOwner', 'STRING', undefined],
        ['documentSourceLink', 'STRING', undefined],
        ['documentAuthPrincipalLink', 'STRING', undefined],
        ['documentTransactionId', 'STRING', undefined],
      ] as const
    ).map(([name, typeName, example]) => {
      const expiration = name === 'documentExpirationTimeMicros';
      const usage = ['INFRASTRUCTURE', ...(expiration ? ['AUTO_MERGE_IF_NOT_NULL'] : []), ...(name === 'documentOwner' ? ['ID'] : []), ...(name.endsWith('Link') ? ['LINK'] : [])];
      const d: Doc = { typeName };
      if (example !== undefined) d['exampleValue'] = example;
      d['indexingOptions'] = expiration ? [] : ['EXCLUDE_FROM_SIGNATURE'];
      d['usageOptions'] = usage;
      return [name, d];
    }),
  ),
);

function typeNameOf(p: JsonSchema): string {
  if (p.anyOf?.length && p.anyOf.every((a) => typeof a.const === 'string')) return 'ENUM';
  switch (p.type) {
    case 'string':
      return 'STRING';
    case 'integer':
      return 'LONG';
    case 'number':
      return 'DOUBLE';
    case 'boolean':
      return 'BOOLEAN';
    case 'array':
      return 'COLLECTION';
    case 'object':
      return p.properties ? 'PODO' : 'MAP';
    default:
      return 'PODO';
  }
}

/** The utility suffixes every service answers: stats, available, config, subscriptions, ui. */
export async function genericUtility(host: Host, link: string, op: Operation, suffix: string): Promise<Reply> {
  const stats = host.statsFor(link);
  const now = host.clock.nowMicros();
  switch (suffix) {
    case 'stats':
      if (op.action === 'GET') return { status: 200, body: stats.toDocument(`${link}/stats`, host.id, statsFilter(op)) };
      if (op.action === 'POST' || op.action === 'PATCH' || op.action === 'PUT') return setStat(op, stats, now, false);
      // Xenon answered 500 (an internal error) here; this is a client error.
      return fail('METHOD_NOT_ALLOWED', `Action not supported on stats: ${op.action}`);
    case 'available': {
      if (op.action === 'GET') {
        const v = stats.get('isAvailable');
        if (v === undefined || v === 1) return { status: 200 };
        return fail('UNAVAILABLE', 'request failed with 503, no additional details provided');
      }
      return setStat(op, stats, now, true);
    }
    case 'config':
      if (op.action !== 'GET') return fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
      return {
        status: 200,
        body: {
          maintenanceIntervalMicros: host.options.maintenanceIntervalMicros,
          operationQueueLimit: 10000,
          epoch: 0,
          version: 0,
          options: [],
          documentVersion: 0,
          documentKind: CONFIG_KIND,
          documentSelfLink: `${link}/config`,
          documentUpdateTimeMicros: 0,
          documentExpirationTimeMicros: 0,
          documentOwner: host.id,
        },
      };
    case 'subscriptions':
      // Notifications follow the index: documents of factories, and factories (their children's creations).
      if (!isFactory(host, link) && !isFactory(host, link.slice(0, link.lastIndexOf('/')))) {
        if (op.action === 'GET') return { status: 200, body: host.subscriptions.document(link) };
        return fail('METHOD_NOT_ALLOWED', `subscriptions are kept for factories and their documents; ${link} is neither`);
      }
      return host.subscriptions.handle(link, op, () => {
        const v = host.store.getLatest(link);
        return v && v.action !== 'DELETE' ? v.json : undefined;
      });
    case 'template':
      // A service without a state schema (a node group, the query task factory): the built-in fields only.
      if (op.action !== 'GET') return fail('METHOD_NOT_ALLOWED', `Action not supported on template: ${op.action}`);
      return { status: 200, body: JSON.stringify(builtinTemplate(host, `${link}/template`), null, 2) };
    case 'ui':
      if (op.action !== 'GET') return fail('VALIDATION', 'Action not supported');
      return { status: 302, headers: { location: `/core/ui/default/#${link}/home` } };
    default:
      return fail('NOT_FOUND', `Service not found: ${op.uri}`);
  }
}

function isFactory(host: Host, link: string): boolean {
  return host.service(link)?.handleChild !== undefined;
}

function setStat(op: Operation, stats: ReturnType<Host['statsFor']>, now: number, availableOnly: boolean): Reply {
  const body = op.bodyObject();
  const name = body?.['name'];
  if (typeof name !== 'string') fail('VALIDATION', 'name is required');
  if (availableOnly && name !== 'isAvailable') fail('VALIDATION', 'only isAvailable can be set here');
  if (!stats.has(name)) {
    if (name.length > MAX_STAT_NAME_LENGTH) fail('VALIDATION', `a statistic's name is at most ${MAX_STAT_NAME_LENGTH} characters long`);
    if (stats.size >= MAX_CLIENT_STATS) fail('VALIDATION', `a service keeps at most ${MAX_CLIENT_STATS} statistics: update an existing one, or choose fewer names`);
  }
  const value = Number(body?.['latestValue'] ?? 0);
  if (!Number.isFinite(value)) fail('VALIDATION', 'latestValue must be a number');
  if (op.action === 'PATCH') {
    if (stats.get(name) === undefined) fail('VALIDATION', 'stat to patch does not exist');
    stats.adjust(name, value, now);
  } else stats.set(name, value, now);
  return { status: 200 };
}

const STAT_COMPARISONS: Record<string, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

/**
 * `P/stats?$filter=…` (Xenon §10.1): `name eq <v>` (`prefix*`, `*suffix` too) and
 * `latestValue <op> <number>`, joined by `and`. Other OData parameters are a 400, as in Xenon.
 */
function statsFilter(op: Operation): ((name: string, latestValue: number) => boolean) | undefined {
  for (const p of ['$count', '$orderby', '$top', '$skipto', '$limit']) if (op.query.has(p)) fail('INVALID_QUERY', `${p} is not supported on stats`);
  const text = op.query.get('$filter');
  if (text === undefined) return undefined;
  const tests = text.split(/\s+and\s+/).map((clause): ((name: string, latestValue: number) => boolean) => {
    const m = /^\s*(\w+)\s+(eq|ne|lt|le|gt|ge)\s+(.+?)\s*$/.exec(clause);
    if (m?.[1] === 'name' && m[2] === 'eq') {
      const v = m[3]!.replace(/^'(.*)'$/, '$1');
      if (v.endsWith('*')) return (name) => name.startsWith(v.slice(0, -1));
      if (v.startsWith('*')) return (name) => name.endsWith(v.slice(1));
      return (name) => name === v;
    }
    const bound = Number(m?.[3]);
    if (m?.[1] === 'latestValue' && Number.isFinite(bound)) return (_, latest) => STAT_COMPARISONS[m[2]!]!(latest, bound);
    return fail('INVALID_QUERY', `stats $filter supports name eq <value> and latestValue <op> <number>, joined by and: ${clause}`);
  });
  return (name, latestValue) => tests.every((t) => t(name, latestValue));
}
