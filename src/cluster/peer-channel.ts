import { Pragma } from '../core/operation.js';
import { Kinds, REPLICATION_LINK, type ReplicationResponse, type ReplicationResult } from './node-group-messages.js';
import { remoteError, type PeerClient } from './peer-client.js';

interface Queued {
  json: string;
  resolve: (r: ReplicationResult) => void;
  reject: (e: unknown) => void;
}

const MAX_IN_FLIGHT = 2;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Replication to one peer. Writes are sent at once while fewer than four requests are in flight;
 * beyond that they queue and leave together in the next request, so under load many writes share
 * one round trip (and one transaction on the replica) without delaying a lone write.
 */
export class PeerChannel {
  private queue: Queued[] = [];
  private inFlight = 0;

  constructor(
    private readonly client: PeerClient,
    readonly baseUri: string,
    private readonly timeoutMs: () => number,
  ) {}

  /** Sends one write (a serialized ReplicationItem); resolves with the peer's result for it. */
  send(itemJson: string): Promise<ReplicationResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ json: itemJson, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.json.length < MAX_BATCH_BYTES)) bytes += this.queue[n++]!.json.length;
      const batch = this.queue.splice(0, n);
      this.inFlight++;
      void this.post(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async post(batch: Queued[]): Promise<void> {
    const body = `{"kind":${JSON.stringify(Kinds.REPLICATION_REQUEST)},"mode":"replicate","items":[${batch.map((q) => q.json).join(',')}]}`;
    const url = `${this.baseUri}${REPLICATION_LINK}`;
    try {
      const res = await this.client.send(url, { method: 'POST', body, headers: { pragma: Pragma.REPLICATED }, timeoutMs: this.timeoutMs() });
      const parsed = res.text ? (JSON.parse(res.text) as unknown) : undefined;
      if (res.status >= 400) throw remoteError(url, res.status, parsed);
      const results = (parsed as ReplicationResponse).results;
      batch.forEach((q, i) => {
        q.resolve(results[i] ?? { status: 'failed', statusCode: 500, message: 'no result from replica' });
      });
    } catch (err) {
      for (const q of batch) q.reject(err);
    }
  }
}
