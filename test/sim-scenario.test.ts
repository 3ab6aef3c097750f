// Scenario files and what they describe: decoding (good and bad fields, YAML and TS, families),
// multi-layer images, rolling updates, Poisson arrivals, heterogeneous NICs, departures, determinism.
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { flashCrowd } from "../scenarios/presets.ts"
import { runScenario } from "../sim/run.ts"
import { blobsOf, decodeScenario, loadScenario, loadScenarios, MiB, type ScenarioInput, ScenarioError, scaleScenario } from "../sim/scenario.ts"
import { LIBRARY } from "../sim/library.ts"
import { World } from "../sim/world.ts"

const base: ScenarioInput = { ...flashCrowd({ peers: 8, sizeBytes: 32 * MiB }), strategies: ["dragonfly"] }
const withField = (patch: Record<string, unknown>): unknown => ({ ...base, ...patch })

const errorOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError)
    return (e as Error).message
  }
  throw new Error("expected a ScenarioError")
}
const asyncErrorOf = async (f: () => Promise<unknown>): Promise<string> => {
  try {
    await f()
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError)
    return (e as Error).message
  }
  throw new Error("expected a ScenarioError")
}

describe("scenario decoding", () => {
  it("loads every library scenario; kraken-2600 is a 2-layer 3 GB image with Kraken's reported figures; spegel-matrix is 12 named cases", async () => {
    for (const slug of LIBRARY) expect((await loadScenarios(`scenarios/${slug}.ts`)).length).toBeGreaterThanOrEqual(1)
    const kraken = await loadScenario("scenarios/kraken-2600.ts")
    expect(kraken.idcs.reduce((n, i) => n + i.peers, 0)).toBe(2600)
    expect(kraken.file.sizeBytes).toBe(3e9)
    expect(blobsOf(kraken.file).map((b) => b.sizeBytes)).toEqual([1.5e9, 1.5e9])
    expect(kraken.peer.uploadBytesPerSecond).toBe(300e6)
    expect(kraken.reported).toMatchObject({ p50Seconds: 10, p99Seconds: 18, p999Seconds: 22 })
    const spegel = await loadScenarios("scenarios/spegel-matrix.ts")
    expect(spegel).toHaveLength(12)
    expect(new Set(spegel.map((c) => c.name)).size).toBe(12)
    expect(spegel.every((c) => c.idcs[0].peers === 10)).toBe(true)
    expect(spegel.filter((c) => c.arrival.kind === "rolling").every((c) => c.arrival.batchFraction === 0.2)).toBe(true)
    expect(spegel.map((c) => blobsOf(c.file).length).sort()).toEqual([1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4])
    // A family is not one scenario.
    expect(await asyncErrorOf(() => loadScenario("scenarios/spegel-matrix.ts"))).toMatch(/expected one scenario, got a family of 12/)
  })

  it("defaults: every strategy, flash arrivals, one blob at the file's own URL", () => {
    const { strategies: _, ...rest } = base
    const s = decodeScenario(rest)
    expect(s.strategies.length).toBeGreaterThanOrEqual(7)
    expect(s.strategies).toContain("damselfly")
    expect(s.arrival).toMatchObject({ kind: "uniform", spreadSeconds: 0 })
    expect(blobsOf(s.file)).toEqual([{ name: "file", url: s.file.url, sizeBytes: s.file.sizeBytes }])
    // An even split gives the last layer the remainder.
    expect(blobsOf({ url: "u", sizeBytes: 10, layers: 3 }).map((b) => b.sizeBytes)).toEqual([3, 3, 4])
  })

  it("a bad field names itself and what was expected", () => {
    const file = (base as { file: object }).file
    const cases: Array<[unknown, RegExp]> = [
      [withField({ file: { ...file, layers: [{ sizeBytes: 1 * MiB }, { sizeBytes: 2 * MiB }] } }), /file\.layers: expected layer sizes summing to file\.sizeBytes \(33554432\), got 3145728/],
      [withField({ file: { ...file, layers: 0 } }), /layers/],
      [withField({ file: { ...file, layers: [{ sizeBytes: -5 }] } }), /layers.*sizeBytes/s],
      [withField({ arrival: { kind: "zigzag" } }), /Expected "flash" \| "uniform" \| "poisson" \| "rolling"\s+at \["arrival"\]\["kind"\]/],
      [withField({ arrival: { kind: "rolling" } }), /arrival\.batchFraction: expected a number in \(0, 1\] for kind "rolling"/],
      [withField({ arrival: { kind: "rolling", batchFraction: 1.5 } }), /Expected a value less than or equal to 1\s+at \["arrival"\]\["batchFraction"\]/],
      [withField({ arrival: { kind: "poisson" } }), /arrival\.ratePerSecond: expected a number > 0 for kind "poisson"/],
      [withField({ arrival: { kind: "flash", intervalSeconds: 3 } }), /arrival\.intervalSeconds: only for kind "rolling"/],
      [withField({ arrival: { kind: "poisson", ratePerSecond: 2, spreadSeconds: 4 } }), /arrival\.spreadSeconds: only for kind "uniform"/],
      [withField({ departure: { afterCompletionSeconds: 1, fraction: 2 } }), /departure[\s\S]*fraction/],
      [withField({ departure: {} }), /departure: expected exactly one of afterCompletionSeconds and atSeconds/],
      [withField({ departure: { afterCompletionSeconds: 1, atSeconds: 2 } }), /departure: expected exactly one of afterCompletionSeconds and atSeconds/],
      [withField({ departure: { atSeconds: -2 } }), /departure[\s\S]*atSeconds/],
      [withField({ reported: { source: "x", p50Seconds: "ten" } }), /reported[\s\S]*p50Seconds/],
      [withField({ idcs: [{ name: "a", location: "x|y|a", peers: 2, peerClasses: [{ weight: -1, uploadBytesPerSecond: 1, downloadBytesPerSecond: 1 }] }] }), /peerClasses[\s\S]*weight/],
      [withField({ origin: { idc: "nowhere", uploadBytesPerSecond: 1 } }), /origin\.idc: expected one of idcA, idcB, got "nowhere"/],
      [withField({ colour: "blue" }), /colour/]
    ]
    for (const [input, message] of cases) expect(errorOf(() => decodeScenario(input, "t")), JSON.stringify(input).slice(0, 300)).toMatch(message)
  })

  it("YAML and TS files and families: the error names the file, the case and the field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-scenario-"))
    const yaml = join(dir, "bad.yaml")
    writeFileSync(yaml, [
      "name: bad",
      "file: { url: https://o.example/f, sizeBytes: 1000, layers: [{ sizeBytes: 600 }, { sizeBytes: 300 }] }",
      "idcs: [{ name: a, location: 'x|y|a', peers: 2 }]",
      "peer: { uploadBytesPerSecond: 100, downloadBytesPerSecond: 100 }",
      "seed: { uploadBytesPerSecond: 100, downloadBytesPerSecond: 100 }",
      "origin: { idc: a, uploadBytesPerSecond: 100 }",
      "latency: { intraIdcRttMs: 0, interIdcRttMs: 0 }",
      "arrival: { kind: rolling, batchFraction: 0.5, intervalSeconds: 2 }"
    ].join("\n"))
    expect(await asyncErrorOf(() => loadScenarios(yaml))).toMatch(/bad\.yaml: file\.layers: expected layer sizes summing to file\.sizeBytes \(1000\), got 900/)

    const ts = join(dir, "family.ts")
    writeFileSync(ts, `export default [${JSON.stringify({ ...base, name: "one" })}, ${JSON.stringify({ ...base, name: "two", arrival: { kind: "rolling", batchFraction: "a fifth" } })}]\n`)
    expect(await asyncErrorOf(() => loadScenarios(ts))).toMatch(/family\.ts: \[1\]: [\s\S]*batchFraction/)

    const dup = join(dir, "dup.json")
    writeFileSync(dup, JSON.stringify([{ ...base, name: "same" }, { ...base, name: "same" }]))
    expect(await asyncErrorOf(() => loadScenarios(dup))).toMatch(/dup\.json: \[1\]\.name: expected names unique in the family, got "same" twice/)
  })

  it("--scale multiplies peers per IDC, never below 10 (or the IDC's own count)", () => {
    const { scheduler: _, ...rest } = base
    const s = decodeScenario({ ...rest, idcs: [{ name: "a", location: "x|y|a", peers: 2600 }, { name: "b", location: "x|y|b", peers: 4 }], origin: { idc: "a", uploadBytesPerSecond: 1e9 } })
    expect(scaleScenario(s, 0.1).idcs.map((i) => i.peers)).toEqual([260, 4])
    expect(scaleScenario(s, 0.001).idcs.map((i) => i.peers)).toEqual([10, 4])
    expect(scaleScenario(s, 1)).toBe(s)
  })
})

const layered = (patch: Record<string, unknown> = {}) =>
  decodeScenario({
    ...base,
    file: { url: "https://registry.example/v2/app", sizeBytes: 40 * MiB, layers: [{ sizeBytes: 4 * MiB, name: "small" }, { sizeBytes: 36 * MiB, name: "big" }] },
    ...patch
  })

const traced = (scenario: ReturnType<typeof layered>, seed: number, strategy: "dragonfly" | "direct" | "damselfly" = "dragonfly") => {
  const lines: Array<string> = []
  const world = new World(scenario, { seed, strategy, traceSink: (l) => lines.push(l.trimEnd()) })
  world.run()
  return { world, lines }
}

describe("multi-layer images", () => {
  it("one task per layer through the core; a host is done only when its last layer is", () => {
    const { world, lines } = traced(layered(), 5)
    expect(world.blobs).toHaveLength(2)
    expect(new Set(world.blobs.map((b) => b.taskId)).size).toBe(2)
    for (const p of world.peers) {
      const outcomes = world.blobOutcomes.get(p.host.id)!
      expect(outcomes.every((o) => o?.ok === true), p.host.id).toBe(true)
      expect(p.outcome).toBe("ok")
      // Finished exactly when the later layer did, never before.
      expect(p.finishedAt).toBe(Math.max(...outcomes.map((o) => o!.at)))
      // Both layers are separate tasks in the host's store, each complete.
      expect(world.blobs.every((b) => p.store.tasks.get(b.taskId)?.ledger.complete)).toBe(true)
      // In the trace, "done" follows both "layer … ok" lines of that host.
      const at = (needle: string) => lines.findIndex((l) => l.endsWith(needle))
      const done = at(` done ${p.host.id} ok`)
      expect(done).toBeGreaterThan(at(` layer ${p.host.id} small ok`))
      expect(done).toBeGreaterThan(at(` layer ${p.host.id} big ok`))
      expect(at(` layer ${p.host.id} small ok`)).toBeGreaterThanOrEqual(0)
    }
    const r = runScenario(layered(), { seed: 5, strategy: "dragonfly" })
    expect(r.verified).toBe(true)
    expect(r.layers.map((l) => l.name)).toEqual(["small", "big"])
    expect(r.pieceCount).toBe(r.layers.reduce((n, l) => n + l.pieceCount, 0))
    for (const l of r.layers) expect(l.originEgressCopies).toBeGreaterThanOrEqual(1)
    // The image's completion time is the slower layer's, per host: its max bounds both layers'.
    expect(r.completionSeconds.max).toBeGreaterThanOrEqual(Math.max(...r.layers.map((l) => l.completionSeconds.max)))
    expect(r.layers[0].completionSeconds.max).toBeLessThan(r.completionSeconds.max)
  })

  it("direct: every peer takes every layer from the origin, counted per layer", () => {
    const r = runScenario(layered(), { seed: 2, strategy: "direct" })
    expect(r.layers.map((l) => l.originEgressCopies)).toEqual([8, 8])
    expect(r.originEgressCopies).toBeCloseTo(8, 9)
  })

  it("is deterministic: same seed, same trace hash; another seed, another", () => {
    const s = layered({ arrival: { kind: "poisson", ratePerSecond: 20 } })
    const a = runScenario(s, { seed: 9, strategy: "damselfly" })
    const b = runScenario(s, { seed: 9, strategy: "damselfly" })
    expect(a.verified).toBe(true)
    expect(b.traceHash).toBe(a.traceHash)
    expect(b.layers).toEqual(a.layers)
    expect(runScenario(s, { seed: 10, strategy: "damselfly" }).traceHash).not.toBe(a.traceHash)
  })
})

describe("arrivals and departures", () => {
  it("rolling update: batch k+1 starts only when every peer of batch k has finished", () => {
    const { world, lines } = traced(layered({ arrival: { kind: "rolling", batchFraction: 0.25 } }), 3)
    expect(world.batches.map((b) => b.length)).toEqual([2, 2, 2, 2])
    for (let k = 1; k < world.batches.length; k++) {
      const prevDone = Math.max(...world.batches[k - 1].map((p) => p.finishedAt!))
      for (const p of world.batches[k]) {
        expect(p.arrival).toBe(prevDone)
        expect(p.startedAt).toBe(prevDone)
      }
    }
    expect(lines.filter((l) => / batch \d+ start$/.test(l))).toHaveLength(4)
    expect(world.peers.every((p) => p.outcome === "ok")).toBe(true)
  })

  it("rolling update with an interval: the next batch starts after the interval if the batch is still pulling", () => {
    const { world } = traced(layered({ arrival: { kind: "rolling", batchFraction: 0.25, intervalSeconds: 0.05 } }), 3, "direct")
    const starts = world.batches.map((b) => b[0].arrival)
    expect(starts).toEqual([0, 50, 100, 150])
    // Each batch took longer than the interval (so the interval was the trigger).
    expect(Math.max(...world.batches[0].map((p) => p.finishedAt!))).toBeGreaterThan(50)
    expect(world.peers.every((p) => p.outcome === "ok")).toBe(true)
  })

  it("Poisson arrivals: increasing, mean gap near 1/rate", () => {
    const s = decodeScenario({ ...base, idcs: [{ name: "idcA", location: "cn|hz|idcA", peers: 200, seeds: 1 }], arrival: { kind: "poisson", ratePerSecond: 4 } })
    const w = new World(s, { seed: 1, strategy: "direct" })
    const at = w.peers.map((p) => p.arrival)
    for (let i = 1; i < at.length; i++) expect(at[i]).toBeGreaterThan(at[i - 1])
    expect(at[at.length - 1] / at.length).toBeGreaterThan(200)
    expect(at[at.length - 1] / at.length).toBeLessThan(300)
  })

  it("heterogeneous NICs: peers split by weight; the bound follows the slowest downlink", () => {
    const slow = { weight: 1, uploadBytesPerSecond: 10 * MiB, downloadBytesPerSecond: 10 * MiB }
    const fast = { weight: 3, uploadBytesPerSecond: 1000 * MiB, downloadBytesPerSecond: 1000 * MiB }
    const s = decodeScenario({ ...base, idcs: [{ name: "idcA", location: "cn|hz|idcA", peers: 8, seeds: 1, racks: 2, peerClasses: [slow, fast] }] })
    const w = new World(s, { seed: 1, strategy: "direct" })
    expect(w.peers.map((p) => p.net.down)).toEqual([10, 10, 1000, 1000, 1000, 1000, 1000, 1000].map((x) => x * MiB))
    const r = runScenario(s, { seed: 1, strategy: "dragonfly" })
    expect(r.verified).toBe(true)
    expect(r.boundSeconds).toBeGreaterThanOrEqual(32 * MiB / (10 * MiB))
    expect(r.discreteOptimumSeconds).toBeNull()
  })

  it("departures: peers leave (gracefully) after completing while later batches pull; the run still verifies", () => {
    // The run ends when the last peer has pulled, so only earlier batches get to leave.
    const s = layered({ arrival: { kind: "rolling", batchFraction: 0.25 }, departure: { afterCompletionSeconds: 0.001 } })
    const { world, lines } = traced(s, 4)
    const leaves = lines.filter((l) => / leave peer-/.test(l))
    expect(leaves.length).toBeGreaterThanOrEqual(6)
    expect(world.faults.left.size).toBe(leaves.length)
    for (const l of leaves) {
      const id = l.split(" ").pop()!
      expect(lines.findIndex((x) => x.endsWith(` done ${id} ok`))).toBeLessThan(lines.indexOf(l))
    }
    expect(world.peers.every((p) => p.outcome === "ok")).toBe(true)
    expect(runScenario(s, { seed: 4, strategy: "dragonfly" }).verified).toBe(true)
    const none = traced(layered({ arrival: { kind: "rolling", batchFraction: 0.25 }, departure: { afterCompletionSeconds: 0.001, fraction: 0 } }), 4)
    expect(none.lines.some((l) => / leave /.test(l))).toBe(false)
  })

  it("departures at a time: the chosen share of peers leaves mid-pull (unfinished), the others finish", () => {
    const s = layered({ departure: { atSeconds: 0.05, fraction: 0.5 } })
    const { world, lines } = traced(s, 6, "direct")
    const left = lines.filter((l) => / leave peer-/.test(l)).map((l) => l.split(" ").pop()!)
    expect(left.length).toBeGreaterThan(0)
    expect(left.length).toBeLessThan(8)
    for (const p of world.peers) {
      if (left.includes(p.host.id)) {
        expect(p.outcome).toBe("failed")
        expect(p.finishedAt).toBe(50)
      } else expect(p.outcome).toBe("ok")
    }
    const r = runScenario(s, { seed: 6, strategy: "direct" })
    expect(r.finishedPeers).toBe(8 - left.length)
    expect(r.verified).toBe(false)
  })
})
