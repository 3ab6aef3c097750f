// `damselfly report RESULTS(.json|.jsonl) -o DIR`: one self-contained DIR/index.html (every chart as
// inline SVG, plus a summary table) and DIR/<chart>.png for each chart.
import type { HeadlessDocument } from "./render.ts"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { boundRatioChart } from "./charts/bound-ratio.ts"
import { completionCdfChart } from "./charts/completion-cdf.ts"
import type { Chart } from "./charts/frame.ts"
import { idcTrafficChart } from "./charts/idc-traffic.ts"
import { originEgressChart } from "./charts/origin-egress.ts"
import { savingsChart } from "./charts/savings.ts"
import { findFont, makeDocument, svgToPng } from "./render.ts"
import { finite, readResults, type ResultRow, type Results, ResultsError, strategyOrder } from "./results.ts"

const USAGE = "usage: damselfly report RESULTS.(json|jsonl) -o DIR [--no-png]"

/** Every chart of a report, in order. Each draws into its own fresh document. */
export const CHARTS: ReadonlyArray<(doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>) => Chart> = [
  completionCdfChart,
  originEgressChart,
  savingsChart,
  idcTrafficChart,
  boundRatioChart
]

export const renderCharts = (rows: ReadonlyArray<ResultRow>): Array<Chart> => CHARTS.map((draw) => draw(makeDocument(), rows))

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
const num = (x: number | null | undefined, digits = 2) => (finite(x) ? x.toFixed(digits) : "–")
const avg = (xs: ReadonlyArray<number | null | undefined>) => {
  const v = xs.filter(finite)
  return v.length === 0 ? undefined : v.reduce((a, b) => a + b, 0) / v.length
}

const summaryTable = (rows: ReadonlyArray<ResultRow>): string => {
  const head = ["strategy", "runs", "savings %", "p50 s", "p99 s", "max s", "max / K–R bound", "max / discrete optimum"]
  const body = strategyOrder(rows.map((r) => r.strategy)).map((s) => {
    const mine = rows.filter((r) => r.strategy === s)
    const opt = mine.map((r) => (finite(r.discreteOptimumSeconds) && finite(r.completionSeconds.max) ? r.completionSeconds.max / r.discreteOptimumSeconds : undefined))
    return [s, String(mine.length), num(avg(mine.map((r) => r.savingsPercent)), 1), num(avg(mine.map((r) => r.completionSeconds.p50))),
      num(avg(mine.map((r) => r.completionSeconds.p99))), num(avg(mine.map((r) => r.completionSeconds.max))),
      num(avg(mine.map((r) => r.maxOverBound))), num(avg(opt))]
  })
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    body.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th>${esc(c)}</th>` : `<td>${esc(c)}</td>`)).join("")}</tr>`).join("") +
    `</tbody></table><p class="note">Means over runs.</p>`
}

export const reportHtml = (results: Results, charts: ReadonlyArray<Chart>, pngs: boolean): string => {
  const scenarios = [...new Set(results.rows.map((r) => r.scenario))]
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Damselfly report: ${esc(results.source)}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 940px; color: #222 }
figure { margin: 2em 0 } figcaption, .note { color: #555; font-size: 0.9em }
table { border-collapse: collapse } th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right } th:first-child { text-align: left }
</style></head><body>
<h1>Damselfly simulation report</h1>
<p>Results: <code>${esc(results.source)}</code>; ${results.rows.length} runs${results.errors.length > 0 ? `, ${results.errors.length} failed runs left out` : ""}; scenarios: ${scenarios.map(esc).join("; ")}.</p>
${summaryTable(results.rows)}
${charts.map((c) => `<figure id="${c.id}">
${c.svg}
<figcaption>${esc(c.title)}${pngs ? ` (<a href="${c.id}.png">PNG</a>)` : ""}${c.notes.map((n) => `<br>${esc(n)}`).join("")}</figcaption>
</figure>`).join("\n")}
${results.errors.length > 0 ? `<h2>Failed runs</h2><ul>${results.errors.slice(0, 50).map((e) => `<li><code>${esc(e)}</code></li>`).join("")}</ul>` : ""}
</body></html>
`
}

export interface WrittenReport {
  readonly html: string
  readonly pngs: ReadonlyArray<string>
  readonly charts: ReadonlyArray<Chart>
}

/** Renders every chart and writes DIR/index.html and (unless `png` is false) DIR/<chart>.png. */
export const writeReport = async (results: Results, dir: string, options: { png?: boolean } = {}): Promise<WrittenReport> => {
  const png = options.png ?? true
  const charts = renderCharts(results.rows)
  await mkdir(dir, { recursive: true })
  const pngs: Array<string> = []
  if (png) {
    for (const c of charts) {
      const path = join(dir, `${c.id}.png`)
      await writeFile(path, svgToPng(c.svg))
      pngs.push(path)
    }
  }
  const html = join(dir, "index.html")
  await writeFile(html, reportHtml(results, charts, png))
  return { html, pngs, charts }
}

export async function runReportCommand(argv: ReadonlyArray<string>): Promise<number> {
  let input: string | undefined
  let out: string | undefined
  let png = true
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === "-o" || a === "--out") {
      out = argv[++i]
      if (out === undefined) return (console.error(`${a}: expected a directory\n${USAGE}`), 2)
    } else if (a === "--no-png") png = false
    else if (a === "-h" || a === "--help") return (console.log(USAGE), 0)
    else if (a.startsWith("-")) return (console.error(`unknown option ${a}\n${USAGE}`), 2)
    else if (input === undefined) input = a
    else return (console.error(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`), 2)
  }
  if (input === undefined || out === undefined) return (console.error(`missing ${input === undefined ? "RESULTS" : "-o DIR"}\n${USAGE}`), 2)
  let results: Results
  try {
    results = await readResults(input)
  } catch (e) {
    console.error(e instanceof ResultsError ? `bad results: ${e.message}` : String(e))
    return 1
  }
  if (png && findFont() === null) console.error("report: no font file found; PNG text may not render (apt-get install fonts-dejavu-core)")
  const written = await writeReport(results, out, { png })
  console.log(`wrote ${written.html}${written.pngs.length > 0 ? ` and ${written.pngs.length} PNGs` : ""} (${results.rows.length} runs)`)
  return 0
}
