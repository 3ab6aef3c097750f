// Notebook: every scenario in scenarios/ × every strategy × a few seeds, then one report per scenario.
// Runs through the sweep machinery (worker threads, resumable JSONL), so re-running after an
// interruption or after adding a strategy only runs what is missing. Output: out/scenario-library/.
//
//   npx tsx notebooks/scenario-library.ts [--seeds N] [--workers N] [--only NAME] [--fresh]
import { readdirSync, readFileSync, rmSync } from "node:fs"
import { mkdir } from "node:fs/promises"
import { basename, extname, join } from "node:path"
import { Strategy } from "../sim/scenario.ts"
import { runSweep } from "../sim/sweep.ts"
import { loadGrid } from "../sim/sweep-grid.ts"
import { writeReport } from "./report.ts"
import { readResults } from "./results.ts"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const seeds = Number(arg("--seeds") ?? 1)
const workers = arg("--workers") === undefined ? undefined : Number(arg("--workers"))
const only = arg("--only")
const fresh = process.argv.includes("--fresh")
const OUT = "out/scenario-library"

/** Scenario files: YAML/JSON, and TS modules with a default export (helpers and scripts are skipped unimported). */
export const scenarioFiles = (dir = "scenarios"): Array<string> =>
  readdirSync(dir).sort().map((f) => join(dir, f)).filter((path) => {
    const ext = extname(path)
    if (ext === ".yaml" || ext === ".yml" || ext === ".json") return true
    return ext === ".ts" && /^export default\b/m.test(readFileSync(path, "utf8"))
  })

const main = async () => {
  await mkdir(OUT, { recursive: true })
  const strategies = Strategy.literals
  for (const path of scenarioFiles()) {
    const slug = basename(path, extname(path))
    if (only !== undefined && slug !== only) continue
    const results = join(OUT, `${slug}.jsonl`)
    if (fresh) rmSync(results, { force: true })
    let grid
    try {
      grid = await loadGrid({ base: join(process.cwd(), path), strategies, seeds })
    } catch (e) {
      console.log(`${path}: skipped (not a scenario: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]})`)
      continue
    }
    process.stdout.write(`${path}: ${grid.name}; ${grid.jobs.length} runs … `)
    const s = await runSweep(grid, results, { workers })
    console.log(`ran ${s.ran}, kept ${s.skipped}${s.errors > 0 ? `, ${s.errors} FAILED` : ""}`)
    const report = await writeReport(await readResults(results), join(OUT, slug))
    console.log(`  ${report.html}`)
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
