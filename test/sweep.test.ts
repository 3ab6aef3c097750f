import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { flashCrowd } from "../scenarios/presets.ts"
import { MiB, Strategy } from "../sim/scenario.ts"
import { runSweep } from "../sim/sweep.ts"
import { GridError, loadGrid, setPath } from "../sim/sweep-grid.ts"
import { runMeasured } from "../sim/sweep-metrics.ts"
import { decodeScenario } from "../sim/scenario.ts"

// Whatever strategies exist right now (the list grows): the first two.
const strategies = Strategy.literals.slice(0, 2)
const base = flashCrowd({ peers: 4, sizeBytes: 8 * MiB })
const grid = { name: "tiny", base, vary: { "idcs.0.peers": [2, 3] }, strategies, seeds: 2 }

const rowsOf = (path: string) =>
  readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown> & { key: string })

describe("sweep grid", () => {
  it("expands params × strategies × seeds, with stable keys", async () => {
    const g = await loadGrid(grid)
    expect(g.jobs).toHaveLength(2 * strategies.length * 2)
    expect(new Set(g.jobs.map((j) => j.key)).size).toBe(g.jobs.length)
    expect(g.jobs.map((j) => j.scenario.idcs[0].peers)).toContain(3)
    expect((await loadGrid({ ...grid, seeds: [7] })).jobs.every((j) => j.seed === 7)).toBe(true)
  })

  it("names the bad field", async () => {
    const bad = async (g: unknown) => {
      try {
        await loadGrid(g)
      } catch (e) {
        expect(e).toBeInstanceOf(GridError)
        return (e as Error).message
      }
      throw new Error("expected a GridError")
    }
    expect(await bad({ ...grid, seeds: "three" })).toMatch(/seeds/)
    expect(await bad({ ...grid, strategies: ["no-such-strategy"] })).toMatch(/strategies/)
    expect(await bad({ ...grid, vary: { "file.sizeByte": [1] } })).toMatch(/sizeByte/)
    expect(await bad({ ...grid, vary: { "idcs.0.peers": [-1] } })).toMatch(/idcs.*peers/s)
    expect(await bad({ ...grid, vary: { "idcs.5.peers": [1] } })).toMatch(/idcs\.5/)
    expect(await bad({ ...grid, colour: 1 })).toMatch(/colour/)
  })

  it("sets dotted paths without touching the original", () => {
    const o = { a: [{ b: 1 }] }
    expect(setPath(o, "a.0.b", 2)).toEqual({ a: [{ b: 2 }] })
    expect(setPath(o, "c.d", 3)).toEqual({ a: [{ b: 1 }], c: { d: 3 } })
    expect(o).toEqual({ a: [{ b: 1 }] })
  })
})

describe("runSweep", () => {
  it("runs a 2×2×2 grid on workers, resumes an interrupted sweep and a partial last line, rows deterministic", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-sweep-"))
    const g = await loadGrid(grid)
    const full = join(dir, "full.jsonl")
    const s = await runSweep(g, full, { workers: 2 })
    expect(s).toMatchObject({ total: 8, ran: 8, skipped: 0, errors: 0 })
    const rows = rowsOf(full)
    expect(rows).toHaveLength(8)
    for (const r of rows) {
      expect(r.verified).toBe(true)
      expect(r.error).toBeUndefined()
      expect(r).not.toHaveProperty("wallSeconds")
      expect(Array.isArray(r.completionTimesSeconds)).toBe(true)
      expect(Array.isArray(r.originEgressSeries)).toBe(true)
      expect(typeof r.trafficBetweenIdcs).toBe("object")
    }
    const byKey = new Map(rows.map((r) => [r.key, JSON.stringify(r)]))

    // Re-running a finished sweep does nothing.
    expect(await runSweep(g, full, { workers: 2 })).toMatchObject({ ran: 0, skipped: 8 })

    // Interrupted: 3 runs, then the rest.
    const cut = join(dir, "cut.jsonl")
    expect(await runSweep(g, cut, { workers: 1, limit: 3 })).toMatchObject({ ran: 3 })
    expect(await runSweep(g, cut, { workers: 2 })).toMatchObject({ ran: 5, skipped: 3 })

    // Killed while writing: 5 whole lines and half of the sixth.
    const partial = join(dir, "partial.jsonl")
    const lines = readFileSync(full, "utf8").split("\n")
    writeFileSync(partial, lines.slice(0, 5).join("\n") + "\n" + lines[5].slice(0, 40))
    const resumed = await runSweep(g, partial, { workers: 2 })
    expect(resumed).toMatchObject({ ran: 3, skipped: 5 })
    expect(resumed.resume.discardedBytes).toBe(40)

    for (const path of [cut, partial]) {
      const again = rowsOf(path)
      expect(again).toHaveLength(8)
      // Same key, same row, byte for byte, whichever worker ran it and in whatever order.
      for (const r of again) expect(JSON.stringify(r)).toBe(byKey.get(r.key))
    }
  })

  it("derives origin egress and IDC traffic from the trace, consistent with the run's totals", () => {
    const scenario = decodeScenario(base)
    for (const strategy of strategies) {
      const r = runMeasured(scenario, { seed: 3, strategy })
      const series = r.originEgressSeries!
      expect(series[0]).toEqual([0, 0])
      expect(series[series.length - 1][1]).toBe(r.originEgressBytes)
      for (let i = 1; i < series.length; i++) expect(series[i][1]).toBeGreaterThanOrEqual(series[i - 1][1])
      const traffic = Object.values(r.trafficBetweenIdcs!).reduce((a, b) => a + b, 0)
      // Every peer received the file once; nothing else moves bytes.
      expect(traffic).toBeGreaterThanOrEqual(r.peers * r.sizeBytes)
      expect(r.completionTimesSeconds).toHaveLength(r.finishedPeers)
    }
  })
})
