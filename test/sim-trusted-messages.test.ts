// Messages built with `trusted` skip the constructor's Schema pass (the simulator sends millions).
// They must still be what the Schema accepts: here every message a simulated swarm sends to the
// scheduler, and every answer it gets, goes through the wire Schemas (encode, then decode) unchanged.
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { PeerToScheduler, PieceFinished, type ScheduleRequest, SchedulerToPeer, trusted, trustedPieceFinished } from "../core/protocol.ts"
import { Task } from "../core/domain.ts"
import type { Scheduler } from "../core/scheduler/scheduler.ts"
import { flashCrowd } from "../scenarios/presets.ts"
import type { WorldMonitor } from "../sim/host.ts"
import { decodeScenario, MiB } from "../sim/scenario.ts"
import { World } from "../sim/world.ts"

const roundTrip = <S extends Schema.Codec<unknown, unknown>>(schema: S, m: unknown): unknown =>
  Schema.encodeUnknownSync(schema)(Schema.decodeUnknownSync(schema)(Schema.encodeUnknownSync(schema)(m)))

const peerId = "peer-1/aaaa"
const taskId = "a".repeat(64)
const digest = "b".repeat(64)

describe("trusted construction", () => {
  it("builds the same message as the constructor", () => {
    const fields = { peerId, taskId, index: 3, parentId: null, digest, length: 4 * MiB, costMillis: 12.5 }
    const a = new PieceFinished(fields)
    const b = trusted(PieceFinished, fields)
    expect(b).toBeInstanceOf(PieceFinished)
    expect(Object.keys(b)).toEqual(Object.keys(a))
    expect(Schema.encodeUnknownSync(PeerToScheduler)(b)).toEqual(Schema.encodeUnknownSync(PeerToScheduler)(a))
    const c = trustedPieceFinished(peerId, taskId, 3, null, digest, 4 * MiB, 12.5)
    expect(c).toBeInstanceOf(PieceFinished)
    expect(Object.entries(c)).toEqual(Object.entries(a))
    expect(Schema.encodeUnknownSync(PeerToScheduler)(c)).toEqual(Schema.encodeUnknownSync(PeerToScheduler)(a))
    const withParent = { ...fields, parentId: "peer-2/bbbb" }
    expect(Object.entries(trustedPieceFinished(peerId, taskId, 3, "peer-2/bbbb", digest, 4 * MiB, 12.5))).toEqual(Object.entries(new PieceFinished(withParent)))
    const t = trusted(Task, { id: taskId, url: "http://o/f", contentLength: 10, pieceLength: 4, pieceDigests: [null, digest, null] })
    expect(t).toBeInstanceOf(Task)
    expect("_tag" in t).toBe(false)
  })

  it("is caught by the Schema when a field is wrong (what the boundary check below relies on)", () => {
    const bad = trusted(PieceFinished, { peerId, taskId, index: -1, parentId: null, digest: "not hex", length: 1, costMillis: 0 })
    expect(() => roundTrip(PeerToScheduler, bad)).toThrow(/index|digest/)
  })

  it("every message of a simulated swarm passes the wire Schemas", () => {
    const scenario = decodeScenario({ ...flashCrowd({ peers: 12, sizeBytes: 64 * MiB, spreadSeconds: 1 }), strategies: ["p2p"] })
    const sent: Array<{ readonly _tag: string }> = []
    const answers: Array<unknown> = []
    const monitor: WorldMonitor = {
      store: (_me, inner) => inner,
      schedulerActivity: (_scheduler: Scheduler, message) => {
        if (message._tag !== "restart") sent.push(message)
      }
    }
    const world = new World(scenario, { seed: 3, strategy: "p2p", monitor })
    const scheduler = world.scheduler as { request: Scheduler["request"] }
    const request = scheduler.request
    scheduler.request = (m: ScheduleRequest) => Effect.tap(request(m), (a) => Effect.sync(() => void answers.push(a)))
    world.run()
    expect(world.peers.every((p) => p.outcome === "ok")).toBe(true)

    const tags = new Set(sent.map((m) => m._tag))
    for (const tag of ["RegisterPeer", "DownloadStarted", "PieceFinished", "DownloadFinished"]) expect(tags).toContain(tag)
    expect(sent.filter((m) => m._tag === "PieceFinished").length).toBeGreaterThanOrEqual(12 * 16)
    for (const m of sent) expect(roundTrip(PeerToScheduler, m)).toEqual(Schema.encodeUnknownSync(PeerToScheduler)(m))

    const parents = answers.filter((a) => (a as { _tag: string })._tag === "CandidateParents")
    expect(parents.length).toBeGreaterThan(0)
    // Answers carry the task's digests as learned so far (some known by the end).
    expect(parents.some((a) => (a as { task: Task }).task.pieceDigests.some((d) => d !== null))).toBe(true)
    for (const a of answers) expect(roundTrip(SchedulerToPeer, a)).toEqual(Schema.encodeUnknownSync(SchedulerToPeer)(a))
  })
})
