// Notebook: the scenario library (sim/library.ts) — every strategy on every case of every library
// scenario, through the sweep machinery (worker threads, resumable JSONL) — then the comparison table
// and one report per case. Re-running after an interruption or after adding a strategy only runs
// what is missing. Output: out/scenario-library/{results.jsonl, table.md, CASE/index.html + PNGs}.
//
//   npx tsx notebooks/scenario-library.ts [--scale S] [--seed N] [--workers N] [--only NAME[,NAME…]] [--fresh]
import { rmSync } from "node:fs"
import { join } from "node:path"
import { runLibrary } from "../sim/library.ts"
import { writeReport } from "./report.ts"
import { readResults } from "./results.ts"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const scale = Number(arg("--scale") ?? 1)
const seed = Number(arg("--seed") ?? 1)
const workers = arg("--workers") === undefined ? undefined : Number(arg("--workers"))
const only = arg("--only")?.split(",")
const OUT = "out/scenario-library"

const main = async () => {
  if (process.argv.includes("--fresh")) rmSync(OUT, { recursive: true, force: true })
  const started = performance.now()
  const r = await runLibrary({ scale, seed, dir: "scenarios", out: OUT, workers, ...(only !== undefined ? { scenarios: only } : {}) }, (row, done, total) =>
    console.log(`${done}/${total} ${String(row.scenario)} ${String(row.strategy)}${"error" in row ? " FAILED" : ""}`))
  console.log(`ran ${r.summary.ran}, kept ${r.summary.skipped}${r.summary.errors > 0 ? `, ${r.summary.errors} FAILED` : ""} in ${((performance.now() - started) / 1000).toFixed(1)}s`)
  console.log(r.table)
  const all = await readResults(r.results)
  for (const name of new Set(r.grid.jobs.map((j) => j.scenario.name))) {
    const rows = all.rows.filter((x) => x.scenario === name && x.params?.scale === scale && x.seed === seed)
    const report = await writeReport({ ...all, rows }, join(OUT, name.replaceAll("/", "--")))
    console.log(`${name}: ${report.html}`)
  }
  console.log(`table: ${r.tablePath}`)
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
