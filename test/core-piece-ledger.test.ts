// The piece ledger's long-poll side: the shared window a simulator answers with says exactly what the
// copying `delta` says, and waking waiters (reusing its array between wakes) wakes each live one once,
// including when a waiter's own callback adds a piece to the same ledger.
import { Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type LedgerDeltaView, type LedgerWaiter, PieceLedger } from "../core/piece-ledger.ts"
import { PieceAvailability } from "../core/protocol.ts"

const TASK = "d".repeat(64)
const SEED = 20_261_129

describe("PieceLedger", () => {
  it("deltaView's window on the arrival log equals delta, for any arrivals, since and (non-negative) until", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            order: fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i)),
            since: fc.integer({ min: -2, max: n + 2 }),
            until: fc.integer({ min: 0, max: n + 2 })
          })
        ),
        ({ n, order, since, until }) => {
          const ledger = new PieceLedger(TASK, n * 4, 4)
          for (const i of order) ledger.add(i, `digest-${i}`)
          const view: LedgerDeltaView = { version: -1, pieces: [], from: -1, to: -1, complete: true }
          const copy = ledger.delta(since, until)
          const shared = ledger.deltaView(view, since, until)
          expect(shared).toBe(view)
          expect(shared.version).toBe(copy.version)
          expect(shared.complete).toBe(copy.complete)
          expect(shared.pieces.slice(shared.from, shared.to)).toEqual(copy.pieces)
        }
      ),
      { seed: SEED, numRuns: 300 }
    )
  })

  it("wakes every live waiter past its version once, keeps the others, and survives a re-entrant add", () => {
    const ledger = new PieceLedger(TASK, 10 * 4, 4)
    const woken: Array<string> = []
    const waiter = (name: string, since: number, then?: () => void): LedgerWaiter => ({
      since,
      live: true,
      changed: () => {
        woken.push(`${name}@${ledger.version}`)
        then?.()
      }
    })
    const withdrawn = waiter("withdrawn", 0)
    withdrawn.live = false
    ledger.addWaiter(waiter("a", 0))
    ledger.addWaiter(withdrawn)
    ledger.addWaiter(waiter("later", 1))
    // Adds piece 5 from inside the wake for piece 0: "later" (since 1) is woken by that nested add.
    ledger.addWaiter(waiter("adder", 0, () => ledger.add(5, "x")))
    ledger.add(0, "y")
    expect(woken).toEqual(["a@1", "adder@1", "later@2"])
    // Every waiter has been answered or withdrawn: a third piece wakes nobody, and the array reused
    // between wakes takes new waiters as before.
    ledger.add(1, "z")
    expect(woken).toHaveLength(3)
    ledger.addWaiter(waiter("next", 3))
    ledger.add(2, "w")
    expect(woken).toEqual(["a@1", "adder@1", "later@2", "next@4"])
  })

  it("since's answer (built without the constructor's check) is the constructor's, and passes the wire Schema", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }).chain((n) => fc.record({ n: fc.constant(n), held: fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i)), since: fc.integer({ min: -1, max: n + 1 }) })), ({ n, held, since }) => {
        const ledger = new PieceLedger(TASK, n * 4, 4)
        for (const i of held) ledger.add(i, i.toString(16).padStart(64, "0"))
        const answer = ledger.since(since)
        expect(answer).toBeInstanceOf(PieceAvailability)
        const fields = { taskId: TASK, version: held.length, contentLength: n * 4, pieceLength: 4, pieces: answer.pieces, arriving: [], complete: held.length === n }
        expect(Object.keys(answer)).toEqual(Object.keys(new PieceAvailability(fields)))
        const wire = Schema.encodeUnknownSync(PieceAvailability)(answer)
        expect(Schema.encodeUnknownSync(PieceAvailability)(Schema.decodeUnknownSync(PieceAvailability)(wire))).toEqual(wire)
        expect(answer.pieces.map((p) => p.index)).toEqual(held.slice(Math.max(0, since)))
      }),
      { seed: SEED, numRuns: 100 }
    )
  })
})
