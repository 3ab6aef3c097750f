// A seed's report of a piece it fetched from the origin carries the piece's digest, which children
// verify against the scheduler's copy: a report lost to a reset or a busy scheduler must be sent
// again, or every child drops that piece until it stalls and goes to the origin itself.
import { createHash } from "node:crypto"
import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import { SchedulerUnavailable, TransferFailed } from "../core/errors.ts"
import { downloadTask } from "../core/peer/conductor.ts"
import { NeedBackToSource, type PeerReport } from "../core/protocol.ts"
import { PieceStore } from "../core/services/piece-store.ts"
import { Origin, PieceTransfer } from "../core/services/piece-transfer.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { Sha256 } from "../core/services/sha256.ts"
import { MemoryStore } from "../sim/store.ts"

const TASK = "f".repeat(64)
const PIECE = 1024
const PIECES = 6
const seedHost = new Host({ id: "seed", ip: "127.0.0.1", port: 1, idc: "a", location: "a", type: "seed", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 8 })
const content = Uint8Array.from({ length: PIECE * PIECES }, (_, i) => (i * 31 + 7) & 0xff)
const sha = (d: Uint8Array | string) => createHash("sha256").update(d).digest("hex")

const run = (failFirst: number) => {
  const delivered = new Map<number, string>()
  const attempts = new Map<number, number>()
  const failures: Array<string> = []
  const channel = SchedulerChannel.of({
    request: () => Effect.succeed(new NeedBackToSource({ taskId: TASK, reason: "seed" })),
    report: (m: PeerReport) => Effect.suspend(() => {
      if (m._tag !== "PieceFinished") return Effect.void
      const n = (attempts.get(m.index) ?? 0) + 1
      attempts.set(m.index, n)
      if (n <= failFirst) {
        failures.push(`piece ${m.index} attempt ${n}`)
        return Effect.fail(new SchedulerUnavailable({ message: "connection reset" }))
      }
      delivered.set(m.index, m.digest)
      return Effect.void
    })
  })
  const store = new MemoryStore("seed", () => {})
  const layer = Layer.mergeAll(
    Layer.succeed(SchedulerChannel, channel),
    Layer.succeed(PieceStore, store.service),
    Layer.succeed(Sha256, Sha256.of({ hex: sha })),
    Layer.succeed(Origin, Origin.of({
      probe: () => Effect.succeed({ contentLength: content.length }),
      fetchRange: (_r, offset, length) => Effect.succeed(content.slice(offset, offset + length))
    })),
    Layer.succeed(PieceTransfer, PieceTransfer.of({
      availability: () => Effect.fail(new TransferFailed({ message: "no parents here", temporary: false })),
      fetchPiece: () => Effect.fail(new TransferFailed({ message: "no parents here", temporary: false }))
    }))
  )
  return Effect.runPromise(Effect.gen(function*() {
    const result = yield* downloadTask({ url: "http://o/blob", taskId: TASK, pieceLength: PIECE, peerId: "seed/1", host: seedHost, headers: {} })
    // Reports are detached from the download: wait (in real time, a few retries at 100–400 ms) for them.
    for (let t = 0; t < 100 && delivered.size < PIECES; t++) yield* Effect.sleep("20 millis")
    return { result, delivered, failures }
  }).pipe(Effect.provide(layer)))
}

describe("reports of origin-fetched pieces", () => {
  it("are sent again after a failure until the scheduler has every piece's digest", async () => {
    const { result, delivered, failures } = await run(2)
    expect(result.bytesFromOrigin).toBe(content.length)
    expect(failures.length).toBe(2 * PIECES)
    expect([...delivered.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5])
    for (let i = 0; i < PIECES; i++) expect(delivered.get(i)).toBe(sha(content.subarray(i * PIECE, (i + 1) * PIECE)))
  }, 20_000)
})
