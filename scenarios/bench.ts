// Benchmark: the default scenario (both strategies) and a 1,000-peer p2p flash crowd. Prints events/s,
// wall time and peak RSS. Run: npx tsx scenarios/bench.ts [--seed N] [--peers N]
import { flashCrowd } from "./presets.ts"
import { runScenario, type RunResult } from "../sim/run.ts"
import { decodeScenario, loadScenario, type Scenario, type Strategy } from "../sim/scenario.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const seed = arg("--seed", 1)
const bigPeers = arg("--peers", 1000)

// The kernel's high-water mark (maxRSS, KiB): a run is synchronous, so sampling could miss its peak.
let peakRss = 0
const sample = () => (peakRss = process.resourceUsage().maxRSS * 1024)

const bench = (label: string, scenario: Scenario, strategy: Strategy): RunResult => {
  const r = runScenario(scenario, { seed, strategy })
  sample()
  console.log(
    `${label.padEnd(28)} ${strategy.padEnd(6)} peers ${String(r.peers).padStart(5)}  events ${String(r.events).padStart(9)}  ` +
      `wall ${r.wallSeconds.toFixed(2).padStart(7)}s  ${Math.round(r.events / r.wallSeconds).toString().padStart(8)} events/s  ` +
      `virtual p99 ${r.completionSeconds.p99.toFixed(2)}s (bound ${r.boundSeconds.toFixed(2)}s)  ` +
      `origin ${r.originEgressCopies.toFixed(2)} copies  verified ${r.verified}  rss ${(peakRss / 2 ** 20).toFixed(0)} MiB`
  )
  return r
}

const main = async () => {
  console.log(`bench: seed ${seed}, node ${process.version}`)
  const def = await loadScenario("scenarios/default.ts")
  for (const strategy of def.strategies) bench("default (100 peers, 1 GiB)", def, strategy)
  const big = decodeScenario(flashCrowd({ peers: bigPeers }))
  bench(`${bigPeers} peers, 1 GiB`, big, "p2p")
  console.log(`peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`)
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
