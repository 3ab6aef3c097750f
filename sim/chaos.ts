// `damselfly chaos`: a VOPR for the simulator (after TigerBeetle's). Each seed derives — from the seed
// alone — a small random deployment and a random fault plan, runs it twice under the safety checkers
// (sim/checkers.ts), checks liveness once the faults have healed, and checks that both runs have the
// same trace hash. A failure names the violated invariant and how to replay it.
import seedrandom from "seedrandom"
import { Schema } from "effect"
import { defaultPeerOptions } from "../core/peer/conductor.ts"
import { defaultSchedulerConfig } from "../core/scheduler/config.ts"
import { Checkers, type Violation } from "./checkers.ts"
import { CONNECT_TIMEOUT_MILLIS, type Fault, healSeconds } from "./faults.ts"
import { kumarRossBound } from "./run.ts"
import { decodeScenario, gbit, MiB, type Scenario, type ScenarioInput, scenarioPieceLength, Strategy } from "./scenario.ts"
import { strategySetup } from "./strategy.ts"
import { World } from "./world.ts"

// ---------------------------------------------------------------- deriving a case from a seed

export interface ChaosCase {
  readonly seed: number
  readonly strategy: Strategy
  readonly scenario: Scenario
  /** Virtual seconds by which every live peer must have finished, and how that was computed. */
  readonly deadlineSeconds: number
  readonly deadlineRule: string
}

type Rng = seedrandom.PRNG

const pick = <A>(rng: Rng, xs: ReadonlyArray<A>): A => xs[Math.floor(rng.double() * xs.length)]
const between = (rng: Rng, lo: number, hi: number) => lo + rng.double() * (hi - lo)
const intBetween = (rng: Rng, lo: number, hi: number) => Math.floor(between(rng, lo, hi + 1))
const round = (x: number, digits = 3) => Number(x.toFixed(digits))

export interface DeriveOptions {
  /** A strategy name, or "any" to draw one from the scenario Schema's list. */
  readonly strategy?: string
  readonly maxPeers?: number
  readonly maxSizeMiB?: number
  /** Corrupt peers also advertise the digests of their corrupt bytes (byzantine, not just broken). */
  readonly lying?: boolean
}

/** Everything about a case comes from the seed (and the options): the same seed, the same case. */
export const deriveCase = (seed: number, options: DeriveOptions = {}): ChaosCase => {
  const rng = seedrandom(`damselfly-chaos/${seed}`)
  const strategies = Strategy.literals
  const strategy = (options.strategy === undefined ? "p2p" : options.strategy === "any" ? pick(rng, strategies) : options.strategy) as Strategy
  const idcCount = intBetween(rng, 1, 3)
  const peers = intBetween(rng, 5, options.maxPeers ?? 40)
  // Log-uniform size, whole MiB: most cases small, some large.
  const sizeMiB = Math.round(Math.exp(between(rng, Math.log(16), Math.log(options.maxSizeMiB ?? 256))))
  const seeds = intBetween(rng, 0, 2)
  const names = ["idcA", "idcB", "idcC"].slice(0, idcCount)
  const perIdc = names.map(() => 0)
  for (let i = 0; i < peers; i++) perIdc[i < idcCount ? i : intBetween(rng, 0, idcCount - 1)]++
  const seedsPerIdc = names.map(() => 0)
  for (let i = 0; i < seeds; i++) seedsPerIdc[intBetween(rng, 0, idcCount - 1)]++
  const peerUp = gbit(pick(rng, [0.5, 1, 2, 5, 10]))
  const peerDown = gbit(pick(rng, [1, 2, 5, 10, 25]))
  const originGbit = pick(rng, [0.5, 1, 2, 5])
  const spreadSeconds = rng.double() < 0.5 ? 0 : round(between(rng, 0.5, 10), 2)
  const input: ScenarioInput = {
    name: `chaos seed ${seed}`,
    file: { url: `https://origin.example/chaos/${seed}.bin`, sizeBytes: sizeMiB * MiB },
    idcs: names.map((name, d) => ({ name, location: `cn|p${d}|${name}`, peers: perIdc[d], seeds: seedsPerIdc[d], racks: intBetween(rng, 1, 3) })),
    peer: { uploadBytesPerSecond: peerUp, downloadBytesPerSecond: peerDown, uploadSlots: intBetween(rng, 4, 50) },
    seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 200 },
    origin: { idc: pick(rng, names), uploadBytesPerSecond: gbit(originGbit) },
    scheduler: { idc: pick(rng, names) },
    latency: { intraIdcRttMs: round(between(rng, 0.1, 1)), interIdcRttMs: round(between(rng, 2, 60)) },
    arrival: { spreadSeconds },
    strategies: [strategy]
  }
  // The fault plan lives within the rollout's expected span: a few multiples of its lower bound.
  const size = sizeMiB * MiB
  const kr = kumarRossBound(size, gbit(originGbit), Array(peers).fill(peerDown), Array(peers + seeds).fill(peerUp))
  const span = Math.max(1, 3 * kr) + spreadSeconds
  const hostIds = (kind: "peer" | "seed") =>
    names.flatMap((name, d) => Array.from({ length: kind === "peer" ? perIdc[d] : seedsPerIdc[d] }, (_, i) => `${kind}-${name}-${String(i).padStart(4, "0")}`))
  const peerIds = hostIds("peer")
  const seedIds = strategySeeds(strategy) ? hostIds("seed") : []
  const anyHost = () => (seedIds.length > 0 && rng.double() < 0.25 ? pick(rng, seedIds) : pick(rng, peerIds))
  const t = () => round(between(rng, 0, span))
  const interval = (maxLength: number) => {
    const from = t()
    return { fromSeconds: from, untilSeconds: round(from + between(rng, 0.2, maxLength)) }
  }
  const faults: Array<Fault> = []
  const stopped = new Set<string>()
  // Hosts that die or fill up: at most a third of the peers, so the swarm stays a swarm.
  const victim = (): string | undefined => {
    if (stopped.size >= Math.floor(peers / 3)) return undefined
    const h = anyHost()
    if (stopped.has(h)) return undefined
    stopped.add(h)
    return h
  }
  const kinds: ReadonlyArray<Fault["kind"]> = [
    "scheduler-crash", "scheduler-partition", "peer-crash", "peer-leave", "slow-parent", "link-partition",
    "transfer-loss", "corrupt-peer", "origin-outage", "origin-slow", "disk-full"
  ]
  const count = intBetween(rng, 1, 4)
  for (let i = 0; i < count; i++) {
    const kind = pick(rng, kinds)
    switch (kind) {
      case "scheduler-crash": {
        const at = t()
        faults.push(rng.double() < 0.6 ? { kind, atSeconds: at, restartAtSeconds: round(at + between(rng, 0.5, 10)) } : { kind, atSeconds: at })
        break
      }
      case "scheduler-partition": {
        const hosts = rng.double() < 0.4 ? [pick(rng, names)] : Array.from({ length: intBetween(rng, 1, 3) }, anyHost)
        faults.push({ kind, hosts: [...new Set(hosts)], ...interval(15) })
        break
      }
      case "peer-crash":
      case "peer-leave":
      case "disk-full": {
        const host = victim()
        if (host !== undefined) faults.push({ kind, host, atSeconds: t() })
        break
      }
      case "slow-parent": {
        const f = { kind, host: anyHost(), factor: round(between(rng, 0.01, 0.5)), ...interval(20) }
        faults.push(rng.double() < 0.3 ? { kind, host: f.host, factor: f.factor, fromSeconds: f.fromSeconds } : f)
        break
      }
      case "link-partition": {
        const ends = idcCount > 1 && rng.double() < 0.5 ? pickTwo(rng, names) : [anyHost(), pick(rng, [anyHost(), "origin", "scheduler"])]
        if (ends[0] !== ends[1]) faults.push({ kind, a: ends[0], b: ends[1], ...interval(15) })
        break
      }
      case "transfer-loss":
        faults.push({ kind, fraction: round(between(rng, 0.01, 0.3)), ...interval(20) })
        break
      case "corrupt-peer": {
        // Half the corrupt peers also advertise the digests of what they serve (--lying: all of them).
        // Seed peers are operator infrastructure and trusted for digests when no scheduler can vouch;
        // one may rot (serve corrupt bytes) but is not an adversary that lies.
        const lie = rng.double() < 0.5 || options.lying === true
        const host = anyHost()
        faults.push({ kind, host, fromSeconds: t(), ...(lie && !seedIds.includes(host) ? { lieAboutDigests: true } : {}) })
        break
      }
      case "origin-outage":
        faults.push({ kind, ...interval(10) })
        break
      case "origin-slow":
        faults.push({ kind, factor: round(between(rng, 0.05, 0.5)), ...interval(15) })
        break
    }
  }
  // Liveness deadline: faults healed (or begun, for permanent ones) and everyone arrived, then a
  // generous multiple of the origin-only Kumar–Ross bound (what a swarm that lost its scheduler falls
  // back to), plus the peer's own timeouts (two piece timeouts, three stalls, a seed wait, connect).
  const heal = Math.max(healSeconds(faults), spreadSeconds)
  const originOnly = kumarRossBound(size, gbit(originGbit), Array(peers).fill(peerDown), [])
  const timeouts = (2 * defaultPeerOptions.pieceTimeoutMillis + 3 * defaultPeerOptions.stallTimeoutMillis +
    defaultSchedulerConfig.seedWaitMillis + CONNECT_TIMEOUT_MILLIS) / 1000
  const deadlineSeconds = round(heal + 3 * originOnly + timeouts)
  const deadlineRule = `heal ${round(heal)}s + 3 × origin-only K–R ${round(originOnly)}s + timeouts ${timeouts}s = ${deadlineSeconds}s`
  const scenario = decodeScenario({ ...input, faults, limits: { maxVirtualSeconds: deadlineSeconds + 60 } }, input.name)
  return { seed, strategy, scenario, deadlineSeconds, deadlineRule }
}

const pickTwo = <A>(rng: Rng, xs: ReadonlyArray<A>): [A, A] => {
  const i = Math.floor(rng.double() * xs.length)
  const j = (i + 1 + Math.floor(rng.double() * (xs.length - 1))) % xs.length
  return [xs[i], xs[j]]
}

/** Whether the strategy's world has seed hosts (faults may only name hosts that exist). */
const strategySeeds = (strategy: Strategy): boolean => strategySetup(strategy).seeds

// ---------------------------------------------------------------- running a case

export interface ChaosRun {
  readonly violations: ReadonlyArray<Violation>
  readonly traceHash: string
  readonly virtualSeconds: number
  readonly events: number
  readonly finished: number
  readonly live: number
  readonly stopped: { readonly crashed: number; readonly left: number; readonly diskFull: number }
  readonly corruptServed: number
  readonly pieceWrites: number
  readonly dagChecks: number
  readonly outcomes: ReadonlyArray<string>
}

export const runCase = (c: ChaosCase, traceSink?: (line: string) => void): ChaosRun => {
  const { scenario } = c
  const pieceLength = scenarioPieceLength(scenario, c.strategy, scenario.file.sizeBytes)
  let world: World | undefined
  const checkers = new Checkers({ url: scenario.file.url, contentLength: scenario.file.sizeBytes, pieceLength, get taskId() { return world!.taskId } })
  world = new World(scenario, { seed: c.seed, strategy: c.strategy, traceSink, monitor: checkers })
  checkers.attach(world.engine)
  world.run()
  const w = world
  const { faults } = w
  checkers.finish((id) => w.hostById(id), faults.crashed)
  const violations = [...checkers.violations]
  const outcomes: Array<string> = []
  let finished = 0
  let live = 0
  for (const p of [...w.peers, ...w.seeds.filter((s) => s.startedAt !== undefined)]) {
    const id = p.host.id
    const stopped = faults.crashed.has(id) ? "crashed" : faults.left.has(id) ? "left" : faults.diskFull.has(id) ? "disk full" : undefined
    const done = p.outcome === "ok" && p.finishedAt !== undefined
    const line = `${id}: ${stopped ?? (done ? "ok" : "unfinished")}` +
      (p.finishedAt !== undefined ? ` at ${(p.finishedAt / 1000).toFixed(3)}s` : "") +
      (p.outcome === "failed" && stopped === undefined ? ` (${p.failure?.split("\n")[0]})` : "")
    outcomes.push(line)
    if (p.host.type !== "normal" || stopped !== undefined) continue
    live++
    if (done) finished++
    if (!done || p.finishedAt! / 1000 > c.deadlineSeconds) {
      violations.push({
        invariant: "liveness",
        atSeconds: w.engine.now / 1000,
        detail: done
          ? `${id} finished at ${(p.finishedAt! / 1000).toFixed(3)}s, after the deadline ${c.deadlineSeconds}s`
          : `${id} never finished (${p.failure?.split("\n")[0] ?? "still running at the time limit"})`
      })
    }
  }
  return {
    violations,
    traceHash: w.engine.trace.finish(),
    virtualSeconds: w.engine.now / 1000,
    events: w.engine.events,
    finished,
    live,
    stopped: { crashed: faults.crashed.size, left: faults.left.size, diskFull: faults.diskFull.size },
    corruptServed: faults.corruptServed,
    pieceWrites: checkers.writes,
    dagChecks: checkers.dagChecks,
    outcomes
  }
}

export interface SeedResult {
  readonly case: ChaosCase
  readonly run: ChaosRun
  readonly replayHash: string
  readonly violations: ReadonlyArray<Violation>
  readonly wallSeconds: number
}

/** Runs a seed's case twice: the checkers' violations, and a determinism violation if the hashes differ. */
export const runSeed = (seed: number, options: DeriveOptions = {}): SeedResult => {
  const started = performance.now()
  const c = deriveCase(seed, options)
  const run = runCase(c)
  const replay = runCase(c)
  const violations = [...run.violations]
  if (replay.traceHash !== run.traceHash) {
    violations.push({ invariant: "determinism", atSeconds: 0, detail: `trace hash ${run.traceHash} then ${replay.traceHash}` })
  }
  return { case: c, run, replayHash: replay.traceHash, violations, wallSeconds: (performance.now() - started) / 1000 }
}

// ---------------------------------------------------------------- printing

const fmtMiB = (b: number) => `${(b / MiB).toFixed(0)} MiB`
const fmtGbit = (bps: number) => `${round((bps * 8) / 1e9, 2)} Gbit/s`

export const describeFault = (f: Fault): string => {
  switch (f.kind) {
    case "scheduler-crash":
      return `scheduler crash at ${f.atSeconds}s${f.restartAtSeconds !== undefined ? `, restart (new epoch, empty state) at ${f.restartAtSeconds}s` : ", no restart"}`
    case "scheduler-partition":
      return `scheduler cut off from ${f.hosts.join(", ")} ${f.fromSeconds}s–${f.untilSeconds}s`
    case "peer-crash":
      return `${f.host} crashes at ${f.atSeconds}s`
    case "peer-leave":
      return `${f.host} leaves (LeavePeer) at ${f.atSeconds}s`
    case "slow-parent":
      return `${f.host} uplink ×${f.factor} from ${f.fromSeconds}s${f.untilSeconds !== undefined ? ` to ${f.untilSeconds}s` : ""}`
    case "link-partition":
      return `link ${f.a} ⟷ ${f.b} cut from ${f.fromSeconds}s${f.untilSeconds !== undefined ? ` to ${f.untilSeconds}s` : ""}`
    case "transfer-loss":
      return `${(f.fraction * 100).toFixed(1)}% of piece transfers fail from ${f.fromSeconds}s${f.untilSeconds !== undefined ? ` to ${f.untilSeconds}s` : ""}`
    case "corrupt-peer":
      return `${f.host} serves corrupt pieces from ${f.fromSeconds}s${f.lieAboutDigests === true ? " and advertises their digests" : ""}`
    case "origin-outage":
      return `origin down (503) ${f.fromSeconds}s–${f.untilSeconds}s`
    case "origin-slow":
      return `origin uplink ×${f.factor} ${f.fromSeconds}s–${f.untilSeconds}s`
    case "disk-full":
      return `${f.host} disk full at ${f.atSeconds}s`
  }
}

export const describeCase = (c: ChaosCase): Array<string> => {
  const s = c.scenario
  const peers = s.idcs.reduce((n, i) => n + i.peers, 0)
  return [
    `strategy ${c.strategy}; ${peers} peers, ${s.idcs.reduce((n, i) => n + i.seeds, 0)} seeds; file ${fmtMiB(s.file.sizeBytes)} (pieces of ${fmtMiB(scenarioPieceLength(s, c.strategy, s.file.sizeBytes))})`,
    `idcs: ${s.idcs.map((i) => `${i.name} ${i.peers}p/${i.seeds}s/${i.racks}r`).join(", ")}; origin ${s.origin.idc} ${fmtGbit(s.origin.uploadBytesPerSecond)}; scheduler ${s.scheduler?.idc}`,
    `peer up ${fmtGbit(s.peer.uploadBytesPerSecond)} down ${fmtGbit(s.peer.downloadBytesPerSecond)} slots ${s.peer.uploadSlots}; rtt intra ${s.latency.intraIdcRttMs} ms inter ${s.latency.interIdcRttMs} ms; arrivals over ${s.arrival.spreadSeconds}s`,
    ...(s.faults ?? []).map((f) => `fault: ${describeFault(f)}`),
    `liveness: every live peer done by ${c.deadlineRule}`
  ]
}

// ---------------------------------------------------------------- CLI

const USAGE = "usage: damselfly chaos --seeds N [--from S] [--strategy NAME|any] [--lying]\n       damselfly chaos --seed S [--strategy NAME|any] [--lying]\n" +
  "  --lying: every corrupt peer also advertises the digests of what it serves (by default half of them do)"

interface ChaosArgs {
  readonly seeds: number
  readonly from: number
  readonly one: number | undefined
  readonly strategy: string | undefined
  readonly lying: boolean
}

const parse = (argv: ReadonlyArray<string>): ChaosArgs | string => {
  let lying = false
  let seeds = 100
  let from = 1
  let one: number | undefined
  let strategy: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const int = () => {
      const v = argv[++i]
      const n = Number(v)
      if (v === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`${a}: expected a non-negative integer, got ${JSON.stringify(v)}`)
      return n
    }
    try {
      if (a === "--seeds") seeds = int()
      else if (a === "--from") from = int()
      else if (a === "--seed") one = int()
      else if (a === "--lying") lying = true
      else if (a === "--strategy") {
        strategy = argv[++i]
        if (strategy !== "any" && !Schema.is(Strategy)(strategy)) return `--strategy: expected one of ${Strategy.literals.join(", ")} or any, got ${JSON.stringify(strategy)}`
      } else if (a === "-h" || a === "--help") return USAGE
      else return `unknown argument ${JSON.stringify(a)}\n${USAGE}`
    } catch (e) {
      return (e as Error).message
    }
  }
  return { seeds, from, one, strategy, lying }
}

const flags = (args: ChaosArgs) => `${args.strategy !== undefined ? ` --strategy ${args.strategy}` : ""}${args.lying ? " --lying" : ""}`

const printViolations = (seed: number, vs: ReadonlyArray<Violation>, args: ChaosArgs) => {
  for (const v of vs.slice(0, 10)) console.log(`  violated ${v.invariant} at ${v.atSeconds.toFixed(3)}s: ${v.detail}`)
  if (vs.length > 10) console.log(`  … and ${vs.length - 10} more`)
  console.log(`  reproduce with: damselfly chaos --seed ${seed}${flags(args)}`)
}

export async function runChaosCommand(argv: ReadonlyArray<string>): Promise<number> {
  const args = parse(argv)
  if (typeof args === "string") {
    console.error(args)
    return args === USAGE ? 0 : 2
  }
  const options: DeriveOptions = { strategy: args.strategy, lying: args.lying }
  if (args.one !== undefined) {
    const seed = args.one
    console.log(`damselfly chaos --seed ${seed}${flags(args)}`)
    const r = runSeed(seed, options)
    for (const line of describeCase(r.case)) console.log(line)
    console.log("")
    for (const line of r.run.outcomes) console.log(`  ${line}`)
    console.log("")
    console.log(`${r.run.finished}/${r.run.live} live peers finished; stopped: ${r.run.stopped.crashed} crashed, ${r.run.stopped.left} left, ${r.run.stopped.diskFull} disk full; ` +
      `${r.run.pieceWrites} piece writes checked, ${r.run.dagChecks} DAG checks, ${r.run.corruptServed} corrupt pieces served`)
    console.log(`${r.run.events} events, ${r.run.virtualSeconds.toFixed(3)}s virtual, ${r.wallSeconds.toFixed(2)}s wall for two runs`)
    console.log(`trace hash ${r.run.traceHash}`)
    console.log(`replay     ${r.replayHash}`)
    if (r.violations.length === 0) {
      console.log("ok: every invariant held")
      return 0
    }
    console.log(`FAIL seed ${seed}`)
    printViolations(seed, r.violations, args)
    return 1
  }
  console.log(`damselfly chaos --seeds ${args.seeds} --from ${args.from}${flags(args)}`)
  const started = performance.now()
  let failed = 0
  for (let seed = args.from; seed < args.from + args.seeds; seed++) {
    const r = runSeed(seed, options)
    const ok = r.violations.length === 0
    if (!ok) failed++
    console.log(`seed ${seed}: ${ok ? "ok" : "FAIL"}  ${r.run.finished}/${r.run.live} live peers done, ${r.run.virtualSeconds.toFixed(1)}s virtual, ${r.wallSeconds.toFixed(2)}s wall, trace ${r.run.traceHash.slice(0, 16)}`)
    for (const line of describeCase(r.case)) console.log(`  ${line}`)
    if (!ok) printViolations(seed, r.violations, args)
  }
  console.log(`${args.seeds - failed}/${args.seeds} seeds passed in ${((performance.now() - started) / 1000).toFixed(1)}s`)
  return failed === 0 ? 0 : 1
}
