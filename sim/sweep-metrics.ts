// Extra per-run measurements for sweeps and reports, read off the run's trace (a traceSink observes the
// trace without changing its hash): the origin's cumulative egress over time and the bytes sent
// between each pair of IDCs. A result that already carries these fields (RunResult may grow them)
// keeps its own values; this fills them in only when absent.
import { runScenario, type RunOptions, type RunResult } from "./run.ts"
import type { Scenario } from "./scenario.ts"

export interface RunExtras {
  /** Per-peer completion times in seconds, sorted (finished peers only). */
  readonly completionTimesSeconds: ReadonlyArray<number>
  /** [virtual seconds, cumulative bytes the origin had sent], downsampled, starting at [0, 0]. */
  readonly originEgressSeries: ReadonlyArray<readonly [number, number]>
  /** Bytes by "srcIdc->dstIdc" (same-IDC pairs included), origin traffic counted in the origin's IDC. */
  readonly trafficBetweenIdcs: Readonly<Record<string, number>>
}

export type MeasuredResult = Omit<RunResult, "wallSeconds"> & Partial<RunExtras> & { readonly wallSeconds?: number }

/** Most points kept in `originEgressSeries`. */
export const SERIES_POINTS = 200

interface OpenFlow {
  readonly pair: string
  readonly bytes: number
  readonly fromOrigin: boolean
}

/** Collects flow traffic from trace lines `T flow N start SRC>DST BYTES`, `T flow N end`, `T flow N cancel MOVED`. */
export class FlowCollector {
  private readonly open = new Map<string, OpenFlow>()
  readonly traffic: Record<string, number> = {}
  private readonly egress: Array<[number, number]> = [[0, 0]]
  private originBytes = 0
  /** Peer arrival and completion times (ms) from `start HOST` and `done HOST ok`. */
  private readonly started = new Map<string, number>()
  readonly completions: Array<number> = []

  constructor(private readonly idcOfHost: (name: string) => string | undefined, private readonly originName = "origin") {}

  readonly sink = (text: string): void => {
    const sp = text.indexOf(" ")
    const body = text.slice(sp + 1, text.length - (text.endsWith("\n") ? 1 : 0))
    if (body.startsWith("flow ")) this.flow(Number(text.slice(0, sp)), body.split(" "))
    else if (body.startsWith("start peer-")) this.started.set(body.slice(6), Number(text.slice(0, sp)))
    else if (body.startsWith("done peer-") && body.endsWith(" ok")) {
      const at = this.started.get(body.slice(5, -3))
      if (at !== undefined) this.completions.push((Number(text.slice(0, sp)) - at) / 1000)
    }
  }

  private flow(ms: number, w: Array<string>): void {
    // w: ["flow", id, "start", "SRC>DST", bytes] | ["flow", id, "end"] | ["flow", id, "cancel", moved]
    const id = w[1]
    if (w[2] === "start") {
      const [src, dst] = w[3].split(">")
      const a = this.idcOfHost(src)
      const b = this.idcOfHost(dst)
      this.open.set(id, { pair: `${a ?? src}->${b ?? dst}`, bytes: Number(w[4]), fromOrigin: src === this.originName })
      return
    }
    const f = this.open.get(id)
    if (f === undefined) return
    this.open.delete(id)
    const bytes = w[2] === "cancel" ? Number(w[3]) : f.bytes
    if (!Number.isFinite(bytes) || bytes <= 0) return
    this.traffic[f.pair] = (this.traffic[f.pair] ?? 0) + bytes
    if (f.fromOrigin) {
      this.originBytes += bytes
      const s = ms / 1000
      const last = this.egress[this.egress.length - 1]
      if (last[0] === s) last[1] = this.originBytes
      else this.egress.push([s, this.originBytes])
    }
  }

  /** The egress series thinned to at most `points` points (step function sampled on a uniform grid). */
  series(points = SERIES_POINTS): Array<[number, number]> {
    const all = this.egress
    if (all.length <= points) return all.map(([t, b]) => [t, b])
    const end = all[all.length - 1][0]
    const out: Array<[number, number]> = [[0, 0]]
    let j = 0
    for (let k = 1; k < points; k++) {
      const t = (end * k) / (points - 1)
      while (j + 1 < all.length && all[j + 1][0] <= t) j++
      out.push([t, all[j][1]])
    }
    out[out.length - 1] = [end, all[all.length - 1][1]]
    return out
  }
}

/** Host names in the simulator: "origin", "scheduler", "peer-IDC-NNNN", "seed-IDC-NNNN". */
export const idcResolver = (scenario: Scenario) => {
  const names = scenario.idcs.map((i) => i.name)
  return (host: string): string | undefined => {
    if (host === "origin") return scenario.origin.idc
    if (host === "scheduler") return scenario.scheduler?.idc ?? scenario.origin.idc
    const m = /^(?:peer|seed)-(.+)-\d+$/.exec(host)
    return m !== null && names.includes(m[1]) ? m[1] : undefined
  }
}

const round = (x: number, digits: number) => Number(x.toFixed(digits))

/**
 * runScenario plus the extras above. `wallSeconds` is dropped unless asked for, so the same
 * (scenario, strategy, seed) gives the same object byte for byte.
 */
export const runMeasured = (scenario: Scenario, options: RunOptions, keepWallSeconds = false): MeasuredResult => {
  const collector = new FlowCollector(idcResolver(scenario))
  const user = options.traceSink
  const traceSink = user === undefined ? collector.sink : (line: string) => (collector.sink(line), user(line))
  const result = runScenario(scenario, { ...options, traceSink }) as RunResult & Partial<RunExtras>
  const { wallSeconds, ...rest } = result
  return {
    ...rest,
    completionTimesSeconds: result.completionTimesSeconds ?? collector.completions.slice().sort((a, b) => a - b).map((t) => round(t, 6)),
    originEgressSeries: result.originEgressSeries ?? collector.series().map(([t, b]) => [round(t, 6), b] as const),
    trafficBetweenIdcs: result.trafficBetweenIdcs ?? { ...collector.traffic },
    ...(keepWallSeconds ? { wallSeconds } : {})
  }
}
