import { fail } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import type { ImportOutcome } from '../services/document-writer.js';
import { FactoryService } from '../services/factory-service.js';

export const MIGRATION_IMPORT_LINK = '/management/migration-import';
const MAX_BATCH = 100_000;

/** Imports a batch into one of this host's factories (the migration task's write path). */
export async function importIntoFactory(host: Host, factoryLink: string, docs: Doc[], history: boolean, overwrite: boolean, principal: string | undefined): Promise<ImportOutcome[]> {
  const factory = host.service(factoryLink);
  if (!(factory instanceof FactoryService)) fail('NOT_FOUND', `destination factory ${factoryLink} does not exist on ${host.uri}`);
  return factory.writer.importDocuments(docs, principal, { history, overwrite });
}

/**
 * `POST /management/migration-import` `{destinationFactoryLink, documents, history?, overwrite?}`:
 * krypton's batched equivalent of Xenon's per-document `xn-from-migration` POSTs. Every document
 * still goes through the factory's create handler (validation, `isFromMigration`), keeps its id and
 * update time, and is skipped when this host already holds it at the same or a newer update time.
 * One transaction per batch. Answers `{outcomes: [{link, result, error?}]}`.
 */
export class MigrationImportService implements Service {
  readonly link = MIGRATION_IMPORT_LINK;
  /** How a batch is imported; node groups (src/cluster) route each document to its owner. */
  importer: (factoryLink: string, docs: Doc[], history: boolean, overwrite: boolean, principal: string | undefined, op: Operation) => Promise<ImportOutcome[]> = (f, d, h, o, p) =>
    importIntoFactory(this.host, f, d, h, o, p);

  constructor(private readonly host: Host) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action !== 'POST') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = op.bodyObject() ?? {};
    const factory = body['destinationFactoryLink'];
    const docs = body['documents'];
    if (typeof factory !== 'string') fail('VALIDATION', 'destinationFactoryLink is required');
    if (!Array.isArray(docs) || docs.some((d) => !d || typeof d !== 'object' || Array.isArray(d))) fail('VALIDATION', 'documents must be an array of JSON objects');
    if (docs.length > MAX_BATCH) fail('VALIDATION', `at most ${MAX_BATCH} documents per import`);
    const isObject = (v: unknown) => !!v && typeof v === 'object' && !Array.isArray(v);
    if (body['history'] === true && docs.some((d) => !Array.isArray(d['versions']) || d['versions'].length === 0 || !d['versions'].every(isObject))) {
      fail('VALIDATION', 'a history import needs documents of the form {"versions": [ … ]}, each version a JSON object');
    }
    const outcomes = await this.importer(factory, docs as Doc[], body['history'] === true, body['overwrite'] === true, op.principal, op);
    return { status: 200, body: { outcomes } };
  }
}
