// `damselfly sim SCENARIO [--seed N] [--json PATH] [--strategy NAME]`: runs each strategy of a scenario
// in virtual time and prints one row per strategy. The seed and scenario are printed first so any run
// can be replayed exactly (TigerBeetle VOPR style).
import { writeFile } from "node:fs/promises"
import { runScenario, type RunResult } from "./run.ts"
import { strategyNames } from "../core/strategies.ts"
import { loadScenario, ScenarioError, Strategy } from "./scenario.ts"
import { Schema } from "effect"

const USAGE = `usage: damselfly sim SCENARIO [--seed N] [--json PATH] [--strategy ${strategyNames.join("|")}]`

interface SimArgs {
  readonly scenario: string
  readonly seed: number
  readonly json: string | undefined
  readonly strategy: Strategy | undefined
}

const parseArgs = (argv: ReadonlyArray<string>): SimArgs | string => {
  let scenario: string | undefined
  let seed = 1
  let json: string | undefined
  let strategy: Strategy | undefined
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
      else if (a === "--strategy") {
        const v = value()
        if (!Schema.is(Strategy)(v)) return `--strategy: expected one of ${strategyNames.join(", ")}, got ${JSON.stringify(v)}`
        strategy = v
      } else if (a === "-h" || a === "--help") return USAGE
      else if (a.startsWith("-")) return `unknown option ${a}\n${USAGE}`
      else if (scenario === undefined) scenario = a
      else return `unexpected argument ${JSON.stringify(a)}\n${USAGE}`
    } catch (e) {
      return (e as Error).message
    }
  }
  if (scenario === undefined) return `missing SCENARIO\n${USAGE}`
  return { scenario, seed, json, strategy }
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
  const header = ["strategy", "peers", "origin egress", "copies", "savings", "p50", "p99", "max", "bound (K-R)", "max/bound", "trace hash"]
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
  let scenario
  try {
    scenario = await loadScenario(args.scenario)
  } catch (e) {
    console.error(e instanceof ScenarioError ? `bad scenario: ${e.message}` : `cannot load scenario ${args.scenario}: ${String(e)}`)
    return 1
  }
  const strategies = args.strategy !== undefined ? [args.strategy] : scenario.strategies
  const peers = scenario.idcs.reduce((n, i) => n + i.peers, 0)
  console.log(`damselfly sim ${args.scenario} --seed ${args.seed}`)
  console.log(`scenario: ${scenario.name}; ${peers} peers; file ${fmtBytes(scenario.file.sizeBytes)}; strategies: ${strategies.join(", ")}`)
  const results: Array<RunResult> = []
  for (const strategy of strategies) results.push(runScenario(scenario, { seed: args.seed, strategy }))
  console.log("")
  console.log(formatTable(results))
  for (const r of results) {
    console.log(`${r.strategy}: ${r.events} events in ${r.wallSeconds.toFixed(2)}s wall (${Math.round(r.events / Math.max(r.wallSeconds, 1e-9))} events/s), ` +
      `${r.virtualSeconds.toFixed(2)}s virtual; verified ${r.verifiedPeers} copies; trace ${r.traceHash}`)
    for (const f of r.failures) console.log(`  unfinished: ${f}`)
  }
  if (args.json !== undefined) {
    await writeFile(args.json, JSON.stringify(results, null, 2) + "\n")
    console.log(`wrote ${args.json}`)
  }
  return results.every((r) => r.verified) ? 0 : 3
}
