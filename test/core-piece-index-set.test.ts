import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { PieceIndexCounts, PieceIndexSet } from "../core/peer/piece-index-set.ts"

// Operations on piece indices (small and large, to make the arrays grow), as the peer machine does them.
const op = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), index: fc.oneof(fc.nat(20), fc.nat(600)) }),
  fc.record({ kind: fc.constant("delete" as const), index: fc.oneof(fc.nat(20), fc.nat(600)) }),
  fc.record({ kind: fc.constant("set" as const), index: fc.oneof(fc.nat(20), fc.nat(600)), count: fc.integer({ min: -3, max: 9 }) }),
  fc.record({ kind: fc.constant("clear" as const) })
)

describe("PieceIndexSet and PieceIndexCounts", () => {
  it("answer as a Set<number> and a Map<number, number> would, iteration order included", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), fc.array(fc.nat(700), { maxLength: 30 }), (ops, probes) => {
        const set = new PieceIndexSet()
        const counts = new PieceIndexCounts()
        const refSet = new Set<number>()
        const refMap = new Map<number, number>()
        for (const o of ops) {
          switch (o.kind) {
            case "add":
              set.add(o.index)
              refSet.add(o.index)
              break
            case "delete":
              expect(set.delete(o.index)).toBe(refSet.delete(o.index))
              expect(counts.delete(o.index)).toBe(refMap.delete(o.index))
              break
            case "set":
              counts.set(o.index, o.count)
              refMap.set(o.index, o.count)
              break
            case "clear":
              set.clear()
              refSet.clear()
              counts.clear()
              refMap.clear()
              break
          }
          expect(set.size).toBe(refSet.size)
          expect(counts.size).toBe(refMap.size)
        }
        expect([...set]).toEqual([...refSet])
        expect(set.keys()).toEqual([...refSet.keys()])
        expect(counts.keys()).toEqual([...refMap.keys()])
        for (const i of [...probes, ...refSet, ...refMap.keys()]) {
          expect(set.has(i)).toBe(refSet.has(i))
          expect(counts.has(i)).toBe(refMap.has(i))
          expect(counts.get(i)).toBe(refMap.get(i))
        }
      }),
      { seed: 7, numRuns: 400, verbose: 1 }
    )
  })

  it("refuses an index that is not a non-negative integer", () => {
    const set = new PieceIndexSet()
    expect(() => set.add(-1)).toThrow(/piece index -1/)
    expect(() => set.add(1.5)).toThrow(/non-negative integer/)
    expect(set.size).toBe(0)
    expect(() => new PieceIndexCounts().set(2, 0.5)).toThrow(/count 0.5 of piece 2/)
  })
})
