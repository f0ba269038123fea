import type { Host } from '../core/host.js';
import type { Gossip } from './gossip.js';
import type { MembershipDiff, NodeGroup } from './node-group.js';
import type { RepairQueue } from './repair-queue.js';
import type { Synchronizer } from './synchronizer.js';

/**
 * This node's own status and what membership changes set in motion. A node is SYNCHRONIZING — it
 * receives replicated writes but owns nothing — from its start with `--peerNodes`, when it was alone
 * and meets a running group, or when it learns the group had marked it UNAVAILABLE; it becomes
 * AVAILABLE once it pulled the group's documents (or, alone, at once). Any other membership change
 * makes every member synchronize in the background.
 */
export class MemberStatus {
  private alone = true;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly gossip: Gossip,
    private readonly synchronizer: Synchronizer,
    private readonly repairs: RepairQueue,
  ) {
    group.onChange((diff) => queueMicrotask(() => this.onMembership(diff)));
    gossip.onRound = () => this.onRound();
  }

  private onMembership(diff: MembershipDiff): void {
    for (const id of diff.lost) this.repairs.drop(id);
    const reachable = this.group.replicationTargets();
    if (diff.selfMarkedUnavailable || (this.alone && reachable.some((n) => n.status === 'AVAILABLE'))) this.group.setSelfStatus('SYNCHRONIZING');
    this.alone = reachable.length === 0;
    if (this.group.self().status === 'SYNCHRONIZING') {
      if (reachable.length > 0) this.synchronizer.request('joining the group');
    } else if (diff.becameAvailable.length > 0 || diff.lost.length > 0) {
      this.synchronizer.request(`membership change (available: ${diff.becameAvailable.join(',') || '-'}, lost: ${diff.lost.join(',') || '-'})`);
    }
  }

  private onRound(): void {
    const targets = this.group.replicationTargets();
    if (this.group.self().status === 'SYNCHRONIZING' && !this.synchronizer.isRunning) {
      const waited = this.host.clock.nowMicros() - this.gossip.startedMicros;
      if (targets.length > 0) this.synchronizer.request('joining the group');
      // Alone: nothing to pull. With --peerNodes nobody answered yet: serve alone after the failure timeout.
      else if (!this.gossip.hasPendingJoins() || waited >= this.group.settings.nodeUnavailableTimeoutMicros) this.group.setSelfStatus('AVAILABLE');
    }
    void this.repairs.flush(targets);
  }
}
