// `damselfly library` and `damselfly sim --json` without --strategy: one row per strategy, every one
// named as in core/strategies.ts.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { strategyNames } from "../core/strategies.ts"
import { flashCrowd } from "../scenarios/presets.ts"
import { runSimCommand } from "../sim/cli.ts"
import { runScenario } from "../sim/run.ts"
import { LibraryError, libraryJobs, libraryTable, readLibraryRows, runLibrary } from "../sim/library.ts"
import { MiB } from "../sim/scenario.ts"
import { aliasOf } from "../sim/strategy.ts"

const quietly = async <A>(f: () => Promise<A>): Promise<A> => {
  const log = console.log
  console.log = () => {}
  try {
    return await f()
  } finally {
    console.log = log
  }
}

describe("damselfly library", () => {
  it("runs every strategy on the chosen cases on workers, writes a row for each and the table", async () => {
    const out = mkdtempSync(join(tmpdir(), "damselfly-library-"))
    const cases = ["spegel-matrix/10MB-1layer-create", "spegel-matrix/10MB-4layers-rolling"]
    const r = await runLibrary({ scale: 1, scenarios: cases, seed: 1, dir: "scenarios", out, workers: 2 })
    // Every strategy but aliases (p2p is dragonfly's configuration under another name).
    const originals = strategyNames.filter((s) => aliasOf(s) === undefined)
    expect(originals).toContain("dragonfly")
    expect(r.summary).toMatchObject({ total: cases.length * originals.length, errors: 0 })
    const rows = readLibraryRows(join(out, "results.jsonl"))
    expect(rows).toHaveLength(cases.length * originals.length)
    for (const c of cases) {
      expect(rows.filter((x) => x.scenario === c).map((x) => x.strategy).sort()).toEqual([...originals].sort())
    }
    for (const row of rows) {
      expect(row.verified, `${row.scenario} ${row.strategy}`).toBe(true)
      expect(row.finishedPeers).toBe(10)
      expect(row.originEgressCopies).toBeGreaterThanOrEqual(1)
    }
    const layered = rows.filter((x) => x.scenario === cases[1])
    expect(layered.every((x) => x.layers?.length === 4 && x.arrival === "rolling")).toBe(true)
    // direct: every node takes every layer from the origin.
    expect(layered.find((x) => x.strategy === "direct")!.layers!.map((l) => l.originEgressCopies)).toEqual([10, 10, 10, 10])

    const table = readFileSync(join(out, "table.md"), "utf8")
    expect(table).toBe(r.table)
    for (const c of cases) expect(table).toContain(`## ${c}`)
    for (const s of originals) expect(table).toMatch(new RegExp(`^\\| ${s} \\| 10/10 \\|`, "m"))
    for (const s of strategyNames.filter((x) => aliasOf(x) !== undefined)) expect(table).toContain(`${s} (the same configuration as ${aliasOf(s)})`)
    expect(table).toContain("## max/bound, strategy × scenario")

    // Resumes: nothing left to run.
    expect((await runLibrary({ scale: 1, scenarios: cases, seed: 1, dir: "scenarios", out, workers: 1 })).summary).toMatchObject({ ran: 0 })
  }, 120_000)

  it("shows cross-IDC copies and their minimum for scenarios of several IDCs only", async () => {
    const grid = await libraryJobs({ scale: 0.01, seed: 1, dir: "scenarios", scenarios: ["multi-idc", "dragonfly-v1"], strategies: ["damselfly"] })
    const rows = grid.jobs.map((j) => ({
      key: j.key, scenario: j.scenario.name, strategy: j.strategy, peers: 10, finishedPeers: 10, sizeBytes: 100, originEgressCopies: 1,
      completionSeconds: { p50: 1, p99: 2, p999: 2, max: 2 }, boundSeconds: 1, maxOverBound: 2,
      crossIdcBytes: j.scenario.idcs.length > 1 ? 210 : 0, crossIdcMinimumBytes: j.scenario.idcs.length > 1 ? 200 : 0
    }))
    const table = libraryTable(grid, rows, 0.01)
    const section = (name: string) => table.slice(table.indexOf(`## ${name}`)).split("\n## ")[0]
    expect(section("multi-idc")).toContain("| cross-IDC (min) |")
    expect(section("multi-idc")).toMatch(/^\| damselfly \|.*\| 2\.10 \(2\) \|$/m)
    expect(section("dragonfly-v1")).not.toContain("cross-IDC")
  })

  it("scales every library scenario; an unknown name is an error naming --scenarios", async () => {
    const grid = await libraryJobs({ scale: 0.01, seed: 1, dir: "scenarios", strategies: ["direct"] })
    const peers = new Map(grid.jobs.map((j) => [j.scenario.name, j.scenario.idcs.reduce((n, i) => n + i.peers, 0)]))
    expect(peers.get("kraken-2600")).toBe(26)
    expect(peers.get("homogeneous-1000")).toBe(10)
    expect(peers.get("multi-idc")).toBe(30)
    expect(peers.get("spegel-matrix/1GB-4layers-rolling")).toBe(10)
    expect(grid.jobs).toHaveLength(5 + 12)
    // An alias runs when named, and gives its original's trace hash.
    expect(aliasOf("p2p")).toBe("dragonfly")
    expect(aliasOf("dragonfly")).toBeUndefined()
    const named = await libraryJobs({ scale: 1, seed: 1, dir: "scenarios", scenarios: ["spegel-matrix/10MB-1layer-create"], strategies: ["p2p", "dragonfly"] })
    const [p2p, dragonfly] = named.jobs.map((j) => runScenario(j.scenario, { seed: 1, strategy: j.strategy }))
    expect(p2p.traceHash).toBe(dragonfly.traceHash)
    await expect(libraryJobs({ scale: 1, seed: 1, dir: "scenarios", scenarios: ["kraken-2601"] })).rejects.toThrow(LibraryError)
    await expect(libraryJobs({ scale: 1, seed: 1, dir: "scenarios", scenarios: ["kraken-2601"] })).rejects.toThrow(/--scenarios: .*"kraken-2601"/)
  })
})

describe("damselfly sim --json", () => {
  it("without --strategy writes one result per strategy, named as in core/strategies.ts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-sim-"))
    const scenario = join(dir, "tiny.json")
    const { strategies: _, ...rest } = flashCrowd({ peers: 4, sizeBytes: 8 * MiB })
    writeFileSync(scenario, JSON.stringify({ ...rest, file: { ...rest.file, layers: 2 } }))
    const json = join(dir, "out.json")
    expect(await quietly(() => runSimCommand([scenario, "--json", json]))).toBe(0)
    const rows = JSON.parse(readFileSync(json, "utf8")) as Array<{ strategy: string; verified: boolean; layers: Array<unknown> }>
    expect(rows.map((r) => r.strategy)).toEqual([...strategyNames])
    expect(rows.every((r) => r.verified && r.layers.length === 2)).toBe(true)
  }, 60_000)
})
