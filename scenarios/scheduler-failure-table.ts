// What a scheduler failure costs. A default-like flash crowd (100 peers, 1 GiB, two IDCs) per strategy,
// with the scheduler killed at 10%, 50% and 90% of that strategy's fault-free rollout time, each
// without a restart and with one (a new scheduler: new epoch, empty state; hosts re-register through
// presence). Prints a markdown table.
//
//   npx tsx scenarios/scheduler-failure-table.ts [--seed N] [--peers N] [--size-mib N] [--restart-after S]
//                                                 [--spread S] [--strategy NAME]
// --spread S spreads arrivals over S seconds (default 0, a flash crowd): then peers also arrive while
// the scheduler is down.
import { flashCrowd } from "./presets.ts"
import type { Fault } from "../sim/faults.ts"
import { runScenario, type RunResult } from "../sim/run.ts"
import { decodeScenario, MiB, type Scenario, Strategy } from "../sim/scenario.ts"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const seed = Number(arg("--seed") ?? 1)
const peers = Number(arg("--peers") ?? 100)
const sizeMiB = Number(arg("--size-mib") ?? 1024)
const restartAfter = Number(arg("--restart-after") ?? 2)
const spreadSeconds = Number(arg("--spread") ?? 0)
// Every strategy the scenario Schema knows, read at run time so new ones are included.
const strategies: ReadonlyArray<Strategy> = arg("--strategy") !== undefined ? [arg("--strategy") as Strategy] : Strategy.literals

const scenarioWith = (faults: ReadonlyArray<Fault>, strategy: Strategy, name: string): Scenario =>
  decodeScenario({ ...flashCrowd({ peers, sizeBytes: sizeMiB * MiB, spreadSeconds }), name, strategies: [strategy], faults: [...faults] })

const fmt = (s: number) => (Number.isFinite(s) ? `${s.toFixed(2)}s` : "-")

const main = () => {
  console.log(`scheduler failure: ${peers} peers, ${sizeMiB} MiB, arrivals over ${spreadSeconds}s, seed ${seed}, restart ${restartAfter}s after the crash; ` +
    "every host keeps presence (announces every 5 s, retries every 1 s) in every run, the fault-free one included")
  console.log("")
  console.log("| strategy | fault | origin egress (copies) | p50 | max | max vs no-fault | copies vs no-fault | finished |")
  console.log("|---|---|---:|---:|---:|---:|---:|---:|")
  const started = performance.now()
  for (const strategy of strategies) {
    const row = (fault: string, r: RunResult, base: RunResult) =>
      console.log(`| ${strategy} | ${fault} | ${r.originEgressCopies.toFixed(2)} | ${fmt(r.completionSeconds.p50)} | ${fmt(r.completionSeconds.max)} | ` +
        `${(r.completionSeconds.max / base.completionSeconds.max).toFixed(2)}× | ${(r.originEgressCopies / base.originEgressCopies).toFixed(2)}× | ${r.finishedPeers}/${r.peers} |`)
    const base = runScenario(scenarioWith([], strategy, "no fault"), { seed, strategy })
    row("none", base, base)
    // The run stops when the last peer is done: that is the rollout time.
    const rollout = base.virtualSeconds
    for (const share of [0.1, 0.5, 0.9]) {
      const at = Number((share * rollout).toFixed(3))
      for (const restart of [false, true]) {
        const fault: Fault = restart
          ? { kind: "scheduler-crash", atSeconds: at, restartAtSeconds: Number((at + restartAfter).toFixed(3)) }
          : { kind: "scheduler-crash", atSeconds: at }
        const label = `crash at ${share * 100}% (${at}s)${restart ? `, restart +${restartAfter}s` : ", no restart"}`
        row(label, runScenario(scenarioWith([fault], strategy, label), { seed, strategy }), base)
      }
    }
  }
  console.error(`(${((performance.now() - started) / 1000).toFixed(1)}s wall)`)
}

main()
