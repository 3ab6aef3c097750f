// A flow-level network. Hosts have an uplink and a downlink (bytes/s); a transfer is a flow whose rate
// the RateModel decides. Flows are fluid: between two changes a flow moves at a constant rate, so
// only its completion is an event. When flows start or end, the links they cross are marked; before
// virtual time moves on, the flows on every marked link are settled (bytes moved so far) and re-rated
// once, however many changes the instant had (a finished piece freeing an upload slot and the next
// request taking it is one re-solve, not two). A flow's completion event is moved, not replaced,
// when its rate changes.
import { Effect } from "effect"
import type { SimEngine } from "./engine.ts"
import { type EventId, NO_EVENT } from "./event-queue.ts"

export interface NetHost {
  readonly index: number
  readonly name: string
  /** Link capacities; faults may change the uplink during a run (Network.setUplink). */
  up: number
  readonly down: number
  /** The flows on its uplink and downlink, in the order they started (as a Set would iterate them). */
  readonly upFlows: FlowList
  readonly downFlows: FlowList
  /** Bytes sent by completed or cancelled flows. */
  bytesSent: number
  bytesReceived: number
  /** Scratch for the network and its rate model (marks by re-solve number, index in a solve). */
  upMark: number
  downMark: number
  upSlot: number
  downSlot: number
}

/** A shared link between hosts: a rack uplink, an IDC's WAN link. Host up/downlinks live on NetHost. */
export interface Link {
  readonly name: string
  capacity: number
  readonly flows: Set<Flow>
  /** Scratch, as on NetHost. */
  mark: number
  slot: number
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
  /** The pending completion event (NO_EVENT until the flow has a rate). */
  completion: EventId
  /** When the flow ends at its current rate. */
  dueAt: number
  done: boolean
  /** Called with `doneArg` when the last byte is through. */
  readonly onDone: (arg: any) => void
  readonly doneArg: unknown
  /** Scratch: the re-solve that last collected this flow. */
  mark: number
  readonly network: Network
  /** Its neighbours in its source's `upFlows` and its destination's `downFlows` (FlowList). */
  upPrev: Flow | undefined
  upNext: Flow | undefined
  downPrev: Flow | undefined
  downNext: Flow | undefined
}

/**
 * A host link's flows in the order they were added: a list threaded through the flows themselves
 * (`upPrev`/`upNext` for an uplink, `downPrev`/`downNext` for a downlink), so a flow's start and end
 * hash nothing and allocate nothing (a large run starts a flow per piece per peer). Iterates as the
 * `Set<Flow>` it replaces did: insertion order. Walk it with `first` and `next`.
 */
export class FlowList implements Iterable<Flow> {
  first: Flow | undefined = undefined
  private last: Flow | undefined = undefined
  size = 0

  constructor(private readonly up: boolean) {}

  /** The flow after `f` in this list. */
  next(f: Flow): Flow | undefined {
    return this.up ? f.upNext : f.downNext
  }

  /** Appends a flow that is on no list of this kind. */
  add(flow: Flow): void {
    const f = flow as MutableFlow
    const last = this.last
    if (this.up) {
      f.upPrev = last
      f.upNext = undefined
      if (last === undefined) this.first = f
      else (last as MutableFlow).upNext = f
    } else {
      f.downPrev = last
      f.downNext = undefined
      if (last === undefined) this.first = f
      else (last as MutableFlow).downNext = f
    }
    this.last = f
    this.size++
  }

  /** Unlinks a flow; one not on this list (a flow that crossed no link) is left alone, as Set.delete would. */
  delete(flow: Flow): void {
    const f = flow as MutableFlow
    const prev = this.up ? f.upPrev : f.downPrev
    const next = this.up ? f.upNext : f.downNext
    if (prev === undefined && this.first !== f) return
    if (prev === undefined) this.first = next
    else if (this.up) (prev as MutableFlow).upNext = next
    else (prev as MutableFlow).downNext = next
    if (next === undefined) this.last = prev
    else if (this.up) (next as MutableFlow).upPrev = prev
    else (next as MutableFlow).downPrev = prev
    if (this.up) f.upPrev = f.upNext = undefined
    else f.downPrev = f.downNext = undefined
    this.size--
  }

  *[Symbol.iterator](): Iterator<Flow> {
    for (let f = this.first; f !== undefined; f = this.next(f)) yield f
  }
}

/** A Flow as the network (re)fills it. */
type MutableFlow = { -readonly [K in keyof Flow]: Flow[K] }

/** How link capacity is shared; swap for full max-min fairness without touching the event logic. */
export interface RateModel {
  /**
   * New rates for `flows` (every flow on a link that changed), written to `rates` in order. The flows'
   * `mark` is `solve` (a flow on one of their far links with another mark keeps its rate).
   */
  rates(flows: ReadonlyArray<Flow>, solve: number, rates: Float64Array): void
}

/** Each flow gets an equal share of its uplink and of its downlink, whichever is smaller. */
export const equalShare: RateModel = {
  rates: (flows, _solve, rates) => {
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]
      let r = Math.min(f.src.up / f.src.upFlows.size, f.dst.down / f.dst.downFlows.size)
      for (const link of f.via) r = Math.min(r, link.capacity / link.flows.size)
      rates[i] = r
    }
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
  /** Bytes moved between host pairs, by host index: `pairBytes[src]?.get(dst)` (filled at flow end; small
   *  integer keys, where one key for the pair would be a heap number in a large run). */
  readonly pairBytes: Array<Map<number, number> | undefined> = []
  /** Links changed since the last re-solve (each once: marked with `-(solve + 1)`). */
  private readonly changedUp: Array<NetHost> = []
  private readonly changedDown: Array<NetHost> = []
  private readonly changedLinks: Array<Link> = []
  private resolveQueued = false
  private solves = 0
  private readonly collected: Array<Flow> = []
  private rates = new Float64Array(256)
  private readonly resolveNow = () => this.resolve()

  constructor(
    private readonly engine: SimEngine,
    readonly latency: Latency,
    private readonly model: RateModel = equalShare,
    /** Trace every flow start and end (the run's fingerprint). */
    private readonly traceFlows = true
  ) {}

  addHost(name: string, up: number, down: number): NetHost {
    const h: NetHost = {
      index: this.hosts.length, name, up, down, upFlows: new FlowList(true), downFlows: new FlowList(false), bytesSent: 0, bytesReceived: 0,
      upMark: 0, downMark: 0, upSlot: 0, downSlot: 0
    }
    this.hosts.push(h)
    return h
  }

  addLink(name: string, capacity: number): Link {
    const link: Link = { name, capacity, flows: new Set(), mark: 0, slot: 0 }
    this.links.push(link)
    return link
  }

  rtt(a: NetHost, b: NetHost): number {
    return this.latency(a, b) + this.latency(b, a)
  }

  /** Starts a flow now; `onDone` runs when its last byte is through. */
  startFlow(src: NetHost, dst: NetHost, bytes: number, onDone: () => void): Flow {
    return this.startFlowCall(src, dst, bytes, onDone, undefined)
  }

  /** Flows given back (`release`), reused by the next `startFlowCall`. */
  private readonly spareFlows: Array<MutableFlow> = []

  /** `startFlow` calling `onDone(arg)`: a shared function and its target instead of a closure per flow. */
  startFlowCall<T>(src: NetHost, dst: NetHost, bytes: number, onDone: (arg: T) => void, arg: T): Flow {
    const now = this.engine.now
    const via = src === dst ? NO_LINKS : this.route(src, dst)
    const id = this.nextFlow++
    const spare = this.spareFlows.pop()
    let flow: Flow
    if (spare !== undefined) {
      spare.id = id
      spare.src = src
      spare.dst = dst
      spare.via = via
      spare.bytes = bytes
      spare.remaining = bytes
      spare.rate = 0
      spare.settledAt = now
      spare.completion = NO_EVENT
      spare.dueAt = Infinity
      spare.done = false
      spare.onDone = onDone
      spare.doneArg = arg
      spare.mark = 0
      flow = spare
    } else {
      flow = {
        id, src, dst, via, bytes, remaining: bytes, rate: 0, settledAt: now, completion: NO_EVENT, dueAt: Infinity,
        done: false, onDone, doneArg: arg, mark: 0, network: this,
        upPrev: undefined, upNext: undefined, downPrev: undefined, downNext: undefined
      }
    }
    this.flowsStarted++
    if (this.traceFlows) {
      // `flow ${id} start ${src}>${dst} ${bytes}`, written straight into the trace (a line per flow).
      this.engine.trace.begin(now, src.name.length + dst.name.length + 64)
        .text("flow ").int(flow.id).text(" start ").text(src.name).text(">").text(dst.name).text(" ").int(bytes).end()
    }
    if (bytes <= 0 || src === dst) {
      // Nothing crosses a link: done at once (but still as an event, to keep resumption asynchronous).
      this.engine.afterCall(0, finishEmpty, flow)
      return flow
    }
    src.upFlows.add(flow)
    dst.downFlows.add(flow)
    for (const link of via) link.flows.add(flow)
    this.changed(src, dst, via)
    return flow
  }

  /** Stops a flow early (its reader went away); counts the bytes that did cross. */
  cancel(flow: Flow): void {
    if (flow.done) return
    settleFlow(flow, this.engine.now)
    this.detach(flow)
    const moved = Math.round(flow.bytes - flow.remaining)
    flow.src.bytesSent += moved
    flow.dst.bytesReceived += moved
    this.countPair(flow, moved)
    if (this.traceFlows) this.engine.record(`flow ${flow.id} cancel ${moved}`)
  }

  /**
   * Gives back a flow that has completed (its `onDone` was called) or was cancelled, for reuse: a large
   * run has ~80,000 flows in flight, and a flow object per piece lives just long enough to be copied by
   * the young-generation GC. The caller must hold no reference to it afterwards (the network holds none:
   * its completion event is gone and it is on no link). A flow that crossed no link is not reused (its
   * zero-length completion event may still be pending).
   */
  release(flow: Flow): void {
    if (!flow.done || flow.bytes <= 0 || flow.src === flow.dst || flow.completion !== NO_EVENT) return
    const f = flow as MutableFlow
    // Drop what it points to, so a spare keeps nothing alive.
    f.doneArg = undefined
    this.spareFlows.push(f)
  }

  /** Changes a host's uplink capacity now (a slowed parent or origin): its flows get new rates. */
  setUplink(host: NetHost, up: number): void {
    // Bytes so far move at the old rates; the re-solve (this instant) uses the new capacity.
    for (let f = host.upFlows.first; f !== undefined; f = f.upNext) settleFlow(f, this.engine.now)
    host.up = up
    if (this.traceFlows) this.engine.record(`uplink ${host.name} ${up}`)
    this.changed(host, host, NO_LINKS)
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

  /** Marks the links a flow from src to dst crosses; their flows are re-rated before time moves on. */
  private changed(src: NetHost, dst: NetHost, via: ReadonlyArray<Link>): void {
    const mark = -(this.solves + 1)
    if (src.upMark !== mark) {
      src.upMark = mark
      this.changedUp.push(src)
    }
    if (dst.downMark !== mark) {
      dst.downMark = mark
      this.changedDown.push(dst)
    }
    for (const link of via) if (link.mark !== mark) {
      link.mark = mark
      this.changedLinks.push(link)
    }
    if (!this.resolveQueued) {
      this.resolveQueued = true
      this.engine.atInstantEnd(this.resolveNow)
    }
  }

  /** Settles and re-rates every flow on a changed link, once for all of this instant's changes. */
  private resolve(): void {
    this.resolveQueued = false
    const solve = ++this.solves
    const flows = this.collected
    flows.length = 0
    const now = this.engine.now
    // A loop per kind rather than a local closure: under tsx (esbuild's keepNames) every named closure
    // costs a defineProperty when it is made, and this runs once per instant.
    for (const h of this.changedUp) collectFlows(h.upFlows, solve, now, flows)
    for (const h of this.changedDown) collectFlows(h.downFlows, solve, now, flows)
    for (const l of this.changedLinks) collectLinkFlows(l.flows, solve, now, flows)
    this.changedUp.length = 0
    this.changedDown.length = 0
    this.changedLinks.length = 0
    if (flows.length === 0) return
    if (this.rates.length < flows.length) this.rates = new Float64Array(flows.length * 2)
    const rates = this.rates
    this.model.rates(flows, solve, rates)
    const queue = this.engine.queue
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]
      const rate = rates[i]
      if (rate === f.rate && f.completion !== NO_EVENT) continue
      f.rate = rate
      f.dueAt = f.remaining <= 0 ? now : now + (f.remaining / rate) * 1000
      if (f.completion === NO_EVENT || !queue.move(f.completion, f.dueAt)) f.completion = this.engine.atCall(f.dueAt, flowDue, f)
    }
    flows.length = 0
  }

  /** The flow's completion event. */
  complete(flow: Flow): void {
    flow.completion = NO_EVENT
    flow.remaining = 0
    flow.settledAt = this.engine.now
    this.detach(flow)
    this.finish(flow)
  }

  finish(flow: Flow): void {
    flow.done = true
    flow.src.bytesSent += flow.bytes
    flow.dst.bytesReceived += flow.bytes
    this.countPair(flow, flow.bytes)
    if (this.traceFlows) this.engine.trace.begin(this.engine.now, 40).text("flow ").int(flow.id).text(" end").end()
    flow.onDone(flow.doneArg)
  }

  private countPair(flow: Flow, bytes: number): void {
    const to = this.pairBytes[flow.src.index] ??= new Map()
    const key = flow.dst.index
    to.set(key, (to.get(key) ?? 0) + bytes)
  }

  /** Bytes moved from one group of hosts to another (e.g. IDCs), keyed "a->b". */
  trafficBetween(groupOf: (host: NetHost) => string): Record<string, number> {
    const out: Record<string, number> = {}
    this.pairBytes.forEach((to, s) => {
      if (to === undefined) return
      const src = groupOf(this.hosts[s])
      for (const [d, bytes] of to) {
        const k = `${src}->${groupOf(this.hosts[d])}`
        out[k] = (out[k] ?? 0) + bytes
      }
    })
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)))
  }

  private detach(flow: Flow): void {
    flow.done = true
    if (flow.completion !== NO_EVENT) this.engine.queue.cancel(flow.completion)
    flow.completion = NO_EVENT
    flow.src.upFlows.delete(flow)
    flow.dst.downFlows.delete(flow)
    for (const link of flow.via) link.flows.delete(flow)
    this.changed(flow.src, flow.dst, flow.via)
  }

  /** Current rate sums per link, for invariant checks. */
  linkLoads(): Array<{ host: NetHost; up: number; down: number }> {
    return this.hosts.map((host) => {
      let up = 0
      let down = 0
      for (let f = host.upFlows.first; f !== undefined; f = f.upNext) up += f.rate
      for (let f = host.downFlows.first; f !== undefined; f = f.downNext) down += f.rate
      return { host, up, down }
    })
  }
}

/** Bytes moved since the flow was last settled, at its current rate. */
const settleFlow = (f: Flow, now: number): void => {
  if (f.settledAt !== now) {
    f.remaining = Math.max(0, f.remaining - (f.rate * (now - f.settledAt)) / 1000)
    f.settledAt = now
  }
}

/** Settles each flow of `list` not yet seen in this solve and adds it to `into`. */
const collectFlows = (list: FlowList, solve: number, now: number, into: Array<Flow>): void => {
  for (let f = list.first; f !== undefined; f = list.next(f)) if (f.mark !== solve) {
    f.mark = solve
    settleFlow(f, now)
    into.push(f)
  }
}

/** `collectFlows` for a shared link's flows. */
const collectLinkFlows = (set: Set<Flow>, solve: number, now: number, into: Array<Flow>): void => {
  for (const f of set) if (f.mark !== solve) {
    f.mark = solve
    settleFlow(f, now)
    into.push(f)
  }
}

const flowDue = (f: Flow): void => {
  f.completion = NO_EVENT
  f.network.complete(f)
}

const finishEmpty = (f: Flow): void => {
  if (!f.done) f.network.finish(f)
}
