// Scheduler invariants over random message sequences: a peer is never handed itself, a peer on its
// own host, a blocklisted peer, more than K parents, or an edge that closes a cycle.
import fc from "fast-check"
import { Effect, Random } from "effect"
import { describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import {
  BackToSourceStarted,
  DownloadFinished,
  DownloadStarted,
  PieceFinished,
  RegisterPeer,
  RescheduleParents,
  type SchedulerToPeer
} from "../core/protocol.ts"
import { defaultSchedulerConfig } from "../core/scheduler/config.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { strategies } from "../core/strategies.ts"
import { SeedPeerTrigger, type SeedRequest } from "../core/services/seed-peer-trigger.ts"

const TASK = "a".repeat(64)
const DIGEST = "b".repeat(64)
const MiB = 1024 * 1024

const host = (i: number, type: "normal" | "seed" = "normal") =>
  new Host({
    id: `host-${i}`,
    ip: "10.0.0." + i,
    port: 4000 + i,
    idc: i % 2 === 0 ? "idc-a" : "idc-b",
    location: `cn|hz|${i % 3}`,
    type,
    uploadBandwidth: 1_000_000 * (1 + (i % 4)),
    downloadBandwidth: 1_000_000,
    uploadSlots: 2 + (i % 5)
  })

const triggers: Array<{ seed: string; request: SeedRequest }> = []
const run = <A>(effect: Effect.Effect<A, never, SeedPeerTrigger>, seed: number) =>
  Effect.runPromise(
    effect.pipe(
      Effect.provideService(SeedPeerTrigger, SeedPeerTrigger.of({ trigger: (h, r) => Effect.sync(() => void triggers.push({ seed: h.id, request: r })) })),
      Random.withSeed(seed)
    )
  )

const register = (peer: number, hostIndex: number) =>
  new RegisterPeer({
    peerId: `peer-${peer}`,
    taskId: TASK,
    url: "http://origin/file",
    host: host(hostIndex),
    contentLength: 64 * MiB,
    pieceLength: 4 * MiB,
    finishedPieces: [],
    metadataOnly: false
  })

type Action =
  | { kind: "register"; peer: number; host: number }
  | { kind: "progress"; peer: number }
  | { kind: "reschedule"; peer: number; blocked: Array<number> }
  | { kind: "finish"; peer: number }

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant("register" as const), peer: fc.nat(24), host: fc.nat(9) }),
  fc.record({ kind: fc.constant("progress" as const), peer: fc.nat(24) }),
  fc.record({ kind: fc.constant("reschedule" as const), peer: fc.nat(24), blocked: fc.array(fc.nat(24), { maxLength: 4 }) }),
  fc.record({ kind: fc.constant("finish" as const), peer: fc.nat(24) })
)

describe("Scheduler", () => {
  it("hands out parents that respect every filter rule, and keeps the DAG acyclic", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 60 }), fc.integer({ min: 1, max: 1e6 }), async (actions, seed) => {
        const config = { ...defaultSchedulerConfig, retryIntervalMillis: 0, retryLimit: 3, retryBackToSourceLimit: 2 }
        const scheduler = new Scheduler(config)
        const hostOf = new Map<number, number>()
        const blocked = new Map<number, Set<string>>()
        const check = (peer: number, answer: SchedulerToPeer) => {
          if (answer._tag !== "CandidateParents") return
          expect(answer.parents.length).toBeLessThanOrEqual(config.candidateParentLimit)
          expect(answer.parents.length).toBeGreaterThan(0)
          for (const p of answer.parents) {
            expect(p.peerId).not.toBe(`peer-${peer}`)
            expect(p.host.id).not.toBe(`host-${hostOf.get(peer)}`)
            expect(blocked.get(peer)?.has(p.peerId) ?? false).toBe(false)
          }
          expect(new Set(answer.parents.map((p) => p.peerId)).size).toBe(answer.parents.length)
        }
        for (const a of actions) {
          if (a.kind === "register") {
            if (hostOf.has(a.peer)) continue
            hostOf.set(a.peer, a.host)
            const answer = await run(scheduler.request(register(a.peer, a.host)), seed)
            check(a.peer, answer)
            if (answer._tag === "NeedBackToSource") {
              await run(scheduler.report(new BackToSourceStarted({ peerId: `peer-${a.peer}`, taskId: TASK, contentLength: 64 * MiB })), seed)
            }
          } else if (!hostOf.has(a.peer)) {
            continue
          } else if (a.kind === "progress") {
            const id = `peer-${a.peer}`
            await run(scheduler.report(new DownloadStarted({ peerId: id, taskId: TASK })), seed)
            await run(scheduler.report(new PieceFinished({ peerId: id, taskId: TASK, index: 0, parentId: null, digest: DIGEST, length: 4 * MiB, costMillis: 10 })), seed)
          } else if (a.kind === "reschedule") {
            const set = blocked.get(a.peer) ?? new Set<string>()
            for (const b of a.blocked) set.add(`peer-${b}`)
            blocked.set(a.peer, set)
            const answer = await run(scheduler.request(new RescheduleParents({ peerId: `peer-${a.peer}`, taskId: TASK, blockedParents: a.blocked.map((b) => `peer-${b}`), reason: "test" })), seed)
            check(a.peer, answer)
          } else {
            await run(scheduler.report(new DownloadFinished({ peerId: `peer-${a.peer}`, taskId: TASK, contentLength: 64 * MiB })), seed)
          }
          const snap = scheduler.snapshot(TASK)
          if (snap !== undefined) {
            expect(snap.acyclic).toBe(true)
            for (const p of snap.peers) {
              expect(p.parents).not.toContain(p.id)
              expect(p.parents.length).toBeLessThanOrEqual(config.candidateParentLimit)
            }
          }
        }
      }),
      { seed: 20261128, numRuns: 150, verbose: 1 }
    )
  })

  it("triggers a seed peer on a task's first download, once", async () => {
    triggers.length = 0
    const scheduler = new Scheduler({ ...defaultSchedulerConfig, retryIntervalMillis: 0, seedWaitMillis: 0 })
    await run(scheduler.request(new (await import("../core/protocol.ts")).AnnounceHost({ host: host(50, "seed") })), 1)
    await run(scheduler.request(register(1, 1)), 1)
    await run(scheduler.request(register(2, 2)), 1)
    expect(triggers.map((t) => t.seed)).toEqual(["host-50"])
    expect(triggers[0].request.taskId).toBe(TASK)
  })

  it("with seedNearOrigin, triggers a seed in the origin's IDC when one is known", async () => {
    const { AnnounceHost } = await import("../core/protocol.ts")
    for (const [originIdc, expected] of [["idc-a", "host-50"], ["idc-b", "host-51"], ["idc-c", undefined]] as const) {
      triggers.length = 0
      const scheduler = new Scheduler({ ...defaultSchedulerConfig, retryIntervalMillis: 0, seedWaitMillis: 0, seedNearOrigin: true, originIdc })
      await run(scheduler.request(new AnnounceHost({ host: host(50, "seed") })), 1)
      await run(scheduler.request(new AnnounceHost({ host: host(51, "seed") })), 1)
      await run(scheduler.request(register(1, 1)), 1)
      expect(triggers.length).toBe(1)
      // No seed in the origin's IDC: any, by task id.
      if (expected !== undefined) expect(triggers[0].seed).toBe(expected)
      else expect(["host-50", "host-51"]).toContain(triggers[0].seed)
    }
  })

  it("sends a peer back to source when there is no seed and no holder, within the per-task limit", async () => {
    const scheduler = new Scheduler({ ...defaultSchedulerConfig, retryIntervalMillis: 0, backToSourceCount: 2, retryLimit: 2, retryBackToSourceLimit: 1 })
    const tags: Array<string> = []
    for (let i = 0; i < 4; i++) tags.push((await run(scheduler.request(register(i, i)), 7))._tag)
    // Two go to the origin; the next ones find those as parents once they run.
    expect(tags.slice(0, 1)).toEqual(["NeedBackToSource"])
    expect(scheduler.snapshot(TASK)!.backToSource.length).toBeLessThanOrEqual(2)
  })

  it("damselfly without a seed host: the peer sent back to source feeds every stripe's roots, and every peer has a parent in every stripe", async () => {
    const { config, evaluator, handout } = strategies.damselfly
    const scheduler = new Scheduler(config, evaluator, "0", handout)
    const count = handout.stripes!.count
    // Ten like nodes in one rack, no seed (the spegel-matrix cluster).
    const node = (i: number) =>
      new Host({ id: `node-${i}`, ip: `10.1.0.${i}`, port: 4000, idc: "", location: "", type: "normal", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 8 })
    const registerAt = (i: number) => new RegisterPeer({ ...register(i, i), host: node(i) })
    expect((await run(scheduler.request(registerAt(0)), 3))._tag).toBe("NeedBackToSource")
    for (let i = 1; i < 10; i++) expect((await run(scheduler.request(registerAt(i)), 3))._tag).toBe("CandidateParents")
    // Everyone has registered: each peer's current stripe parents.
    const parentIn = new Map<string, Map<number, string>>()
    for (let i = 1; i < 10; i++) {
      const answer = await run(scheduler.request(new RescheduleParents({ taskId: TASK, peerId: `peer-${i}`, blockedParents: [], reason: "test" })), 3)
      const byStripe = new Map<number, string>()
      if (answer._tag === "CandidateParents") for (const p of answer.parents) for (const j of p.stripes ?? []) byStripe.set(j, p.peerId)
      parentIn.set(`peer-${i}`, byStripe)
    }
    for (let j = 0; j < count; j++) {
      const roots = [...parentIn].filter(([, byStripe]) => byStripe.get(j) === "peer-0").map(([id]) => id)
      expect(roots.length, `stripe ${j}: peers fed by the back-to-source peer`).toBeGreaterThan(0)
      for (const [id, byStripe] of parentIn) {
        expect(byStripe.has(j), `${id} has a parent in stripe ${j}`).toBe(true)
        // Up the stripe's tree from every peer reaches the back-to-source peer.
        let at = id
        for (let hops = 0; at !== "peer-0"; hops++) {
          expect(hops).toBeLessThan(10)
          at = parentIn.get(at)!.get(j)!
          expect(at, `${id}'s chain in stripe ${j}`).toBeDefined()
        }
      }
    }
  })
})
