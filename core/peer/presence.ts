// A host's standing with its scheduler. It announces itself periodically; when the scheduler's epoch
// changes (a restart with empty state, or a failover to another scheduler) it re-registers every task
// it holds with the pieces it has, so the scheduler rebuilds its view from the peers, not from a database.
import { Effect } from "effect"
import { type Host, peerIdOf } from "../domain.ts"
import { AnnounceHost, RegisterPeer } from "../protocol.ts"
import type { PieceLedger } from "../piece-ledger.ts"
import { PieceStore, type StoredTask } from "../services/piece-store.ts"
import { SchedulerChannel } from "../services/scheduler-channel.ts"

/**
 * A host telling a (new) scheduler what it holds of a task: the pieces, and for a seed — which fetched
 * them from the origin — their digests, so the scheduler can vouch for them again.
 */
export const reRegistration = (host: Host, task: StoredTask, ledger: PieceLedger): RegisterPeer => {
  const held = ledger.held()
  return new RegisterPeer({
    peerId: peerIdOf(host.id, task.taskId),
    taskId: task.taskId,
    url: task.url,
    host,
    contentLength: task.contentLength,
    pieceLength: task.pieceLength,
    finishedPieces: held,
    metadataOnly: false,
    ...(host.type === "seed" ? { pieceDigests: held.map((index) => ({ index, digest: ledger.digestOf(index)! })) } : {})
  })
}

/** One announcement; returns the scheduler's epoch, re-registering held tasks if it differs from `known`. */
export const announceHost = (host: Host, known: string | undefined) =>
  Effect.gen(function*() {
    const channel = yield* SchedulerChannel
    const store = yield* PieceStore
    const answer = yield* channel.request(new AnnounceHost({ host }))
    if (answer._tag !== "HostAnnounced") return known
    if (known !== undefined && answer.epoch !== known) {
      // Only complete tasks: a download in progress re-registers itself (the scheduler answers it
      // NeedRegister), and a failed one must not be handed out as a parent.
      for (const { task, ledger } of (yield* store.held()).filter((h) => h.ledger.complete)) {
        yield* Effect.ignore(channel.request(reRegistration(host, task, ledger)))
      }
    }
    return answer.epoch
  })

/**
 * Announces forever: every `intervalMillis` while the scheduler answers, every `retryMillis` while it
 * does not (a host the scheduler has not heard of cannot be picked as a seed or a parent).
 */
export const keepPresence = (host: Host, intervalMillis: number, retryMillis: number) =>
  Effect.gen(function*() {
    let epoch: string | undefined
    while (true) {
      const next = yield* Effect.result(announceHost(host, epoch))
      const ok = next._tag === "Success"
      if (ok) epoch = next.success
      yield* Effect.sleep(ok ? intervalMillis : retryMillis)
    }
  })
