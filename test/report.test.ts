import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { CHARTS, writeReport } from "../notebooks/report.ts"
import { PNG_SIGNATURE } from "../notebooks/render.ts"
import { readResults } from "../notebooks/results.ts"
import { flashCrowd } from "../scenarios/presets.ts"
import { decodeScenario, MiB, Strategy } from "../sim/scenario.ts"
import { runMeasured } from "../sim/sweep-metrics.ts"

// Every strategy there is (read at run time: the list grows), on a tiny real simulation, two seeds.
const strategies: ReadonlyArray<string> = Strategy.literals
const scenario = decodeScenario(flashCrowd({ peers: 6, sizeBytes: 8 * MiB }))
const results = Strategy.literals.flatMap((strategy) => [1, 2].map((seed) => runMeasured(scenario, { seed, strategy })))

const svgsOf = (html: string): Array<string> => [...(html.match(/<svg[\s\S]*?<\/svg>/g) ?? [])]
/** Whether `svg` has an element of class `cls` for series `s` (attributes in any order). */
const hasSeries = (svg: string, cls: string, s: string) =>
  (svg.match(/<[a-z]+ [^>]*>/g) ?? []).some((tag) => tag.includes(`class="${cls}"`) && tag.includes(`data-series="${s}"`))

const checkHtml = (html: string) => {
  const svgs = svgsOf(html)
  expect(svgs).toHaveLength(CHARTS.length)
  for (const svg of svgs) {
    expect(svg).toMatch(/class="chart-title"[^>]*>[^<]+</)
    expect(svg).toMatch(/class="axis-label x-label"[^>]*>[^<]*\S[^<]*</)
    expect(svg).toMatch(/class="axis-label y-label"[^>]*>[^<]*\S[^<]*</)
    // A legend naming every series.
    for (const s of strategies) {
      expect(hasSeries(svg, "legend-item", s), s).toBe(true)
      expect(svg).toContain(`>${s}</text>`)
    }
  }
  return svgs
}

describe("damselfly report", () => {
  it("renders every chart from a tiny real simulation: HTML with one SVG per chart, PNGs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-report-"))
    const input = join(dir, "results.jsonl")
    writeFileSync(input, results.map((r) => JSON.stringify({ key: `${r.strategy}/${r.seed}`, params: {}, ...r })).join("\n") + "\n")
    const written = await writeReport(await readResults(input), join(dir, "out"))
    const html = readFileSync(written.html, "utf8")
    const svgs = checkHtml(html)
    // Units on the axes.
    expect(svgs.join("")).toContain("completion time (s)")
    expect(svgs.join("")).toMatch(/origin egress \((B|KiB|MiB|GiB)\)/)
    expect(svgs.join("")).toContain("origin bytes saved (%)")
    // Data drawn for each strategy (not just a legend).
    for (const s of strategies) expect(hasSeries(svgs[0], "series", s), s).toBe(true)
    expect(written.pngs).toHaveLength(CHARTS.length)
    for (const png of written.pngs) expect(readFileSync(png).subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true)
  })

  it("reads `sim --json` output without the newer fields and still draws every chart, saying what is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-report-"))
    const input = join(dir, "sim.json")
    const old = results.map(({ completionTimesSeconds: _a, originEgressSeries: _b, trafficBetweenIdcs: _c, ...rest }) => rest)
    writeFileSync(input, JSON.stringify(old, null, 2))
    const written = await writeReport(await readResults(input), join(dir, "out"), { png: false })
    const html = readFileSync(written.html, "utf8")
    checkHtml(html)
    expect(html).toContain("no completionTimesSeconds")
    expect(html).toContain("no originEgressSeries")
    expect(html).toContain("no trafficBetweenIdcs")
    expect(written.pngs).toHaveLength(0)
  })

  it("uses discreteOptimumSeconds and crossIdc fields when present, and skips failed sweep rows", async () => {
    const dir = mkdtempSync(join(tmpdir(), "damselfly-report-"))
    const input = join(dir, "results.jsonl")
    const rows = results.map((r, i) => ({ key: String(i), ...r, discreteOptimumSeconds: r.boundSeconds * 1.1, crossIdcMinimumBytes: r.sizeBytes }))
    const failed = { key: "x", strategy: strategies[0], seed: 9, scenario: "s", error: "boom" }
    writeFileSync(input, [...rows, failed].map((r) => JSON.stringify(r)).join("\n") + "\n{\"partial")
    const res = await readResults(input)
    expect(res.rows).toHaveLength(rows.length)
    expect(res.errors).toEqual(["x: boom"])
    const html = readFileSync((await writeReport(res, join(dir, "out"), { png: false })).html, "utf8")
    expect(html).toContain("vs discrete optimum")
    expect(html).toContain("cross-IDC minimum")
    expect(html).toContain("1 failed runs left out")
  })
})
