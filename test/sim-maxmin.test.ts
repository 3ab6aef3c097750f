// The max-min solver against hand-computed cases and the textbook characterisation: feasible (no
// link over capacity) and every flow has a bottleneck — a saturated link on its path where no other
// flow gets more. That pair of conditions holds for the max-min fair allocation and only for it.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { maxMinRates } from "../sim/maxmin.ts"

const EPS = 1e-6

describe("maxMinRates", () => {
  it("splits one link evenly", () => {
    expect([...maxMinRates({ capacity: [10], paths: [[0], [0]] })]).toEqual([5, 5])
  })
  it("gives a flow the capacity another bottleneck leaves over", () => {
    // flow 0 crosses A (10); flow 1 crosses A and B (4): flow 1 is held to 4, flow 0 takes the other 6.
    const r = maxMinRates({ capacity: [10, 4], paths: [[0], [0, 1]] })
    expect(r[0]).toBeCloseTo(6)
    expect(r[1]).toBeCloseTo(4)
  })
  it("solves the parking lot", () => {
    // Three links of 1; a long flow over all three and one short flow per link: everyone gets 1/2.
    const r = maxMinRates({ capacity: [1, 1, 1], paths: [[0, 1, 2], [0], [1], [2]] })
    for (const x of r) expect(x).toBeCloseTo(0.5)
  })
  it("matches an uplink/downlink swarm case by hand", () => {
    // Hosts a (up 100) and b (up 30) send to c (down 100): b is held by its uplink at 30; a gets 70.
    // Links: 0 = a.up, 1 = b.up, 2 = c.down.
    const r = maxMinRates({ capacity: [100, 30, 100], paths: [[0, 2], [1, 2]] })
    expect(r[0]).toBeCloseTo(70)
    expect(r[1]).toBeCloseTo(30)
  })

  const problem = fc.integer({ min: 1, max: 12 }).chain((links) =>
    fc.record({
      capacity: fc.array(fc.double({ min: 0.5, max: 1000, noNaN: true }), { minLength: links, maxLength: links }),
      paths: fc.array(fc.uniqueArray(fc.nat(links - 1), { minLength: 1, maxLength: Math.min(4, links) }), { minLength: 1, maxLength: 30 })
    })
  )

  it("is feasible and every flow has a bottleneck (max-min optimal)", () => {
    fc.assert(
      fc.property(problem, ({ capacity, paths }) => {
        const r = maxMinRates({ capacity, paths })
        const load = new Array(capacity.length).fill(0)
        const maxOn = new Array(capacity.length).fill(0)
        paths.forEach((p, f) => {
          expect(r[f]).toBeGreaterThan(0)
          for (const l of p) {
            load[l] += r[f]
            maxOn[l] = Math.max(maxOn[l], r[f])
          }
        })
        for (let l = 0; l < capacity.length; l++) expect(load[l]).toBeLessThanOrEqual(capacity[l] * (1 + EPS) + EPS)
        paths.forEach((p, f) => {
          const bottleneck = p.some((l) => load[l] >= capacity[l] * (1 - EPS) - EPS && r[f] >= maxOn[l] * (1 - EPS))
          expect(bottleneck, `flow ${f} (rate ${r[f]}) has no bottleneck`).toBe(true)
        })
      }),
      { seed: 42, numRuns: 400, verbose: 1 }
    )
  })
})
