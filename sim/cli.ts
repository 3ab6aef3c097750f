// `damselfly sim SCENARIO [--seed N] [--json PATH] [--strategy NAME[,NAME…]] [--case NAME] [--scale S]`:
// runs each strategy (without --strategy: the scenario's `strategies`, by default every strategy in
// core/strategies.ts) on each case of a scenario file in virtual time and prints one row per strategy;
// --json writes one result per (case, strategy). The seed and scenario are printed first so any run
// can be replayed exactly (TigerBeetle VOPR style).
import { writeFile } from "node:fs/promises"
import { runScenario, type RunResult } from "./run.ts"
import { strategyNames } from "../core/strategies.ts"
import { loadScenarios, MIN_SCALED_PEERS, type Scenario, ScenarioError, scaleScenario, Strategy } from "./scenario.ts"
import { Schema } from "effect"

const USAGE = `usage: damselfly sim SCENARIO [--seed N] [--json PATH] [--strategy NAME[,NAME…]] [--case NAME] [--scale S]
  strategies: ${strategyNames.join(", ")} (default: the scenario's, normally all)
  --case NAME  one case of a scenario family (default: every case)
  --scale S    multiply each IDC's peers by S (0 < S; never below ${MIN_SCALED_PEERS} peers per IDC unless it has fewer)`

interface SimArgs {
  readonly scenario: string
  readonly seed: number
  readonly json: string | undefined
  readonly strategies: ReadonlyArray<Strategy> | undefined
  readonly caseName: string | undefined
  readonly scale: number
}

const parseArgs = (argv: ReadonlyArray<string>): SimArgs | string => {
  let scenario: string | undefined
  let seed = 1
  let json: string | undefined
  let strategies: Array<Strategy> | undefined
  let caseName: string | undefined
  let scale = 1
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a}: expected a value`)
      return v
    }
    try {
      if (a === "--seed") {
        const v = value()
        seed = Number(v)
        if (!Number.isSafeInteger(seed) || seed < 0) return `--seed: expected a non-negative integer, got ${JSON.stringify(v)}`
      } else if (a === "--json") json = value()
      else if (a === "--strategy" || a === "--strategies") {
        const names = value().split(",")
        for (const v of names) if (!Schema.is(Strategy)(v)) return `${a}: expected one of ${strategyNames.join(", ")}, got ${JSON.stringify(v)}`
        strategies = names as Array<Strategy>
      } else if (a === "--case") caseName = value()
      else if (a === "--scale") {
        const v = value()
        scale = Number(v)
        if (!Number.isFinite(scale) || scale <= 0) return `--scale: expected a number > 0, got ${JSON.stringify(v)}`
      } else if (a === "-h" || a === "--help") return USAGE
      else if (a.startsWith("-")) return `unknown option ${a}\n${USAGE}`
      else if (scenario === undefined) scenario = a
      else return `unexpected argument ${JSON.stringify(a)}\n${USAGE}`
    } catch (e) {
      return (e as Error).message
    }
  }
  if (scenario === undefined) return `missing SCENARIO\n${USAGE}`
  return { scenario, seed, json, strategies, caseName, scale }
}

const fmtBytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`
}
const fmtSeconds = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(2)}s` : "-")

export const formatTable = (results: ReadonlyArray<RunResult>): string => {
  const header = ["strategy", "peers", "origin egress", "copies", "savings", "p50", "p99", "max", "bound", "max/bound", "x-IDC (min)", "trace hash"]
  const rows = results.map((r) => [
    r.strategy,
    r.finishedPeers === r.peers ? String(r.peers) : `${r.finishedPeers}/${r.peers}`,
    fmtBytes(r.originEgressBytes),
    r.originEgressCopies.toFixed(2),
    `${r.savingsPercent.toFixed(1)}%`,
    fmtSeconds(r.completionSeconds.p50),
    fmtSeconds(r.completionSeconds.p99),
    fmtSeconds(r.completionSeconds.max),
    fmtSeconds(r.boundSeconds),
    Number.isFinite(r.maxOverBound) ? r.maxOverBound.toFixed(2) : "-",
    // Copies of the content that crossed between IDCs, and the least possible.
    `${(r.crossIdcBytes / r.sizeBytes).toFixed(2)} (${Number((r.crossIdcMinimumBytes / r.sizeBytes).toFixed(2))})`,
    r.traceHash.slice(0, 16)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

export async function runSimCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === "string") {
    console.error(args)
    return args === USAGE ? 0 : 2
  }
  let cases: ReadonlyArray<Scenario>
  try {
    cases = (await loadScenarios(args.scenario)).map((c) => scaleScenario(c, args.scale))
  } catch (e) {
    console.error(e instanceof ScenarioError ? `bad scenario: ${e.message}` : `cannot load scenario ${args.scenario}: ${String(e)}`)
    return 1
  }
  if (args.caseName !== undefined) {
    const wanted = cases.filter((c) => c.name === args.caseName)
    if (wanted.length === 0) {
      console.error(`--case: expected one of ${cases.map((c) => c.name).join(", ")}, got ${JSON.stringify(args.caseName)}`)
      return 2
    }
    cases = wanted
  }
  console.log(`damselfly sim ${args.scenario} --seed ${args.seed}${args.scale !== 1 ? ` --scale ${args.scale}` : ""}`)
  const results: Array<RunResult> = []
  for (const scenario of cases) {
    const strategies = args.strategies ?? scenario.strategies
    const peers = scenario.idcs.reduce((n, i) => n + i.peers, 0)
    const layers = typeof scenario.file.layers === "number" ? scenario.file.layers : scenario.file.layers?.length ?? 1
    console.log(`scenario: ${scenario.name}; ${peers} peers; ${layers > 1 ? `image of ${layers} layers, ` : "file "}${fmtBytes(scenario.file.sizeBytes)}; ` +
      `arrival ${scenario.arrival.kind}; strategies: ${strategies.join(", ")}`)
    const rows: Array<RunResult> = []
    for (const strategy of strategies) rows.push(runScenario(scenario, { seed: args.seed, strategy }))
    console.log("")
    console.log(formatTable(rows))
    for (const r of rows) {
      console.log(`${r.strategy}: ${r.events} events in ${r.wallSeconds.toFixed(2)}s wall (${Math.round(r.events / Math.max(r.wallSeconds, 1e-9))} events/s), ` +
        `${r.virtualSeconds.toFixed(2)}s virtual; verified ${r.verifiedPeers} copies; trace ${r.traceHash}`)
      if (r.layers.length > 1) {
        for (const l of r.layers) console.log(`  ${l.name}: ${fmtBytes(l.sizeBytes)}, origin ${l.originEgressCopies.toFixed(2)} copies, p50 ${fmtSeconds(l.completionSeconds.p50)}, max ${fmtSeconds(l.completionSeconds.max)}`)
      }
      for (const f of r.failures) console.log(`  unfinished: ${f}`)
    }
    console.log("")
    results.push(...rows)
  }
  if (args.json !== undefined) {
    await writeFile(args.json, JSON.stringify(results, null, 2) + "\n")
    console.log(`wrote ${args.json}`)
  }
  return results.every((r) => r.verified) ? 0 : 3
}
