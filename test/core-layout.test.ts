import { createHash } from "node:crypto"
import fc from "fast-check"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { DAMSELFLY_MIN_PIECE_LENGTH, damselflyPieceLengthFor, MAX_PIECE_LENGTH, MiB, MIN_PIECE_LENGTH, pieceAt, pieceCountOf, pieceLengthFor } from "../core/piece-layout.ts"
import { strategies, strategyNames, strategyPieceLength } from "../core/strategies.ts"
import { Sha256 } from "../core/services/sha256.ts"
import { taskIdOf } from "../core/task-id.ts"
import { dragonflyEvaluator, locationAffinity } from "../core/scheduler/evaluator.ts"
import { TaskDag } from "../core/scheduler/task-dag.ts"
import { Host } from "../core/domain.ts"

const sha = Sha256.of({ hex: (d) => createHash("sha256").update(d).digest("hex") })
const id = (input: Parameters<typeof taskIdOf>[0]) => Effect.runSync(Effect.provideService(taskIdOf(input), Sha256, sha))

describe("piece layout", () => {
  it("is a power of two of length/500 clamped to [4 MiB, 64 MiB]", () => {
    expect(pieceLengthFor(0)).toBe(MIN_PIECE_LENGTH)
    expect(pieceLengthFor(1024 * MiB)).toBe(4 * MiB)
    expect(pieceLengthFor(4096 * MiB)).toBe(16 * MiB)
    expect(pieceLengthFor(1024 * 1024 * MiB)).toBe(MAX_PIECE_LENGTH)
    expect(pieceLengthFor(1024 * MiB, 1 * MiB)).toBe(1 * MiB)
    expect(() => pieceLengthFor(10, 0)).toThrow(/pieceLength/)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (len) => {
        const p = pieceLengthFor(len)
        expect(Number.isInteger(Math.log2(p))).toBe(true)
        expect(p).toBeGreaterThanOrEqual(MIN_PIECE_LENGTH)
        expect(p).toBeLessThanOrEqual(MAX_PIECE_LENGTH)
        const count = pieceCountOf(len, p)
        if (p > MIN_PIECE_LENGTH && p < MAX_PIECE_LENGTH) expect(count).toBeLessThanOrEqual(500)
        // pieces tile the content exactly
        let total = 0
        for (let i = 0; i < Math.min(count, 3); i++) total += pieceAt(len, p, i).length
        if (count <= 3) expect(total).toBe(len)
        if (count > 0) expect(pieceAt(len, p, count - 1).offset + pieceAt(len, p, count - 1).length).toBe(len)
      }),
      { seed: 7, numRuns: 300 }
    )
  })
})

describe("damselfly's piece layout", () => {
  it("is Dragonfly's rule with a 1.5 MiB floor: the floor or a power of two, never longer than Dragonfly's, at most 4/1.5 times as many pieces", () => {
    expect(DAMSELFLY_MIN_PIECE_LENGTH).toBe(1.5 * MiB)
    expect(damselflyPieceLengthFor(0)).toBe(DAMSELFLY_MIN_PIECE_LENGTH)
    expect(damselflyPieceLengthFor(10_000_000)).toBe(1.5 * MiB)
    expect(damselflyPieceLengthFor(128 * MiB)).toBe(1.5 * MiB)
    expect(damselflyPieceLengthFor(500 * MiB)).toBe(1.5 * MiB)
    expect(damselflyPieceLengthFor(501 * MiB)).toBe(2 * MiB)
    expect(damselflyPieceLengthFor(953 * MiB)).toBe(2 * MiB)
    expect(damselflyPieceLengthFor(1024 * MiB)).toBe(4 * MiB)
    expect(damselflyPieceLengthFor(1024 * 1024 * MiB)).toBe(MAX_PIECE_LENGTH)
    expect(damselflyPieceLengthFor(1024 * MiB, 3)).toBe(3)
    expect(() => damselflyPieceLengthFor(10, 1.5)).toThrow(/pieceLength/)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (len) => {
        const p = damselflyPieceLengthFor(len)
        const dragonfly = pieceLengthFor(len)
        expect(p === DAMSELFLY_MIN_PIECE_LENGTH || Number.isInteger(Math.log2(p))).toBe(true)
        expect(p % (512 * 1024)).toBe(0)
        expect(p).toBeGreaterThanOrEqual(DAMSELFLY_MIN_PIECE_LENGTH)
        expect(p).toBeLessThanOrEqual(dragonfly)
        expect(dragonfly / p).toBeLessThanOrEqual(MIN_PIECE_LENGTH / DAMSELFLY_MIN_PIECE_LENGTH)
        if (p > DAMSELFLY_MIN_PIECE_LENGTH && p < MAX_PIECE_LENGTH) expect(pieceCountOf(len, p)).toBeLessThanOrEqual(500)
        if (p < dragonfly) expect(dragonfly).toBe(MIN_PIECE_LENGTH)
      }),
      { seed: 9, numRuns: 300 }
    )
  })

  it("each strategy cuts by its own rule (damselfly's, else Dragonfly's), and an override wins", () => {
    for (const name of strategyNames) {
      const expected = name === "damselfly" ? 1.5 * MiB : 4 * MiB
      expect(strategyPieceLength(name, 128 * MiB), name).toBe(expected)
      expect(strategies[name].pieceLength(128 * MiB), name).toBe(expected)
      expect(strategyPieceLength(name, 128 * MiB, 2 * MiB), name).toBe(2 * MiB)
    }
  })
})

describe("task id", () => {
  it("ignores filtered query parameters and depends on tag, application and piece length", () => {
    const base = { url: "http://o/f?x=1&sig=abc", pieceLength: 4 * MiB, filteredQueryParams: ["sig"] }
    expect(id(base)).toBe(id({ ...base, url: "http://o/f?x=1&sig=zzz" }))
    expect(id(base)).not.toBe(id({ ...base, url: "http://o/f?x=2&sig=abc" }))
    expect(id(base)).not.toBe(id({ ...base, tag: "t" }))
    expect(id(base)).not.toBe(id({ ...base, application: "a" }))
    expect(id(base)).not.toBe(id({ ...base, pieceLength: 8 * MiB }))
    expect(id(base)).toMatch(/^[0-9a-f]{64}$/)
  })
  it("is the content digest when given, and rejects a malformed digest by name", () => {
    const d = "c".repeat(64)
    expect(id({ url: "http://a", pieceLength: 1, digest: `sha256:${d}` })).toBe(d)
    const bad = Effect.runSync(Effect.flip(Effect.provideService(taskIdOf({ url: "x", pieceLength: 1, digest: "md5:1" }), Sha256, sha)))
    expect(bad.message).toMatch(/^digest: expected/)
  })
})

describe("evaluator and DAG", () => {
  const h = (over: Partial<ConstructorParameters<typeof Host>[0]>) =>
    new Host({ id: "h", ip: "1", port: 1, idc: "a", location: "cn|hz|x", type: "normal", uploadBandwidth: 1, downloadBandwidth: 1, uploadSlots: 4, ...over })
  it("prefers the same IDC, nearer locations, seeds while fetching, and idle hosts", () => {
    const child = { id: "c", host: h({ id: "c" }), state: "running" as const, finishedPieces: 0, pieceCosts: [] }
    const p = (over: Partial<ConstructorParameters<typeof Host>[0]>, state: "running" | "succeeded" = "running") =>
      ({ id: "p", host: h({ id: "p", ...over }), state, finishedPieces: 0, pieceCosts: [] })
    const s = (x: ReturnType<typeof p>, uploads = 0) => dragonflyEvaluator.score(x, { uploads }, child, 10)
    expect(s(p({ idc: "a" }))).toBeGreaterThan(s(p({ idc: "b" })))
    expect(s(p({ location: "cn|hz|x" }))).toBeGreaterThan(s(p({ location: "cn|sh|x" })))
    expect(s(p({ type: "seed" }))).toBeGreaterThan(s(p({ type: "normal" })))
    expect(s(p({ type: "seed" }, "succeeded"))).toBeLessThan(s(p({ type: "normal" }, "succeeded")))
    expect(s(p({}), 0)).toBeGreaterThan(s(p({}), 3))
    expect(locationAffinity("a|b|c", "a|b|d")).toBeCloseTo(0.4)
  })
  it("marks failed parents and cost outliers bad", () => {
    const v = (state: "running" | "failed", pieceCosts: Array<number>) => ({ id: "p", host: h({}), state, finishedPieces: 0, pieceCosts })
    expect(dragonflyEvaluator.isBadParent(v("failed", []))).toBe(true)
    expect(dragonflyEvaluator.isBadParent(v("running", [10, 10, 10]))).toBe(false)
    expect(dragonflyEvaluator.isBadParent(v("running", [10, 10, 500]))).toBe(true)
  })
  it("refuses edges that would close a cycle", () => {
    const dag = new TaskDag()
    for (const v of ["a", "b", "c"]) dag.addVertex(v)
    expect(dag.addEdge("a", "b")).toBe(true)
    expect(dag.addEdge("b", "c")).toBe(true)
    expect(dag.addEdge("c", "a")).toBe(false)
    expect(dag.addEdge("a", "a")).toBe(false)
    expect(dag.isAcyclic()).toBe(true)
  })
})
