// The lower bounds results are measured against, by hand-computed cases, and a run behind a thin WAN:
// no strategy may beat the bound, and the cross-IDC figures are what they say.
import { describe, expect, it } from "vitest"
import { crossIdcMinimumCopies, rackBound, wanBound } from "../sim/bound.ts"
import { runScenario } from "../sim/run.ts"
import { decodeScenario, gbit, MiB } from "../sim/scenario.ts"

describe("wanBound", () => {
  const idcs = [
    { name: "a", wanBytesPerSecond: 100, peers: 5 },
    { name: "b", wanBytesPerSecond: 50, peers: 5 },
    { name: "c", wanBytesPerSecond: 25, peers: 0 }
  ]

  it("is one copy through the thinnest WAN downlink of an IDC with peers, and out of the origin's IDC", () => {
    // Origin in a: b must take F = 1000 through 50 → 20 s; a's uplink 1000/100 = 10 s; c has no peers.
    expect(wanBound(1000, "a", idcs)).toBe(20)
    // Origin in c (no peers there): a needs 10 s, b 20 s, c's uplink 1000/25 = 40 s.
    expect(wanBound(1000, "c", idcs)).toBe(40)
    // Origin in b: only a is remote: a's downlink 10 s, b's uplink 20 s.
    expect(wanBound(1000, "b", idcs)).toBe(20)
  })

  it("is 0 without WAN links, or with every peer in the origin's IDC", () => {
    expect(wanBound(1000, "a", [{ name: "a", peers: 3 }, { name: "b", peers: 3 }])).toBe(0)
    expect(wanBound(1000, "a", [{ name: "a", wanBytesPerSecond: 1, peers: 3 }, { name: "b", wanBytesPerSecond: 1, peers: 0 }])).toBe(0)
    // An origin outside every IDC: each IDC with peers is remote.
    expect(wanBound(1000, "elsewhere", [{ name: "a", wanBytesPerSecond: 200, peers: 1 }])).toBe(5)
  })

  it("counts the IDCs a copy must enter", () => {
    expect(crossIdcMinimumCopies("a", idcs)).toBe(1)
    expect(crossIdcMinimumCopies("c", idcs)).toBe(2)
    expect(crossIdcMinimumCopies("elsewhere", idcs)).toBe(2)
  })
})

describe("rackBound", () => {
  it("is one copy through the slowest rack downlink", () => {
    expect(rackBound(1000, [500, 250, 1000])).toBe(4)
    expect(rackBound(1000, [])).toBe(0)
  })
})

describe("the bound in a run behind a thin WAN", () => {
  // Two IDCs of 10 peers at 10 Gbit/s, joined by 100 Mbit/s WAN links; the origin (10 Gbit/s) and seed
  // in a. Kumar–Ross alone is F/10 Gbit/s; the WAN term is F/100 Mbit/s, 100× more.
  const scenario = decodeScenario({
    name: "thin-wan",
    file: { url: "https://origin.example/thin-wan.bin", sizeBytes: 64 * MiB },
    idcs: [
      { name: "a", location: "x|a", peers: 10, seeds: 1, racks: 2, wanBytesPerSecond: gbit(0.1) },
      { name: "b", location: "x|b", peers: 10, seeds: 0, racks: 2, wanBytesPerSecond: gbit(0.1) }
    ],
    peer: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 16 },
    seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 16 },
    origin: { idc: "a", uploadBytesPerSecond: gbit(10) },
    latency: { intraIdcRttMs: 0.2, interIdcRttMs: 10 },
    strategies: ["direct", "damselfly", "dragonfly"]
  }, "test")

  it("is F / the WAN rate; no strategy beats it; cross-IDC bytes at least one copy, damselfly's about one", () => {
    const F = 64 * MiB
    for (const strategy of ["direct", "damselfly", "dragonfly"] as const) {
      const r = runScenario(scenario, { seed: 1, strategy })
      expect(r.verified, strategy).toBe(true)
      expect(r.boundSeconds, strategy).toBeCloseTo(F / gbit(0.1), 9)
      expect(r.completionSeconds.max, strategy).toBeGreaterThanOrEqual(r.boundSeconds)
      expect(r.crossIdcMinimumBytes, strategy).toBe(F)
      expect(r.crossIdcBytes, strategy).toBeGreaterThanOrEqual(F)
      // direct: every peer of b from the origin in a, 10 copies across.
      if (strategy === "direct") expect(r.crossIdcBytes / F).toBeCloseTo(10, 6)
      if (strategy === "damselfly") {
        // Not exactly one: b's first peer to register is b's root in both stripes until its next refresh
        // (1 s, 12.5 MB of this WAN) tells it that later peers forward the other stripe.
        expect(r.crossIdcBytes / F, "damselfly's cross-IDC copies").toBeLessThanOrEqual(1.2)
        expect(r.maxOverBound, "damselfly's max/bound").toBeLessThanOrEqual(1.3)
      }
    }
  }, 120_000)
})
