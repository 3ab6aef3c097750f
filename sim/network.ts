// A flow-level network. Hosts have an uplink and a downlink (bytes/s); a transfer is a flow whose rate
// the RateModel decides. Flows are fluid: between two changes a flow moves at a constant rate, so
// only its completion is an event. When a flow starts or ends, only the flows whose rate can change
// are settled (bytes moved so far) and get a new completion event; stale completion events are
// cancelled in place and skipped when popped (lazy deletion).
import { Effect } from "effect"
import type { SimEngine } from "./engine.ts"
import type { SimEvent } from "./event-queue.ts"

export interface NetHost {
  readonly index: number
  readonly name: string
  /** Link capacities; faults may change the uplink during a run (Network.setUplink). */
  up: number
  readonly down: number
  readonly upFlows: Set<Flow>
  readonly downFlows: Set<Flow>
  /** Bytes sent by completed or cancelled flows. */
  bytesSent: number
  bytesReceived: number
}

/** A shared link between hosts: a rack uplink, an IDC's WAN link. Host up/downlinks live on NetHost. */
export interface Link {
  readonly name: string
  capacity: number
  readonly flows: Set<Flow>
}

export interface Flow {
  readonly id: number
  readonly src: NetHost
  readonly dst: NetHost
  /** Shared links between the source's uplink and the destination's downlink. */
  readonly via: ReadonlyArray<Link>
  readonly bytes: number
  remaining: number
  rate: number
  /** Virtual time `remaining` was last settled at. */
  settledAt: number
  /** The pending completion event; replaced (and the old one cancelled) when the rate changes. */
  completion: SimEvent | undefined
  /** When the flow ends at its current rate. */
  dueAt: number
  done: boolean
  readonly onDone: () => void
}

/** How link capacity is shared; swap for full max-min fairness without touching the event logic. */
export interface RateModel {
  /** Flows whose rate may change when a flow between `src` and `dst` (through `via`) starts or ends. */
  affected(src: NetHost, dst: NetHost, via: ReadonlyArray<Link>): Iterable<Flow>
  rate(flow: Flow): number
}

/** Each flow gets an equal share of its uplink and of its downlink, whichever is smaller. */
export const equalShare: RateModel = {
  *affected(src, dst, via) {
    const seen = new Set<Flow>(src.upFlows)
    yield* src.upFlows
    for (const f of dst.downFlows) if (!seen.has(f)) {
      seen.add(f)
      yield f
    }
    for (const link of via) for (const f of link.flows) if (!seen.has(f)) {
      seen.add(f)
      yield f
    }
  },
  rate: (f) => {
    let r = Math.min(f.src.up / f.src.upFlows.size, f.dst.down / f.dst.downFlows.size)
    for (const link of f.via) r = Math.min(r, link.capacity / link.flows.size)
    return r
  }
}

const NO_LINKS: ReadonlyArray<Link> = []

/** One-way latency in milliseconds between two hosts. */
export type Latency = (src: NetHost, dst: NetHost) => number

export class Network {
  readonly hosts: Array<NetHost> = []
  private nextFlow = 0
  flowsStarted = 0
  readonly links: Array<Link> = []
  /** The shared links a flow from src to dst crosses (none unless the world sets a topology). */
  route: (src: NetHost, dst: NetHost) => ReadonlyArray<Link> = () => NO_LINKS
  /** Bytes moved between host pairs, by host index: `pairBytes.get(src * hosts + dst)` (filled at flow end). */
  readonly pairBytes = new Map<number, number>()

  constructor(
    private readonly engine: SimEngine,
    readonly latency: Latency,
    private readonly model: RateModel = equalShare,
    /** Trace every flow start and end (the run's fingerprint). */
    private readonly traceFlows = true
  ) {}

  addHost(name: string, up: number, down: number): NetHost {
    const h: NetHost = { index: this.hosts.length, name, up, down, upFlows: new Set(), downFlows: new Set(), bytesSent: 0, bytesReceived: 0 }
    this.hosts.push(h)
    return h
  }

  addLink(name: string, capacity: number): Link {
    const link: Link = { name, capacity, flows: new Set() }
    this.links.push(link)
    return link
  }

  rtt(a: NetHost, b: NetHost): number {
    return this.latency(a, b) + this.latency(b, a)
  }

  /** Starts a flow now; `onDone` runs when its last byte is through. Returns a cancel function. */
  startFlow(src: NetHost, dst: NetHost, bytes: number, onDone: () => void): Flow {
    const now = this.engine.now
    const via = src === dst ? NO_LINKS : this.route(src, dst)
    const flow: Flow = { id: this.nextFlow++, src, dst, via, bytes, remaining: bytes, rate: 0, settledAt: now, completion: undefined, dueAt: Infinity, done: false, onDone }
    this.flowsStarted++
    if (this.traceFlows) this.engine.record(`flow ${flow.id} start ${src.name}>${dst.name} ${bytes}`)
    if (bytes <= 0 || src === dst) {
      // Nothing crosses a link: done at once (but still as an event, to keep resumption asynchronous).
      this.engine.after(0, () => {
        if (!flow.done) this.finish(flow)
      })
      return flow
    }
    this.settle(this.model.affected(src, dst, via), now)
    src.upFlows.add(flow)
    dst.downFlows.add(flow)
    for (const link of via) link.flows.add(flow)
    this.reschedule(this.model.affected(src, dst, via), now)
    return flow
  }

  /** Stops a flow early (its reader went away); counts the bytes that did cross. */
  cancel(flow: Flow): void {
    if (flow.done) return
    const now = this.engine.now
    this.settle(this.model.affected(flow.src, flow.dst, flow.via), now)
    this.detach(flow)
    const moved = Math.round(flow.bytes - flow.remaining)
    flow.src.bytesSent += moved
    flow.dst.bytesReceived += moved
    this.countPair(flow, moved)
    if (this.traceFlows) this.engine.record(`flow ${flow.id} cancel ${moved}`)
    this.reschedule(this.model.affected(flow.src, flow.dst, flow.via), now)
  }

  /** Changes a host's uplink capacity now (a slowed parent or origin): its flows get new rates. */
  setUplink(host: NetHost, up: number): void {
    const now = this.engine.now
    this.settle(this.model.affected(host, host, NO_LINKS), now)
    host.up = up
    if (this.traceFlows) this.engine.record(`uplink ${host.name} ${up}`)
    // Asked again after the change, so a model that solves on `affected` solves with the new capacity.
    this.reschedule(this.model.affected(host, host, NO_LINKS), now)
  }

  /** One request round trip, then the flow: an Effect that completes when the bytes are through. */
  transfer(src: NetHost, dst: NetHost, bytes: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      let flow: Flow | undefined
      const request = this.engine.after(this.rtt(src, dst), () => {
        flow = this.startFlow(src, dst, bytes, () => resume(Effect.void))
      })
      return Effect.sync(() => {
        this.engine.queue.cancel(request)
        if (flow !== undefined) this.cancel(flow)
      })
    })
  }

  /** The flow alone (the caller already paid the request latency). Interrupting it cancels the flow. */
  flow(src: NetHost, dst: NetHost, bytes: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const flow = this.startFlow(src, dst, bytes, () => resume(Effect.void))
      return Effect.sync(() => this.cancel(flow))
    })
  }

  /** A control message: latency only. */
  delay(src: NetHost, dst: NetHost): Effect.Effect<void> {
    const ms = this.latency(src, dst)
    return ms > 0 ? Effect.sleep(ms) : Effect.void
  }

  private settle(flows: Iterable<Flow>, now: number): void {
    for (const f of flows) {
      if (f.settledAt !== now) {
        f.remaining = Math.max(0, f.remaining - (f.rate * (now - f.settledAt)) / 1000)
        f.settledAt = now
      }
    }
  }

  private reschedule(flows: Iterable<Flow>, now: number): void {
    for (const f of flows) {
      const rate = this.model.rate(f)
      if (rate === f.rate && f.completion !== undefined) continue
      f.rate = rate
      f.dueAt = now + (f.remaining / rate) * 1000
      // A slower flow keeps its (now early) event, which re-arms itself when it fires; only a faster
      // one needs a new event. On a crowded link this halves the agenda traffic.
      if (f.completion !== undefined) {
        if (f.completion.time <= f.dueAt) continue
        this.engine.queue.cancel(f.completion)
      }
      f.completion = this.engine.at(f.dueAt, () => this.onDue(f))
    }
  }

  private onDue(f: Flow): void {
    if (this.engine.now < f.dueAt) f.completion = this.engine.at(f.dueAt, () => this.onDue(f))
    else this.complete(f)
  }

  private complete(flow: Flow): void {
    const now = this.engine.now
    this.settle(this.model.affected(flow.src, flow.dst, flow.via), now)
    flow.remaining = 0
    this.detach(flow)
    this.reschedule(this.model.affected(flow.src, flow.dst, flow.via), now)
    this.finish(flow)
  }

  private finish(flow: Flow): void {
    flow.done = true
    flow.src.bytesSent += flow.bytes
    flow.dst.bytesReceived += flow.bytes
    this.countPair(flow, flow.bytes)
    if (this.traceFlows) this.engine.record(`flow ${flow.id} end`)
    flow.onDone()
  }

  private countPair(flow: Flow, bytes: number): void {
    const key = flow.src.index * 1_000_003 + flow.dst.index
    this.pairBytes.set(key, (this.pairBytes.get(key) ?? 0) + bytes)
  }

  /** Bytes moved from one group of hosts to another (e.g. IDCs), keyed "a->b". */
  trafficBetween(groupOf: (host: NetHost) => string): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [key, bytes] of this.pairBytes) {
      const src = this.hosts[Math.floor(key / 1_000_003)]
      const dst = this.hosts[key % 1_000_003]
      const k = `${groupOf(src)}->${groupOf(dst)}`
      out[k] = (out[k] ?? 0) + bytes
    }
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)))
  }

  private detach(flow: Flow): void {
    flow.done = true
    if (flow.completion !== undefined) this.engine.queue.cancel(flow.completion)
    flow.src.upFlows.delete(flow)
    flow.dst.downFlows.delete(flow)
    for (const link of flow.via) link.flows.delete(flow)
  }

  /** Current rate sums per link, for invariant checks. */
  linkLoads(): Array<{ host: NetHost; up: number; down: number }> {
    return this.hosts.map((host) => {
      let up = 0
      let down = 0
      for (const f of host.upFlows) up += f.rate
      for (const f of host.downFlows) down += f.rate
      return { host, up, down }
    })
  }
}
