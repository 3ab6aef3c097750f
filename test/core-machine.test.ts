// The PeerMachine on its own, driven by hand: inputs in, commands out, no Effect runtime and no world.
// What it must do is what downloadTask did: register, follow the parents, fetch within its limits,
// verify, store, report; and when parents give nothing, reschedule and finally go to the origin.
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { Host, Task } from "../core/domain.ts"
import { defaultPeerOptions, ORIGIN, PeerMachine, type PeerCommand, type PeerOptions } from "../core/peer/machine.ts"
import { PieceLedger } from "../core/piece-ledger.ts"
import { CandidateParents, ScheduleFailed } from "../core/protocol.ts"

const MiB = 1024 * 1024
const TASK = "c".repeat(64)
const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const bytesOf = (i: number) => new Uint8Array([i, 1, 2, 3])
const host = (id: string, type: "normal" | "seed" = "normal") =>
  new Host({ id, ip: "10.0.0.1", port: 1, idc: "a", location: "a", type, uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 8 })

const setup = (options: Partial<PeerOptions> = {}, pieces = 6, random = 0) => {
  let now = 0
  const machine = new PeerMachine(
    { url: "http://o/f", taskId: TASK, pieceLength: 4 * MiB, peerId: "me", host: host("me"), headers: {} },
    { ...defaultPeerOptions, ...options },
    { now: () => now, random, hex }
  )
  const digests = Array.from({ length: pieces }, (_, i) => hex(bytesOf(i)))
  const task = new Task({ id: TASK, url: "http://o/f", contentLength: pieces * 4 * MiB, pieceLength: 4 * MiB, pieceDigests: digests })
  const ledger = new PieceLedger(TASK, pieces * 4 * MiB, 4 * MiB)
  const take = (): Array<PeerCommand> => machine.takeCommands()
  const of = <T extends PeerCommand["_tag"]>(cs: Array<PeerCommand>, tag: T) => cs.filter((c): c is Extract<PeerCommand, { _tag: T }> => c._tag === tag)
  return { machine, task, ledger, digests, take, of, setNow: (t: number) => (now = t) }
}

describe("PeerMachine", () => {
  it("registers, follows its parents, keeps to its fetch limits, verifies, stores, reports, and finishes", () => {
    const { machine, task, ledger, digests, take, of } = setup({ concurrentPieces: 3, perParentPieces: 2 })
    machine.start()
    const register = of(take(), "Request")
    expect(register).toHaveLength(1)
    expect(register[0].message._tag).toBe("RegisterPeer")

    machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "p1", host: host("p1") }, { peerId: "p2", host: host("p2") }] }))
    const open = take()
    expect(open.map((c) => c._tag)).toEqual(["Open"])
    machine.opened(ledger)
    const afterOpen = take()
    expect(of(afterOpen, "Watch").map((c) => c.source.id)).toEqual(["p1", "p2"])
    expect(of(afterOpen, "Report").map((c) => c.report._tag)).toEqual(["DownloadStarted"])
    const [w1, w2] = of(afterOpen, "Watch")

    // Both parents hold everything: at most 3 in flight, at most 2 from one parent.
    machine.availability(w1.source, { version: 6, pieces: digests.map((digest, index) => ({ index, digest })), complete: true })
    machine.availability(w2.source, { version: 6, pieces: digests.map((digest, index) => ({ index, digest })), complete: true })
    let fetches = of(take(), "Fetch")
    expect(fetches).toHaveLength(3)
    expect(new Set(fetches.map((f) => f.index)).size).toBe(3)
    for (const id of ["p1", "p2"]) expect(fetches.filter((f) => f.source.id === id).length).toBeLessThanOrEqual(2)

    // A corrupt piece is not stored: the parent is reported, dropped, and its watch abandoned.
    const bad = fetches[0]
    machine.fetched(bad.source, bad.index, new Uint8Array([9, 9]), 10)
    const afterBad = take()
    expect(of(afterBad, "Write")).toHaveLength(0)
    expect(of(afterBad, "Report").map((c) => c.report._tag)).toContain("PieceFailed")
    expect(of(afterBad, "Unwatch").map((c) => c.source.id)).toEqual([bad.source.id])
    expect(of(afterBad, "Fetch").every((f) => f.source.id !== bad.source.id)).toBe(true)
    fetches = [...fetches.slice(1), ...of(afterBad, "Fetch")]

    // Everything else arrives intact, from whoever is left.
    const stored = new Set<number>()
    while (fetches.length > 0) {
      const f = fetches.shift()!
      machine.fetched(f.source, f.index, bytesOf(f.index), 10)
      const out = take()
      for (const w of of(out, "Write")) {
        expect(w.digest).toBe(digests[w.index])
        ledger.add(w.index, w.digest)
        machine.stored(w)
        stored.add(w.index)
        const next = take()
        expect(of(next, "Report").map((c) => c.report._tag)).toContain("PieceFinished")
        fetches.push(...of(next, "Fetch"))
        if (next.some((c) => c._tag === "Finish")) fetches.length = 0
      }
      fetches.push(...of(out, "Fetch"))
    }
    expect(stored.size).toBe(6)
    expect(machine.done).toBe(true)
    expect(machine.result()).toMatchObject({ pieceCount: 6, bytesFromOrigin: 0, bytesFromPeers: 24 * MiB, backToSource: false })
  })

  it("reschedules when no piece arrives for the stall timeout, then goes to the origin", () => {
    const { machine, task, ledger, take, of, setNow } = setup({ stallTimeoutMillis: 1_000, stallsBeforeOrigin: 2 })
    machine.start()
    take()
    machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "p1", host: host("p1") }] }))
    take()
    machine.opened(ledger)
    const timers = of(take(), "Timer")
    expect(timers).toHaveLength(1)
    expect(timers[0].at).toBe(1_000)

    // The parent never offers a piece: the deadline passes, the machine asks for other parents.
    setNow(1_000)
    machine.timerFired(timers[0].token)
    const stall = take()
    const reschedule = of(stall, "Request")
    expect(reschedule.map((r) => r.message._tag)).toEqual(["RescheduleParents"])
    // The scheduler hands out the same (useless) parent again.
    machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "p1", host: host("p1") }] }))
    const timer2 = of(take(), "Timer")
    expect(timer2).toHaveLength(1)
    expect(timer2[0].at).toBe(2_000)

    setNow(2_000)
    machine.timerFired(timer2[0].token)
    const toOrigin = take()
    expect(of(toOrigin, "Report").map((c) => c.report._tag)).toContain("BackToSourceStarted")
    const originFetches = of(toOrigin, "Fetch")
    expect(originFetches.length).toBe(defaultPeerOptions.concurrentPieces > 6 ? 6 : defaultPeerOptions.concurrentPieces)
    expect(originFetches.every((f) => f.source.id === ORIGIN && f.delayMillis === 0)).toBe(true)

    // A failing origin is retried with backoff (the retry carries a delay).
    const f = originFetches[0]
    machine.fetchFailed(f.source, f.index, "origin: 503", true)
    const retry = of(take(), "Fetch")
    expect(retry).toHaveLength(1)
    expect(retry[0].source.id).toBe(ORIGIN)
    expect(retry[0].delayMillis).toBeGreaterThan(0)
  })

  it("ignores a timer token it does not hold, and retries an unreachable scheduler after a backoff", () => {
    const { machine, take } = setup()
    machine.start()
    take()
    machine.timerFired(12345)
    expect(take()).toEqual([])
    machine.requestFailed("ask", "scheduler: connection refused")
    const retry = take()
    expect(retry.map((c) => c._tag)).toEqual(["Timer"])
    const at = (retry[0] as Extract<PeerCommand, { _tag: "Timer" }>).at
    expect(at).toBe(250)
  })

  it("backs its parent refresh off while nothing changes, and a refresh that adds a parent resets the interval", () => {
    const { machine, task, ledger, take, of, setNow } = setup({ refreshParentsMillis: 1_000, firstRefreshMillis: 100, refreshBackoffMaxMillis: 4_000, stallTimeoutMillis: 60_000 })
    const stripes = (parents: Array<[string, Array<number>]>) =>
      new CandidateParents({ task, parents: parents.map(([peerId, s]) => ({ peerId, host: host(peerId), stripes: s })), stripeCount: 2 })
    machine.start()
    take()
    machine.answered("ask", stripes([["p1", [0]], ["p2", [1]]]))
    take()
    machine.opened(ledger)
    let out = take()
    expect(of(out, "Watch").map((c) => c.source.id)).toEqual(["p1", "p2"])
    // Each refresh: fire the pending timers in time order until the machine sends a refresh, then answer it.
    const sent: Array<number> = []
    let timers = of(out, "Timer")
    const refreshOnce = (answer: CandidateParents | ScheduleFailed) => {
      for (;;) {
        timers.sort((a, b) => a.at - b.at)
        const timer = timers.shift()!
        setNow(timer.at)
        machine.timerFired(timer.token)
        const fired = take()
        timers.push(...of(fired, "Timer"))
        const asked = of(fired, "Request")
        if (asked.length === 0) continue
        expect(asked.map((r) => [r.purpose, r.message._tag])).toEqual([["refresh", "RescheduleParents"]])
        sent.push(timer.at)
        machine.answered("refresh", answer)
        out = take()
        timers.push(...of(out, "Timer"))
        return
      }
    }
    const nothing = new ScheduleFailed({ taskId: TASK, reason: "no parent to add" })
    for (let i = 0; i < 4; i++) refreshOnce(nothing)
    // First at 100 ms, then 2 s, 4 s, 4 s (the cap) after each answer that added nothing.
    expect(sent).toEqual([100, 2_100, 6_100, 10_100])
    // A new designation adds p3 (p2 stays watched: dropping parents a refresh no longer names sent
    // later rolling batches back to the origin, spegel-matrix/1GB-1layer-rolling 4.67 copies); the interval is 1 s again.
    refreshOnce(stripes([["p1", [0]], ["p3", [1]]]))
    expect(of(out, "Unwatch")).toEqual([])
    expect(of(out, "Watch").map((c) => c.source.id)).toEqual(["p3"])
    refreshOnce(nothing)
    expect(sent.slice(4)).toEqual([14_100, 15_100])
  })

  it("takes another stripe's piece from the seed only once its own first piece has shown what a piece takes", () => {
    // A daemon not told its link's rate announces an unlimited uplink (10 GiB/s): by that, a 4 MiB piece
    // takes 0.4 ms and every piece would be overdue at once. The seed feeds the stripes' roots: a root that
    // took the other stripe's first pieces from it too cost the whole forest a piece-time there.
    const { machine, task, ledger, digests, take, of, setNow } = setup({ stripeGracePieces: 12, stallTimeoutMillis: 60_000, concurrentPieces: 8, perParentPieces: 2 })
    const unlimited = 10 * 1024 ** 3
    const seedHost = new Host({ id: "seed", ip: "10.0.0.2", port: 1, idc: "a", location: "a", type: "seed", uploadBandwidth: unlimited, downloadBandwidth: unlimited, uploadSlots: 8 })
    machine.start()
    take()
    machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "seed", host: seedHost, stripes: [0] }, { peerId: "p2", host: host("p2"), stripes: [1] }], stripeCount: 2 }))
    take()
    machine.opened(ledger)
    const [wSeed, wP2] = of(take(), "Watch")
    expect([wSeed.source.id, wP2.source.id]).toEqual(["seed", "p2"])
    // The seed holds pieces 0 (stripe 0, ours from it) and 1 (stripe 1, p2's, which p2 does not hold yet).
    machine.availability(wSeed.source, { version: 2, pieces: [0, 1].map((index) => ({ index, digest: digests[index] })), complete: false })
    machine.availability(wP2.source, { version: 0, pieces: [], complete: false })
    let out = take()
    expect(of(out, "Fetch").map((f) => [f.source.id, f.index])).toEqual([["seed", 0]])
    // Long past 12 × 4 × 0.4 ms: still only piece 0 from the seed, and no timer set for piece 1's grace.
    setNow(250)
    for (const t of of(out, "Timer")) machine.timerFired(t.token)
    out = take()
    expect(of(out, "Fetch")).toEqual([])
    // Piece 0 arrives after 300 ms: a piece takes 300 ms, so piece 1 may come from the seed 12 × 4 piece-times after it was first seen.
    setNow(300)
    machine.fetched(wSeed.source, 0, bytesOf(0), 300)
    const write = of(take(), "Write")
    expect(write.map((w) => w.index)).toEqual([0])
    ledger.add(0, digests[0])
    machine.stored(write[0])
    out = take()
    expect(of(out, "Fetch")).toEqual([])
    const grace = of(out, "Timer").map((t) => t.at)
    expect(Math.max(...grace)).toBeGreaterThanOrEqual(12 * 4 * 300)
    setNow(12 * 4 * 300)
    for (const t of of(out, "Timer")) if (t.at <= 12 * 4 * 300) machine.timerFired(t.token)
    expect(of(take(), "Fetch").map((f) => [f.source.id, f.index])).toEqual([["seed", 1]])
  })

  it("takes a seed's pieces in index order when the seed is its stripe parent, and keeps its random rotation otherwise", () => {
    // A fast seed feeds several roots of each stripe. Each root taking the stripe in its own rotation
    // would leave every tree missing, at the end, what its own root takes last (members also take a
    // stripe's pieces from other trees after the grace); in index order the trees move together.
    const firstFetches = (parentType: "seed" | "normal") => {
      const { machine, task, ledger, digests, take, of } = setup({ concurrentPieces: 8, perParentPieces: 8, stripeGracePieces: 12 }, 8, 0.5)
      machine.start()
      take()
      machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "up", host: host("up", parentType), stripes: [0, 1] }], stripeCount: 2 }))
      take()
      machine.opened(ledger)
      const [w] = of(take(), "Watch")
      machine.availability(w.source, { version: 8, pieces: digests.map((digest, index) => ({ index, digest })), complete: true })
      return of(take(), "Fetch").map((f) => f.index)
    }
    expect(firstFetches("seed")).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    // random 0.5 of 8 pieces: the rotation starts at piece 4.
    expect(firstFetches("normal")).toEqual([4, 5, 6, 7, 0, 1, 2, 3])
  })

  it("waits for a stripe's own parent while that parent keeps delivering, and takes the stripe elsewhere once it stalls", () => {
    // The grace for a piece its stripe parent does not hold yet runs from when the piece was first seen or
    // from the stripe parent's last delivery, whichever is later: a fast seed shows a root every piece at
    // once, long before its tree brings them, and taking them elsewhere then only clogs the trees.
    const { machine, task, ledger, digests, take, of, setNow } = setup({ stripeGracePieces: 2, stallTimeoutMillis: 60_000, concurrentPieces: 8, perParentPieces: 8 }, 8)
    // Uplinks at which a 4 MiB piece takes 100 ms: a piece-time is 100 ms before and after any is measured.
    const at100ms = (id: string) => new Host({ id, ip: "10.0.0.1", port: 1, idc: "a", location: "a", type: "normal", uploadBandwidth: 40 * MiB, downloadBandwidth: 40 * MiB, uploadSlots: 8 })
    machine.start()
    take()
    machine.answered("ask", new CandidateParents({ task, parents: [{ peerId: "p1", host: at100ms("p1"), stripes: [0] }, { peerId: "p2", host: at100ms("p2"), stripes: [1] }, { peerId: "p3", host: at100ms("p3") }], stripeCount: 2 }))
    take()
    machine.opened(ledger)
    const [w1, w2, w3] = of(take(), "Watch")
    expect([w1.source.id, w2.source.id, w3.source.id]).toEqual(["p1", "p2", "p3"])
    const offer = (w: typeof w1, indices: Array<number>) =>
      machine.availability(w.source, { version: indices.length, pieces: indices.map((index) => ({ index, digest: digests[index] })), complete: indices.length === 8 })
    const fetches = (cs: Array<PeerCommand>) => of(cs, "Fetch").map((f) => [f.source.id, f.index])
    const timers: Array<Extract<PeerCommand, { _tag: "Timer" }>> = []
    const keep = (cs: Array<PeerCommand>) => (timers.push(...of(cs, "Timer")), cs)
    const fire = (at: number) => {
      setNow(at)
      for (const t of timers.splice(0)) if (t.at <= at) machine.timerFired(t.token)
        else timers.push(t)
      return keep(take())
    }
    // p3 holds everything from t=0; p1 (stripe 0) nothing; p2 (stripe 1) piece 1.
    offer(w3, [0, 1, 2, 3, 4, 5, 6, 7])
    offer(w1, [])
    offer(w2, [1])
    expect(fetches(keep(take()))).toEqual([["p2", 1]])
    // Piece 1 arrives at 100 ms, then p2 offers piece 3.
    setNow(100)
    machine.fetched(w2.source, 1, bytesOf(1), 100)
    const [write] = of(keep(take()), "Write")
    ledger.add(1, digests[1])
    machine.stored(write)
    keep(take())
    offer(w2, [1, 3])
    expect(fetches(keep(take()))).toEqual([["p2", 3]])
    // 2 piece-times after t=0: stripe 0 (nothing from p1 ever) goes to p3; stripe 1's pieces 5 and 7 wait,
    // since p2 delivered at 100 ms.
    const at200 = fetches(fire(200))
    expect(at200.length).toBeGreaterThan(0)
    expect(at200.every(([id, i]) => id === "p3" && (i as number) % 2 === 0)).toBe(true)
    // p2 delivers nothing more: 2 piece-times after its last delivery, stripe 1 goes to p3 too.
    expect(fetches(fire(300)).filter(([id, i]) => id === "p3" && (i as number) % 2 === 1).length).toBeGreaterThan(0)
  })

  it("keeps at most maxParents parents: a refresh adds new ones only up to it, and none is sent while at it", () => {
    const { machine, task, ledger, take, of, setNow } = setup({ refreshParentsMillis: 1_000, stallTimeoutMillis: 60_000, maxParents: 3 })
    const parents = (...ids: Array<string>) => new CandidateParents({ task, parents: ids.map((peerId) => ({ peerId, host: host(peerId) })) })
    machine.start()
    take()
    machine.answered("ask", parents("p1", "p2"))
    take()
    machine.opened(ledger)
    let timers = of(take(), "Timer")
    // Fires the pending timers in time order up to `until`; returns the refresh requests sent.
    const runUntil = (until: number) => {
      const asked = []
      for (;;) {
        timers.sort((a, b) => a.at - b.at)
        if (timers.length === 0 || timers[0].at > until) return asked
        const timer = timers.shift()!
        setNow(timer.at)
        machine.timerFired(timer.token)
        const fired = take()
        timers.push(...of(fired, "Timer"))
        asked.push(...of(fired, "Request").filter((r) => r.purpose === "refresh"))
      }
    }
    expect(runUntil(1_000)).toHaveLength(1)
    // Two parents, room for one more: p3 joins; p4 and p5 (and p1, already ours) do not.
    machine.answered("refresh", parents("p1", "p3", "p4", "p5"))
    const out = take()
    timers.push(...of(out, "Timer"))
    expect(of(out, "Watch").map((c) => c.source.id)).toEqual(["p3"])
    // At the limit: refresh deadlines pass without a request.
    expect(runUntil(5_000)).toHaveLength(0)
  })
})
