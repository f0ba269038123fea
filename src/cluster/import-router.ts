import { fail, KryptonError } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { Pragma, type Operation } from '../core/operation.js';
import type { ImportOutcome } from '../services/document-writer.js';
import { FactoryService } from '../services/factory-service.js';
import { importIntoFactory, MIGRATION_IMPORT_LINK } from '../migration/migration-import-service.js';
import { nodeBaseUri } from './node-group-messages.js';
import type { NodeGroup, Owner } from './node-group.js';
import { clientCredentials, remoteError, wasNotSent, type PeerClient } from './peer-client.js';

/**
 * Migration imports on a group: every document of a batch goes to its owner (sub-batches are
 * forwarded with `xn-fwd`), which imports it through its writer — skip rule, handlers, replication
 * with quorum — so each document is written once, by its owner, and replicated like any write.
 */
export class ImportRouter {
  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly client: PeerClient,
  ) {}

  /**
   * Imports `docs`, each on its owner. Sub-batches for other members carry `credentials` (a task's
   * identity) or else the credentials of `op` (a client's import): the owner authorizes them again.
   */
  async route(factoryLink: string, docs: Doc[], history: boolean, overwrite: boolean, principal: string | undefined, op?: Operation, credentials?: Record<string, string>): Promise<ImportOutcome[]> {
    // Forwarded here by another member, or this node owns every link (a group of one): all local.
    if (op?.hasPragma(Pragma.FORWARDED) || !this.group.ownerSnapshot()) return importIntoFactory(this.host, factoryLink, docs, history, overwrite, principal);
    const factory = this.host.service(factoryLink);
    if (!(factory instanceof FactoryService)) fail('NOT_FOUND', `destination factory ${factoryLink} does not exist on ${this.host.uri}`);
    const links = docs.map((d) => factory.writer.childLinkFor((history ? ((d['versions'] as Doc[] | undefined)?.at(-1) ?? {}) : d)['documentSelfLink'], true));
    const outcomes = new Array<ImportOutcome>(docs.length);
    const deadline = Date.now() + this.group.settings.operationTimeoutMicros / 1000;
    let todo = docs.map((_, i) => i);
    while (todo.length > 0) {
      const byOwner = new Map<string, { owner: Owner; idx: number[] }>();
      for (const i of todo) {
        const owner = this.group.owner(links[i]!);
        const g = byOwner.get(owner.id) ?? { owner, idx: [] };
        g.idx.push(i);
        byOwner.set(owner.id, g);
      }
      const retry: number[] = [];
      await Promise.all(
        [...byOwner.values()].map(async ({ owner, idx }) => {
          const sub = idx.map((i) => docs[i]!);
          try {
            const res = owner.isLocal
              ? await importIntoFactory(this.host, factoryLink, sub, history, overwrite, principal)
              : await this.remote(owner, factoryLink, sub, history, overwrite, credentials ?? clientCredentials(op?.headers));
            idx.forEach((i, k) => {
              outcomes[i] = res[k]!;
            });
          } catch (err) {
            // The owner is gone and not yet marked UNAVAILABLE: retry with the next owner.
            if (!wasNotSent(err) || Date.now() > deadline) throw err;
            retry.push(...idx);
          }
        }),
      );
      todo = retry;
      if (todo.length > 0) await new Promise((r) => setTimeout(r, this.group.settings.gossipIntervalMicros / 2000));
    }
    return outcomes;
  }

  private async remote(owner: Owner, factoryLink: string, documents: Doc[], history: boolean, overwrite: boolean, credentials: Record<string, string>): Promise<ImportOutcome[]> {
    const headers = { ...credentials, pragma: Pragma.FORWARDED };
    const url = `${nodeBaseUri(owner)}${MIGRATION_IMPORT_LINK}`;
    const res = await this.client.send(url, {
      method: 'POST',
      body: { destinationFactoryLink: factoryLink, documents, history, overwrite },
      headers,
      timeoutMs: this.group.settings.operationTimeoutMicros / 1000,
    });
    const parsed = res.text ? (JSON.parse(res.text) as { outcomes?: ImportOutcome[] }) : undefined;
    if (res.status >= 400) throw remoteError(url, res.status, parsed);
    if (!Array.isArray(parsed?.outcomes) || parsed.outcomes.length !== documents.length)
      throw new KryptonError({ code: 'KRY_ERR_REMOTE', status: 502, xenonCode: 0 }, `owner ${owner.id} answered the import without outcomes`);
    return parsed.outcomes;
  }
}
