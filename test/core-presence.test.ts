// A scheduler that restarts loses its state; hosts notice the new epoch on their next announcement
// and re-register what they hold, so the new scheduler can hand them out as parents again.
import { createHash } from "node:crypto"
import { Effect, Layer, Random } from "effect"
import { describe, expect, it } from "vitest"
import { Host, peerIdOf } from "../core/domain.ts"
import { announceHost } from "../core/peer/presence.ts"
import { RegisterPeer } from "../core/protocol.ts"
import { defaultSchedulerConfig } from "../core/scheduler/config.ts"
import { dragonflyEvaluator } from "../core/scheduler/evaluator.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { PieceStore } from "../core/services/piece-store.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { MemoryStore } from "../sim/store.ts"

const MiB = 1024 * 1024
const TASK = "e".repeat(64)
const host = (id: string) =>
  new Host({ id, ip: "127.0.0.1", port: 1, idc: "a", location: "a", type: "normal", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 8 })

const channelTo = (current: () => Scheduler) =>
  Layer.succeed(SchedulerChannel, SchedulerChannel.of({
    request: (m) => Effect.provideService(current().request(m), SeedPeerTrigger, SeedPeerTrigger.of({ trigger: () => Effect.void })),
    report: (m) => current().report(m)
  }))

describe("presence", () => {
  it("re-registers held tasks when the scheduler's epoch changes, and only then", async () => {
    const config = { ...defaultSchedulerConfig, retryIntervalMillis: 0 }
    let scheduler = new Scheduler(config, dragonflyEvaluator, "epoch-1")
    const holder = host("holder")
    const store = new MemoryStore("holder", () => {})
    const sha = (d: string) => createHash("sha256").update(d).digest("hex")
    // The holder has the whole 12 MiB task (3 pieces of 4 MiB).
    const ledger = Effect.runSync(store.service.open({ taskId: TASK, url: "http://o/f", contentLength: 12 * MiB, pieceLength: 4 * MiB }))
    for (let i = 0; i < 3; i++) Effect.runSync(store.service.write(TASK, i, new Uint8Array([i]), sha(String(i))))
    expect(ledger.complete).toBe(true)

    const layer = Layer.merge(channelTo(() => scheduler), Layer.succeed(PieceStore, store.service))
    const announce = (known: string | undefined) => Effect.runPromise(announceHost(holder, known).pipe(Effect.provide(layer)))

    const first = await announce(undefined)
    expect(first).toBe("epoch-1")
    expect(scheduler.snapshot(TASK)).toBeUndefined() // first contact: nothing to re-register

    scheduler = new Scheduler(config, dragonflyEvaluator, "epoch-2") // restart: empty state
    expect(await announce(first)).toBe("epoch-2")
    const snap = scheduler.snapshot(TASK)!
    expect(snap.peers).toEqual([{ id: peerIdOf("holder", TASK), hostId: "holder", state: "succeeded", parents: [] }])

    // A newcomer is now handed the re-registered holder as its parent.
    const answer = await Effect.runPromise(
      Effect.provideService(
        scheduler.request(new RegisterPeer({ peerId: "newcomer", taskId: TASK, url: "http://o/f", host: host("n"), contentLength: null, pieceLength: 4 * MiB, finishedPieces: [], metadataOnly: false })),
        SeedPeerTrigger,
        SeedPeerTrigger.of({ trigger: () => Effect.void })
      ).pipe(Random.withSeed(1))
    )
    expect(answer._tag).toBe("CandidateParents")
    if (answer._tag === "CandidateParents") expect(answer.parents.map((p) => p.peerId)).toEqual([peerIdOf("holder", TASK)])
  })
})
