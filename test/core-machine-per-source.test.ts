// BitTorrent's per-connection picking (`pickPerSource`) keeps, instead of rescanning every source after
// every change, a list of the sources worth a look and marks the ones found empty. Property: after any
// sequence of inputs (pieces offered, fetches arriving, failing, rebound at a slot grant, stores), no
// source with room holds a piece we want while we have room: what a full scan would have found.
import { createHash } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Host, Task } from "../core/domain.ts"
import { defaultPeerOptions, PeerMachine, type PeerCommand } from "../core/peer/machine.ts"
import { PieceLedger } from "../core/piece-ledger.ts"
import { CandidateParents } from "../core/protocol.ts"

const PIECE = 1024
const TASK = "d".repeat(64)
const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const bytesOf = (i: number) => new Uint8Array([i & 255, i >> 8, 7])
const host = (id: string) =>
  new Host({ id, ip: "10.0.0.1", port: 1, idc: "a", location: "a", type: "normal", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 8 })

type Fetch = Extract<PeerCommand, { _tag: "Fetch" }>
type Write = Extract<PeerCommand, { _tag: "Write" }>

/** One input, its numbers taken modulo what is there to act on. */
const action = fc.tuple(fc.constantFrom("offer", "arrive", "fail", "rebind", "store"), fc.nat(1_000), fc.nat(1_000), fc.nat(8))

const run = (pieces: number, parents: number, concurrent: number, perParent: number, actions: ReadonlyArray<readonly [string, number, number, number]>): string | undefined => {
  const machine = new PeerMachine(
    { url: "http://o/f", taskId: TASK, pieceLength: PIECE, peerId: "me", host: host("me"), headers: {} },
    { ...defaultPeerOptions, concurrentPieces: concurrent, perParentPieces: perParent, pickPerSource: true, endgame: true, stallTimeoutMillis: 1e9 },
    { now: () => 0, random: 0.37, hex }
  )
  const digests = Array.from({ length: pieces }, (_, i) => hex(bytesOf(i)))
  const task = new Task({ id: TASK, url: "http://o/f", contentLength: pieces * PIECE, pieceLength: PIECE, pieceDigests: digests })
  const ledger = new PieceLedger(TASK, pieces * PIECE, PIECE)
  const fetches: Array<Fetch> = []
  const writes: Array<Write> = []
  const take = () => {
    for (const c of machine.takeCommands()) {
      if (c._tag === "Fetch") fetches.push(c)
      else if (c._tag === "Write") writes.push(c)
    }
  }
  machine.start()
  machine.takeCommands()
  machine.answered("ask", new CandidateParents({ task, parents: Array.from({ length: parents }, (_, k) => ({ peerId: `p${k}`, host: host(`p${k}`) })) }))
  machine.takeCommands()
  machine.opened(ledger)
  const sources = machine.takeCommands().flatMap((c) => (c._tag === "Watch" ? [c.source] : []))
  // What each parent has offered so far (its arrival log).
  const offered = sources.map(() => [] as Array<number>)
  for (const [kind, a, b, n] of actions) {
    if (machine.done) break
    if (kind === "offer") {
      const k = a % sources.length
      const fresh = Array.from({ length: n + 1 }, (_, j) => (b + j * 7) % pieces).filter((i, j, all) => !offered[k].includes(i) && all.indexOf(i) === j)
      offered[k].push(...fresh)
      machine.availability(sources[k], { version: offered[k].length, pieces: offered[k].map((index) => ({ index, digest: digests[index] })), from: offered[k].length - fresh.length, complete: false })
    } else if (kind === "store" && writes.length > 0) {
      const w = writes.splice(a % writes.length, 1)[0]
      ledger.add(w.index, w.digest)
      machine.stored(w)
    } else if (fetches.length > 0) {
      const f = fetches.splice(a % fetches.length, 1)[0]
      if (kind === "arrive") machine.fetched(f.source, f.index, bytesOf(f.index), 10)
      else if (kind === "fail") machine.fetchFailed(f.source, f.index, "reset", true)
      else {
        // The slot was granted: the fetch may take another piece (and stays in flight).
        const index = machine.rebind(f.source, f.index)
        fetches.push({ ...f, index })
      }
    }
    take()
    const missed = machine.missedWork()
    if (missed !== undefined) return `after ${kind} ${a} ${b} ${n}: ${missed}`
  }
  return undefined
}

describe("PeerMachine pickPerSource bookkeeping", () => {
  it("never leaves a source with room holding a wanted piece while the peer has room (as a full scan would)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 3 }), fc.array(action, { maxLength: 200 }), (pieces, parents, concurrent, perParent, actions) => {
        expect(run(pieces, parents, concurrent, perParent, actions)).toBeUndefined()
      }),
      { seed: 20261129, numRuns: 300 }
    )
  })
})
