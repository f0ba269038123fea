import { fail } from './errors.js';

/** Xenon's ServiceDocument built-in fields, in the order Gson emits them after a document's own fields. */
export const BUILTIN_FIELDS = [
  'documentVersion',
  'documentEpoch',
  'documentKind',
  'documentSelfLink',
  'documentUpdateTimeMicros',
  'documentUpdateAction',
  'documentExpirationTimeMicros',
  'documentOwner',
  'documentAuthPrincipalLink',
  'documentTransactionId',
  'documentSourceLink',
  'documentDescription',
] as const;

const BUILTIN_SET: ReadonlySet<string> = new Set(BUILTIN_FIELDS);

export function isBuiltinField(name: string): boolean {
  return BUILTIN_SET.has(name);
}

export type Doc = Record<string, unknown>;

export interface Builtins {
  documentVersion: number;
  documentEpoch?: number;
  documentKind: string;
  documentSelfLink: string;
  documentUpdateTimeMicros: number;
  documentUpdateAction: string;
  documentExpirationTimeMicros: number;
  documentOwner: string;
  documentAuthPrincipalLink?: string;
}

/** The user's fields of a document (built-ins and nulls removed; Gson omits nulls). */
export function userFields(doc: Doc): Doc {
  const out: Doc = {};
  // for…in over a plain JSON object visits its own keys in order, without allocating their array.
  for (const k in doc) if (isUserField(k, doc[k])) out[k] = doc[k];
  return out;
}

/** A field userFields keeps: not a built-in, not null or undefined (Gson omits nulls). */
function isUserField(name: string, value: unknown): boolean {
  return value !== null && value !== undefined && !BUILTIN_SET.has(name);
}

/** True when userFields(doc) would keep every field (no built-in, no null or undefined value). */
export function hasOnlyUserFields(doc: Doc): boolean {
  for (const k in doc) if (!isUserField(k, doc[k])) return false;
  return true;
}

/** A full document: the user's fields first, then the built-ins, as Xenon serializes it. */
export function composeDocument(state: Doc, b: Builtins): Doc {
  const doc: Doc = userFields(state);
  doc['documentVersion'] = b.documentVersion;
  if (b.documentEpoch !== undefined) doc['documentEpoch'] = b.documentEpoch;
  doc['documentKind'] = b.documentKind;
  doc['documentSelfLink'] = b.documentSelfLink;
  doc['documentUpdateTimeMicros'] = b.documentUpdateTimeMicros;
  doc['documentUpdateAction'] = b.documentUpdateAction;
  doc['documentExpirationTimeMicros'] = b.documentExpirationTimeMicros;
  doc['documentOwner'] = b.documentOwner;
  if (b.documentAuthPrincipalLink !== undefined) doc['documentAuthPrincipalLink'] = b.documentAuthPrincipalLink;
  return doc;
}

/**
 * Reads an integer field leniently, as Gson reads a Java long: an integral number (5 or 5.0) or an
 * integer string ("5"); undefined when absent or anything else (5.5, "abc").
 */
export function longField(doc: Doc | undefined, name: string): number | undefined {
  const v = doc?.[name];
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  return undefined;
}

/**
 * A request body's integer field: as longField, but a present value that is not an integer is a 400
 * (Gson's NumberFormatException), and so is one JavaScript cannot hold exactly (beyond 2^53 - 1,
 * such as 1e308): stored, it could not be told from its neighbours (a version 1e308 + 1 is 1e308).
 */
export function requestLong(body: Doc, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  const n = longField(body, name);
  if (n === undefined) fail('VALIDATION', `${name} must be an integer: ${JSON.stringify(v)}`);
  if (!Number.isSafeInteger(n)) fail('VALIDATION', `${name} must be an integer between -(2^53 - 1) and 2^53 - 1 (krypton stores JavaScript numbers): ${JSON.stringify(v)}`);
  return n;
}
