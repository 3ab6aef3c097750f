// Benchmark: how the simulator scales. Runs a p2p flash crowd of N peers fetching 1 GiB (256 pieces of
// 4 MiB) and prints wall time, agenda events, events/s, peak RSS and the run's virtual results; with
// --default, first the default scenario (both strategies). One size per process, so peak RSS is that
// run's alone.
//
//   npx tsx scenarios/bench.ts --peers 1000|10000|100000 [--seed N] [--default] [--semi-space-mb N] [--heap-mb N]
//
// A run allocates short-lived objects by the million (fetches, flows, messages); V8's default young
// generation (16 MiB semi-spaces) promotes many of them before they die and spends a third of the run
// in scavenges. So the bench runs itself in a Node with `--max-semi-space-size=256` (`--semi-space-mb 0`
// keeps Node's default): at 10,000 peers ~80k fetches are in flight at once, and 64 MiB semi-spaces still
// promote enough of them to cost a sixth more CPU. The simulator's results do not depend on it. `--heap-mb N` raises V8's old-space
// limit (Node's default is ~4 GiB, too little for 100,000 peers); 0, the default, keeps Node's.
import { spawnSync } from "node:child_process"
import { flashCrowd } from "./presets.ts"
import { runScenario, type RunResult } from "../sim/run.ts"
import { decodeScenario, loadScenario, type Scenario, type Strategy } from "../sim/scenario.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  if (i < 0) return fallback
  const v = Number(process.argv[i + 1])
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name}: expected a positive integer, got ${JSON.stringify(process.argv[i + 1])}`)
  return v
}
const seed = arg("--seed", 1)
const peers = arg("--peers", 1000)
const semiSpaceMb = process.argv.includes("--semi-space-mb") ? Number(process.argv[process.argv.indexOf("--semi-space-mb") + 1]) : 256
if (!Number.isInteger(semiSpaceMb) || semiSpaceMb < 0) throw new Error(`--semi-space-mb: expected a non-negative integer, got ${semiSpaceMb}`)
const heapMb = process.argv.includes("--heap-mb") ? Number(process.argv[process.argv.indexOf("--heap-mb") + 1]) : 0
if (!Number.isInteger(heapMb) || heapMb < 0) throw new Error(`--heap-mb: expected a non-negative integer, got ${heapMb}`)
const semiFlag = `--max-semi-space-size=${semiSpaceMb}`
const heapFlag = `--max-old-space-size=${heapMb}`
const flags = [...(semiSpaceMb > 0 ? [semiFlag] : []), ...(heapMb > 0 ? [heapFlag] : [])]
if (flags.some((f) => !process.execArgv.includes(f))) {
  // V8 sizes its heap at startup only: run again in a Node started with the flags.
  const child = spawnSync(process.execPath, [...flags, ...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit" })
  process.exit(child.status ?? 1)
}

// The kernel's high-water mark (maxRSS, KiB): a run is synchronous, so sampling could miss its peak.
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024

const bench = (label: string, scenario: Scenario, strategy: Strategy): RunResult => {
  const cpu = process.cpuUsage()
  const r = runScenario(scenario, { seed, strategy })
  // CPU time (user + system) as well as wall: on a shared machine the wall clock includes waiting for a core.
  const used = process.cpuUsage(cpu)
  const cpuSeconds = (used.user + used.system) / 1e6
  console.log(
    `${label.padEnd(26)} ${strategy.padEnd(6)} peers ${String(r.peers).padStart(6)}  events ${String(r.events).padStart(10)}  ` +
      `wall ${r.wallSeconds.toFixed(2).padStart(7)} s  cpu ${cpuSeconds.toFixed(2).padStart(7)} s  ${Math.round(r.events / r.wallSeconds).toString().padStart(8)} events/s  ` +
      `peak RSS ${peakRssMiB().toFixed(0).padStart(5)} MiB  virtual p50 ${r.completionSeconds.p50.toFixed(2)} s  ` +
      `max ${r.completionSeconds.max.toFixed(2)} s (bound ${r.boundSeconds.toFixed(2)} s)  origin ${r.originEgressCopies.toFixed(2)} copies  ` +
      `finished ${r.finishedPeers}/${r.peers}  verified ${r.verified}  trace ${r.traceHash.slice(0, 16)}`
  )
  return r
}

const main = async () => {
  console.log(`bench: seed ${seed}, node ${process.version}, young generation: ${semiSpaceMb > 0 ? `${semiSpaceMb} MiB semi-spaces` : "node's default"}, old space: ${heapMb > 0 ? `${heapMb} MiB` : "node's default"}`)
  if (process.argv.includes("--default")) {
    const def = await loadScenario("scenarios/default.ts")
    for (const strategy of def.strategies) bench("default (100 peers, 1 GiB)", def, strategy)
  }
  bench(`${peers} peers, 1 GiB`, decodeScenario(flashCrowd({ peers })), "p2p")
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
