import type { TSchema } from '@sinclair/typebox';
import { isBuiltinField } from '../core/document.js';

/**
 * A document's content as a migration must keep it, in one canonical text: its user fields (no
 * built-in field, none the schema marks `EXCLUDE_FROM_SIGNATURE`, as Xenon leaves
 * them out of a document's signature), keys sorted at every level. ExampleService's
 * `isFromMigration` is such a field: true on the destination, false on the source (the spec's
 * "same content" means the user's fields). Two copies with the same text hold the same content,
 * whatever order their fields were written in.
 */
export function contentText(json: string, excluded: ReadonlySet<string>): string {
  const doc = JSON.parse(json) as Record<string, unknown>;
  const user: Record<string, unknown> = {};
  for (const key of Object.keys(doc).sort()) {
    // A null is an absent field (Gson omits nulls).
    if (isBuiltinField(key) || excluded.has(key) || doc[key] === null) continue;
    user[key] = sorted(doc[key]);
  }
  return JSON.stringify(user);
}

function sorted(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sorted);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sorted((value as Record<string, unknown>)[key]);
  return out;
}

/** The top-level fields of a state schema marked `indexingOptions: ['EXCLUDE_FROM_SIGNATURE']`. */
export function excludedFromSignature(schema: TSchema | undefined): Set<string> {
  const out = new Set<string>();
  const properties = (schema as { properties?: Record<string, { indexingOptions?: unknown }> } | undefined)?.properties ?? {};
  for (const [name, p] of Object.entries(properties)) if (Array.isArray(p.indexingOptions) && p.indexingOptions.includes('EXCLUDE_FROM_SIGNATURE')) out.add(name);
  return out;
}
