// `damselfly library --out DIR [--scale S] [--scenarios a,b] [--strategies x,y] [--seed N] [--workers N]`:
// every strategy on every case of every scenario in the library (scenarios/LIBRARY.ts files), through
// the sweep machinery (worker threads, resumable JSONL: DIR/results.jsonl), then a markdown table
// (DIR/table.md, also printed): per scenario, per strategy, origin copies, p50, p99, p99.9, max, the
// bound, max/bound and, for homogeneous scenarios, max over the discrete-piece optimum; published
// figures beside them; and a strategy × scenario matrix of max/bound.
import cliProgress from "cli-progress"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { mkdir } from "node:fs/promises"
import { join, resolve } from "node:path"
import { strategyNames } from "../core/strategies.ts"
import { loadScenarios, type Reported, type Scenario, ScenarioError, scaleScenario, Strategy } from "./scenario.ts"
import { runSweep } from "./sweep.ts"
import { type ExpandedGrid, type Job, jobKey } from "./sweep-grid.ts"
import { aliasOf } from "./strategy.ts"

/** The scenario library: files in scenarios/ (by base name), in the order the table shows them. */
export const LIBRARY = ["kraken-2600", "spegel-matrix", "dragonfly-v1", "homogeneous-1000", "thundering-herd", "multi-idc"] as const

const USAGE = `usage: damselfly library --out DIR [--scale S] [--scenarios NAME,…] [--strategies NAME,…] [--seed N] [--workers N] [--dir SCENARIOS] [--quiet]
  scenarios (files in SCENARIOS, default scenarios/): ${LIBRARY.join(", ")} (a name may also be a case of a family)
  strategies: ${strategyNames.join(", ")} (default: each scenario's, normally all, but an alias such as p2p only when named)
  --scale S  multiply each IDC's peers by S (never below 10 per IDC unless it has fewer); default 1`

export interface LibraryOptions {
  readonly scale: number
  readonly scenarios?: ReadonlyArray<string>
  readonly strategies?: ReadonlyArray<Strategy>
  readonly seed: number
  readonly dir: string
}

export class LibraryError extends Error {
  override readonly name = "LibraryError"
}

/**
 * The library's runs: every case × strategy, each keyed by (case name, scale, strategy, seed) so a
 * rerun resumes. Cheapest first (peers × pieces), so a run cut short still covers most scenarios.
 */
export const libraryJobs = async (o: LibraryOptions): Promise<ExpandedGrid> => {
  const wanted = o.scenarios
  const found = new Set<string>()
  const jobs: Array<Job & { readonly cost: number }> = []
  for (const slug of LIBRARY) {
    const path = join(o.dir, `${slug}.ts`)
    const inFile = wanted === undefined || wanted.includes(slug)
    let cases: ReadonlyArray<Scenario>
    try {
      cases = await loadScenarios(path)
    } catch (e) {
      throw new LibraryError(e instanceof ScenarioError ? e.message : `${path}: ${String(e)}`)
    }
    for (const c of cases) {
      if (!inFile && !wanted!.includes(c.name)) continue
      found.add(inFile ? slug : c.name)
      const scenario = scaleScenario(c, o.scale)
      const peers = scenario.idcs.reduce((n, i) => n + i.peers, 0)
      const cost = peers * Math.ceil(scenario.file.sizeBytes / (scenario.file.pieceLength ?? 4 * 2 ** 20))
      const params = { scenario: c.name, scale: o.scale }
      // An alias gives its original's results exactly: run only when named.
      for (const strategy of o.strategies ?? scenario.strategies.filter((st) => aliasOf(st) === undefined)) {
        jobs.push({ key: jobKey(params, strategy, o.seed), params, strategy, seed: o.seed, scenario, cost })
      }
    }
  }
  const missing = (wanted ?? []).filter((w) => !found.has(w))
  if (missing.length > 0) {
    throw new LibraryError(`--scenarios: expected names from ${LIBRARY.join(", ")} (or a case of a family), got ${missing.map((m) => JSON.stringify(m)).join(", ")}`)
  }
  jobs.sort((a, b) => a.cost - b.cost)
  return { name: `scenario library at scale ${o.scale}`, jobs: jobs.map(({ cost: _, ...j }) => j) }
}

type Num = number | null | undefined
/** The fields of a results row the table reads (rows are RunResult + sweep extras, as JSON). */
export interface LibraryRow {
  readonly key: string
  readonly params?: { readonly scenario?: string; readonly scale?: number }
  readonly scenario: string
  readonly strategy: string
  readonly peers?: number
  readonly finishedPeers?: number
  readonly sizeBytes?: number
  readonly arrival?: string
  readonly layers?: ReadonlyArray<{ readonly name: string; readonly originEgressCopies: number }>
  readonly originEgressCopies?: number
  readonly completionSeconds?: { readonly p50: Num; readonly p99: Num; readonly p999?: Num; readonly max: Num }
  readonly boundSeconds?: Num
  readonly maxOverBound?: Num
  readonly discreteOptimumSeconds?: Num
  readonly crossIdcBytes?: Num
  readonly crossIdcMinimumBytes?: Num
  readonly reported?: Reported | null
  readonly verified?: boolean
  readonly error?: string
}

/** The rows of a JSONL file, the last one of each key (a partial last line is ignored). */
export const readLibraryRows = (path: string): Array<LibraryRow> => {
  if (!existsSync(path)) return []
  const text = readFileSync(path, "utf8")
  const lines = text.split("\n")
  if (!text.endsWith("\n")) lines.pop()
  const byKey = new Map<string, LibraryRow>()
  for (const line of lines) {
    if (line.trim() === "") continue
    try {
      const row = JSON.parse(line) as LibraryRow
      if (typeof row.key === "string") byKey.set(row.key, row)
    } catch {
      // A line that is not JSON is not a row (readResume keeps it too, and counts it).
    }
  }
  return [...byKey.values()]
}

const sec = (x: Num) => (typeof x === "number" && Number.isFinite(x) ? `${x < 10 ? x.toFixed(2) : x.toFixed(1)} s` : "–")
const ratio = (x: Num) => (typeof x === "number" && Number.isFinite(x) ? `${x.toFixed(2)}×` : "–")
const fmtBytes = (n: number) => (n >= 1e9 ? `${Number((n / 1e9).toFixed(2))} GB` : n >= 1e6 ? `${Number((n / 1e6).toFixed(1))} MB` : `${n} B`)

/** Cross-IDC copies and their minimum, e.g. "2.08 (2)". */
const crossIdc = (r: LibraryRow): string => {
  const f = r.sizeBytes
  if (typeof f !== "number" || f <= 0 || typeof r.crossIdcBytes !== "number") return "–"
  const min = typeof r.crossIdcMinimumBytes === "number" ? ` (${Number((r.crossIdcMinimumBytes / f).toFixed(2))})` : ""
  return `${(r.crossIdcBytes / f).toFixed(2)}${min}`
}

const reportedText = (r: Reported): string => {
  const figures = [
    r.p50Seconds !== undefined ? `p50 ${r.p50Seconds} s` : undefined,
    r.p99Seconds !== undefined ? `p99 ${r.p99Seconds} s` : undefined,
    r.p999Seconds !== undefined ? `p99.9 ${r.p999Seconds} s` : undefined,
    r.maxSeconds !== undefined ? `max ${r.maxSeconds} s` : undefined,
    r.note
  ].filter((x) => x !== undefined)
  return `${figures.join(", ")} (${r.source})`
}

/**
 * The markdown table of library rows, for the jobs given (their order: scenarios as in the grid,
 * strategies as in core/strategies.ts). A job without a row shows as not run.
 */
export const libraryTable = (grid: ExpandedGrid, rows: ReadonlyArray<LibraryRow>, scale: number): string => {
  const byKey = new Map(rows.map((r) => [r.key, r]))
  const caseOrder: Array<string> = []
  const jobsOf = new Map<string, Array<Job>>()
  const order = (s: string) => (strategyNames as ReadonlyArray<string>).indexOf(s)
  const sortedCases = [...grid.jobs].sort((a, b) => {
    const file = (j: Job) => LIBRARY.findIndex((l) => j.scenario.name === l || j.scenario.name.startsWith(`${l}/`))
    return file(a) - file(b)
  })
  for (const j of sortedCases) {
    const name = j.scenario.name
    if (!jobsOf.has(name)) {
      jobsOf.set(name, [])
      caseOrder.push(name)
    }
    jobsOf.get(name)!.push(j)
  }
  const out: Array<string> = []
  out.push(`# Scenario library: every strategy on every scenario (scale ${scale}, seed ${grid.jobs[0]?.seed ?? "-"})`, "")
  out.push("origin copies = bytes the origin sent / image size; p50, p99, p99.9, max = seconds from a host's arrival to its",
    "last layer; bound = a lower bound on the slowest host (Kumar–Ross for a flash crowd; for a rolling update, of the",
    "first batch, or one copy through the thinnest WAN link or oversubscribed rack downlink if that is longer);",
    "max/opt = max over the discrete-piece optimum (F/u)·(1 + ⌊log2 N⌋/M), homogeneous scenarios only; cross-IDC =",
    "copies of the image that crossed between IDCs, and (in brackets) the least possible: one into each IDC without the origin.", "")
  const matrix = new Map<string, Map<string, Num>>()
  for (const name of caseOrder) {
    const jobs = jobsOf.get(name)!.slice().sort((a, b) => order(a.strategy) - order(b.strategy))
    const s = jobs[0].scenario
    const peers = s.idcs.reduce((n, i) => n + i.peers, 0)
    const layers = typeof s.file.layers === "number" ? s.file.layers : s.file.layers?.length ?? 1
    out.push(`## ${name}`, "")
    out.push(`${peers} hosts (${s.idcs.length} IDC${s.idcs.length > 1 ? "s" : ""}), ${fmtBytes(s.file.sizeBytes)}${layers > 1 ? ` in ${layers} layers` : ""}, ` +
      `arrival ${s.arrival.kind === "uniform" && s.arrival.spreadSeconds === 0 ? "flash" : s.arrival.kind}` +
      (s.reported !== undefined ? `; reported: ${reportedText(s.reported)}` : ""), "")
    const multiIdc = s.idcs.length > 1
    out.push(`| strategy | finished | origin copies | p50 | p99 | p99.9 | max | bound | max/bound | max/opt |${multiIdc ? " cross-IDC (min) |" : ""}`)
    out.push(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${multiIdc ? "---:|" : ""}`)
    for (const j of jobs) {
      const r = byKey.get(j.key)
      if (!matrix.has(j.strategy)) matrix.set(j.strategy, new Map())
      if (r === undefined || r.error !== undefined) {
        out.push(`| ${j.strategy} | ${r === undefined ? "not run" : `failed: ${r.error!.split("\n")[0].slice(0, 80)}`} | | | | | | | | |`)
        continue
      }
      matrix.get(j.strategy)!.set(name, r.maxOverBound)
      const c = r.completionSeconds
      const opt = typeof r.discreteOptimumSeconds === "number" && typeof c?.max === "number" ? c.max / r.discreteOptimumSeconds : null
      const perLayer = (r.layers?.length ?? 0) > 1 ? ` (${r.layers!.map((l) => l.originEgressCopies.toFixed(2)).join(" + ")})` : ""
      out.push(`| ${j.strategy} | ${r.finishedPeers}/${r.peers}${r.verified === false ? " unverified" : ""} | ${(r.originEgressCopies ?? NaN).toFixed(2)}${perLayer} | ` +
        `${sec(c?.p50)} | ${sec(c?.p99)} | ${sec(c?.p999)} | ${sec(c?.max)} | ${sec(r.boundSeconds)} | ${ratio(r.maxOverBound)} | ${ratio(opt)} |` +
        (multiIdc ? ` ${crossIdc(r)} |` : ""))
    }
    out.push("")
  }
  const aliases = strategyNames.filter((st) => aliasOf(st) !== undefined && !matrix.has(st))
  if (aliases.length > 0) out.push(`Not run: ${aliases.map((a) => `${a} (the same configuration as ${aliasOf(a)})`).join(", ")}.`, "")
  out.push("## max/bound, strategy × scenario", "")
  out.push(`| strategy | ${caseOrder.join(" | ")} |`)
  out.push(`|---|${caseOrder.map(() => "---:").join("|")}|`)
  const strategies = [...matrix.keys()].sort((a, b) => order(a) - order(b))
  for (const st of strategies) out.push(`| ${st} | ${caseOrder.map((c) => ratio(matrix.get(st)!.get(c))).join(" | ")} |`)
  out.push("")
  return out.join("\n")
}

interface LibraryArgs extends LibraryOptions {
  readonly out: string
  readonly workers: number | undefined
  readonly quiet: boolean
}

const parseArgs = (argv: ReadonlyArray<string>): LibraryArgs | string => {
  let out: string | undefined
  let scale = 1
  let scenarios: Array<string> | undefined
  let strategies: Array<Strategy> | undefined
  let seed = 1
  let workers: number | undefined
  let dir = "scenarios"
  let quiet = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === "-h" || a === "--help") return USAGE
    if (a === "--quiet" || a === "-q") {
      quiet = true
      continue
    }
    const v = argv[++i]
    if (v === undefined) return `${a}: expected a value\n${USAGE}`
    if (a === "--out" || a === "-o") out = v
    else if (a === "--scale") {
      scale = Number(v)
      if (!Number.isFinite(scale) || scale <= 0) return `--scale: expected a number > 0, got ${JSON.stringify(v)}`
    } else if (a === "--scenarios") scenarios = v.split(",").filter((s) => s !== "")
    else if (a === "--strategies" || a === "--strategy") {
      const names = v.split(",").filter((s) => s !== "")
      for (const n of names) if (!(Strategy.literals as ReadonlyArray<string>).includes(n)) return `${a}: expected names from ${strategyNames.join(", ")}, got ${JSON.stringify(n)}`
      strategies = names as Array<Strategy>
    } else if (a === "--seed") {
      seed = Number(v)
      if (!Number.isSafeInteger(seed) || seed < 0) return `--seed: expected a non-negative integer, got ${JSON.stringify(v)}`
    } else if (a === "--workers" || a === "-j") {
      workers = Number(v)
      if (!Number.isSafeInteger(workers) || workers < 1) return `--workers: expected a positive integer, got ${JSON.stringify(v)}`
    } else if (a === "--dir") dir = v
    else return `unknown option ${a}\n${USAGE}`
  }
  if (out === undefined) return `missing --out DIR\n${USAGE}`
  return { out, scale, scenarios, strategies, seed, workers, dir, quiet }
}

/** Runs the library into `out` (resuming what is there) and writes the table; returns the table. */
export const runLibrary = async (
  options: LibraryOptions & { readonly out: string; readonly workers?: number | undefined },
  onRow?: (row: Record<string, unknown>, done: number, total: number) => void
) => {
  const grid = await libraryJobs(options)
  await mkdir(options.out, { recursive: true })
  const results = join(options.out, "results.jsonl")
  const summary = await runSweep(grid, results, { workers: options.workers, onRow })
  const table = libraryTable(grid, readLibraryRows(results), options.scale)
  const tablePath = join(options.out, "table.md")
  writeFileSync(tablePath, table)
  return { grid, summary, results, tablePath, table }
}

export async function runLibraryCommand(argv: ReadonlyArray<string>): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === "string") {
    console.error(args)
    return args === USAGE ? 0 : 2
  }
  const started = performance.now()
  let grid: ExpandedGrid
  try {
    grid = await libraryJobs(args)
  } catch (e) {
    console.error(e instanceof LibraryError ? `bad library run: ${e.message}` : String(e))
    return 1
  }
  const bar = args.quiet
    ? undefined
    : new cliProgress.SingleBar(
      { format: "library [{bar}] {percentage}% | {value}/{total} runs | ETA {eta_formatted} | {last}", hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic
    )
  console.error(`damselfly library --scale ${args.scale} --seed ${args.seed}: ${grid.jobs.length} runs into ${resolve(args.out)}`)
  bar?.start(grid.jobs.length, 0, { last: "" })
  const stop = () => {
    bar?.stop()
    process.exit(130)
  }
  process.once("SIGINT", stop)
  try {
    const r = await runLibrary(args, (row, done) =>
      bar?.update(done, { last: `${String(row.scenario)} ${String(row.strategy)}${"error" in row ? " FAILED" : ""}` }))
    bar?.stop()
    console.log(r.table)
    console.error(`ran ${r.summary.ran} runs (${r.summary.errors} failed), kept ${r.summary.skipped}, in ${((performance.now() - started) / 1000).toFixed(1)}s wall; ` +
      `wrote ${r.results} and ${r.tablePath}`)
    return r.summary.errors === 0 ? 0 : 3
  } catch (e) {
    bar?.stop()
    console.error(`library failed: ${e instanceof Error ? e.message : String(e)}`)
    return 1
  } finally {
    process.off("SIGINT", stop)
  }
}
