import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { flashCrowd } from "../scenarios/presets.ts"
import { kumarRossBound, runScenario } from "../sim/run.ts"
import { decodeScenario, MiB } from "../sim/scenario.ts"

const check = <T>(prop: fc.IProperty<T>, numRuns: number) => {
  const out = fc.check(prop, { seed: 42, numRuns })
  if (out.failed) console.error(`fast-check failed: seed ${out.seed}, path ${out.counterexamplePath}, counterexample ${fc.stringify(out.counterexample)}`)
  fc.assert(prop, { seed: 42, numRuns })
}

const small = decodeScenario(flashCrowd({ peers: 16, sizeBytes: 128 * MiB }))

describe("runScenario", () => {
  it("is deterministic: same seed, same trace hash (twice in one process); another seed, another hash", () => {
    for (const strategy of ["direct", "p2p"] as const) {
      const a = runScenario(small, { seed: 11, strategy })
      const b = runScenario(small, { seed: 11, strategy })
      expect(b.traceHash).toBe(a.traceHash)
      expect(b.events).toBe(a.events)
      expect(b.completionSeconds).toEqual(a.completionSeconds)
      expect(runScenario(small, { seed: 12, strategy }).traceHash).not.toBe(a.traceHash)
    }
  })

  it("finishes every peer with every piece verified, and p2p takes far less from the origin", () => {
    const direct = runScenario(small, { seed: 3, strategy: "direct" })
    const p2p = runScenario(small, { seed: 3, strategy: "p2p" })
    for (const r of [direct, p2p]) {
      expect(r.failures).toEqual([])
      expect(r.finishedPeers).toBe(16)
      expect(r.verified).toBe(true)
      expect(r.originEgressCopies).toBeGreaterThanOrEqual(1)
      expect(r.completionSeconds.max).toBeGreaterThanOrEqual(r.boundSeconds)
    }
    expect(direct.originEgressCopies).toBeCloseTo(16, 6)
    expect(p2p.verifiedPeers).toBe(17) // 16 peers and the seed
    expect(p2p.originEgressBytes).toBeLessThan(direct.originEgressBytes / 4)
    expect(p2p.completionSeconds.max).toBeLessThan(direct.completionSeconds.max)
  })

  it("never beats the Kumar–Ross bound, always verifies, always takes at least one copy from the origin", () => {
    const arb = fc.record({
      peers: fc.integer({ min: 2, max: 16 }),
      sizeMiB: fc.constantFrom(64, 128, 256),
      originGbit: fc.constantFrom(1, 2, 10),
      peerGbit: fc.constantFrom(1, 10, 25),
      spreadSeconds: fc.constantFrom(0, 0, 0.5, 2),
      interIdcRttMs: fc.constantFrom(1, 5, 30),
      seed: fc.nat({ max: 1000 })
    })
    check(fc.property(arb, (p) => {
      const scenario = decodeScenario(flashCrowd({ ...p, sizeBytes: p.sizeMiB * MiB }))
      for (const strategy of ["direct", "p2p"] as const) {
        const r = runScenario(scenario, { seed: p.seed, strategy })
        const label = `${strategy} seed ${p.seed} ${JSON.stringify(p)}`
        expect(r.failures, label).toEqual([])
        expect(r.verified, label).toBe(true)
        expect(r.originEgressCopies, label).toBeGreaterThanOrEqual(1)
        // Arrivals are spread, so the last peer finishes at least the bound after the first arrival.
        expect(r.virtualSeconds, label).toBeGreaterThanOrEqual(r.boundSeconds)
        if (p.spreadSeconds === 0) expect(r.completionSeconds.max, label).toBeGreaterThanOrEqual(r.boundSeconds)
      }
    }), 25)
  }, 120_000)
})

describe("kumarRossBound", () => {
  it("is the largest of origin, slowest downlink and aggregate upload", () => {
    // 4 peers, F = 100: origin 10 → 10 s; d_min 50 → 2 s; 400/(10+4·5) ≈ 13.3 s.
    expect(kumarRossBound(100, 10, [50, 60, 70, 80], [5, 5, 5, 5])).toBeCloseTo(400 / 30, 9)
    expect(kumarRossBound(100, 1000, [20, 60], [1000, 1000])).toBe(5)
  })
})
