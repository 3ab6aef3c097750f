// Piece picker invariants: only wanted pieces that some source holds, no duplicates, at most `max`,
// rarest first; and the source chooser never exceeds a source's in-flight cap.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { chooseSource, pickPieces } from "../core/peer/piece-picker.ts"

const view = fc.integer({ min: 0, max: 300 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    availability: fc.array(fc.nat(5), { minLength: n, maxLength: n }),
    wanted: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    max: fc.nat(16),
    offset: fc.nat(1000),
    sequential: fc.boolean()
  })
)

describe("pickPieces", () => {
  it("picks only wanted, available, distinct pieces, at most max, rarest first", () => {
    fc.assert(
      fc.property(view, ({ n, availability, wanted, max, offset, sequential }) => {
        const picks = pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i] }, max, offset % Math.max(1, n), sequential)
        expect(picks.length).toBeLessThanOrEqual(max)
        expect(new Set(picks).size).toBe(picks.length)
        for (const i of picks) {
          expect(wanted[i]).toBe(true)
          expect(availability[i]).toBeGreaterThan(0)
        }
        const eligible = availability.map((a, i) => (a > 0 && wanted[i] ? i : -1)).filter((i) => i >= 0)
        expect(picks.length).toBe(Math.min(max, eligible.length))
        if (sequential) {
          expect(picks).toEqual(eligible.slice(0, max))
        } else if (picks.length > 0) {
          // Nothing left out is rarer than the rarest... and nothing left out is rarer than what was taken.
          const worstTaken = Math.max(...picks.map((i) => availability[i]))
          for (const i of eligible) if (!picks.includes(i)) expect(availability[i]).toBeGreaterThanOrEqual(worstTaken)
        }
      }),
      { seed: 42, numRuns: 500, verbose: 1 }
    )
  })
})

describe("pickPieces, rarest first", () => {
  it("gives exactly the stable sort of the rotation by availability, cut at max (the one-pass selection for few picks included)", () => {
    fc.assert(
      fc.property(view, ({ n, availability, wanted, max, offset }) => {
        const rotation = offset % Math.max(1, n)
        const order = Array.from({ length: n }, (_, k) => (k + rotation) % n).filter((i) => availability[i] > 0 && wanted[i])
        const sorted = [...order].sort((a, b) => availability[a] - availability[b])
        const expected = sorted.slice(0, max)
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i] }, max, rotation, false)).toEqual(expected)
        // A skip mask of unwanted pieces (held ones) changes nothing but the work.
        const skip = wanted.map((w, i) => (!w && i % 2 === 0 ? 1 : 0))
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i], skip }, max, rotation, false)).toEqual(expected)
        // Candidates (every available piece plus some unavailable ones, scrambled) change nothing but the work.
        const candidates = Array.from({ length: n }, (_, i) => i)
          .filter((i) => availability[i] > 0 || i % 3 === 0)
          .sort((a, b) => ((a * 7919 + offset) % 31) - ((b * 7919 + offset) % 31) || b - a)
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i], skip, candidates: [...candidates, -1], candidateCount: candidates.length }, max, rotation, false)).toEqual(expected)
        // Above the one-pass limit (a striped peer asks for every candidate) the same order.
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i] }, n + 1, rotation, false)).toEqual(sorted)
      }),
      { seed: 7, numRuns: 500, verbose: 1 }
    )
  })
})

describe("pickPieces, one holder's pieces (BitTorrent fills each connection from what that peer has)", () => {
  it("equals the rarest-first picks among the pieces the holder has, in both the one-pass and the sorting path", () => {
    fc.assert(
      fc.property(view, fc.array(fc.boolean(), { minLength: 300, maxLength: 300 }), ({ n, availability, wanted, max, offset }, has) => {
        const rotation = offset % Math.max(1, n)
        const holder = has.slice(0, n).map((h) => (h ? 1 : 0))
        const order = Array.from({ length: n }, (_, k) => (k + rotation) % n).filter((i) => availability[i] > 0 && wanted[i] && holder[i] === 1)
        const sorted = [...order].sort((a, b) => availability[a] - availability[b])
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i], holder }, max, rotation, false)).toEqual(sorted.slice(0, max))
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i], holder }, n + 1, rotation, false)).toEqual(sorted)
        expect(pickPieces({ pieceCount: n, availability, wanted: (i) => wanted[i], holder }, max, 0, true)).toEqual(order.sort((a, b) => a - b).slice(0, max))
      }),
      { seed: 11, numRuns: 300, verbose: 1 }
    )
  })
})

describe("chooseSource", () => {
  it("returns a holder with room and the most spare bandwidth", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.string(), uploadBandwidth: fc.integer({ min: 1, max: 1e9 }), inflight: fc.nat(6), maxInflight: fc.integer({ min: 1, max: 6 }) }), { maxLength: 8 }),
        (holders) => {
          const s = chooseSource(holders)
          const open = holders.filter((h) => h.inflight < h.maxInflight)
          if (open.length === 0) {
            expect(s).toBeUndefined()
            return
          }
          expect(s).toBeDefined()
          expect(s!.inflight).toBeLessThan(s!.maxInflight)
          const best = Math.max(...open.map((h) => h.uploadBandwidth / (h.inflight + 1)))
          expect(s!.uploadBandwidth / (s!.inflight + 1)).toBe(best)
        }
      ),
      { seed: 42, numRuns: 300, verbose: 1 }
    )
  })
})
