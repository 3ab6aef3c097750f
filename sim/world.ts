// A simulated deployment: hosts from the scenario, the network between them, the origin, and ONE core
// Scheduler. Every host runs the core peer logic (a PeerMachine, driven from the event loop by sim/peer-driver.ts) with its own
// services, one per blob it pulls (a multi-layer image is one task per layer); seed hosts start a blob
// when the scheduler triggers them for it. Arrivals (flash, uniform, Poisson, rolling batches) and
// departures after completion are scheduled here.
import { Effect, Exit, type Fiber } from "effect"
import { Host, peerIdOf, type TaskId } from "../core/domain.ts"
import { AnnounceHost, LeavePeer } from "../core/protocol.ts"
import { keepPresence } from "../core/peer/presence.ts"
import type { PieceStore } from "../core/services/piece-store.ts"
import { defaultPeerOptions, type PeerOptions } from "../core/peer/conductor.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import type { SeedPeerTrigger, SeedRequest } from "../core/services/seed-peer-trigger.ts"
import { Sha256 } from "../core/services/sha256.ts"
import { taskIdOf } from "../core/task-id.ts"
import { SimEngine } from "./engine.ts"
import { Faults, PRESENCE_INTERVAL_MILLIS, PRESENCE_RETRY_MILLIS } from "./faults.ts"
import { type HostContext, provideHost, schedulerChannel, sha256Service, type SimHost, type WorldMonitor } from "./host.ts"
import { equalShare, type Link, Network, type NetHost } from "./network.ts"
import { localMaxMin } from "./local-max-min.ts"
import { originService } from "./origin.ts"
import { runPeerMachine } from "./peer-driver.ts"
import { strategies } from "../core/strategies.ts"
import { type Blob, blobsOf, type Scenario, scenarioPieceLength, type Strategy } from "./scenario.ts"
import { MemoryStore } from "./store.ts"
import { strategySetup } from "./strategy.ts"

/** A host's running program (a fiber, or a peer driver): polled and stopped alike. */
interface Stoppable {
  pollUnsafe(): unknown
  interruptUnsafe(): void
}

export interface WorldOptions {
  readonly seed: number
  readonly strategy: Strategy
  readonly traceSink?: (line: string) => void
  /** Chaos checkers: see every store write and every scheduler step. */
  readonly monitor?: WorldMonitor
}

/** One blob of the run: what a host pulls, as a core task. */
export interface WorldBlob extends Blob {
  readonly index: number
  readonly taskId: TaskId
  readonly pieceLength: number
}

/** When a host finished each blob (ms) and whether it succeeded. */
export interface BlobOutcome {
  readonly at: number
  readonly ok: boolean
}

export class World implements HostContext {
  readonly engine: SimEngine
  readonly network: Network
  /** The scheduler process of the moment: a fault plan may crash it and start a new one. */
  scheduler: Scheduler
  readonly faults: Faults
  readonly monitor: WorldMonitor | undefined
  readonly schedulerNet: NetHost
  readonly originNet: NetHost
  /** Downloading peers, in scenario order. */
  readonly peers: Array<SimHost> = []
  readonly seeds: Array<SimHost> = []
  /** The blobs every peer pulls (one for a plain file, one per layer for an image). */
  readonly blobs: ReadonlyArray<WorldBlob>
  /** The first blob's task id and piece length (the only ones for a plain file). */
  readonly taskId: TaskId
  readonly pieceLength: number
  /** Per host id: each blob's outcome, by blob index, once it ended. */
  readonly blobOutcomes = new Map<string, Array<BlobOutcome | undefined>>()
  /** Per seed host id: the blobs the scheduler triggered it for. */
  readonly seedBlobs = new Map<string, Set<number>>()
  /** Origin bytes per blob (completed ranges; an interrupted range counts only in originNet.bytesSent). */
  readonly originBytesByBlob: Array<number>
  /** Rolling update: peers by batch, in start order. */
  readonly batches: Array<Array<SimHost>> = []
  private nextBatch = 0
  /** Peers that leave once their pull completes. */
  private readonly departing = new Set<string>()
  readonly peerOptions: PeerOptions
  private readonly byId = new Map<string, SimHost>()
  private readonly idcOf: Array<string> = []
  private readonly fibers: Array<Stoppable> = []
  /** Each host's fibers (download, presence), to stop when it crashes. */
  private readonly fibersOf = new Map<string, Array<Stoppable>>()
  private readonly stores = new Map<string, PieceStore["Service"]>()
  private readonly makeScheduler: (epoch: string) => Scheduler
  private epoch = 0
  /** Downloads started and not yet finished (peers and seeds). */
  running = 0
  /** Peers that have not finished yet (seeds excluded). */
  peersLeft = 0

  constructor(readonly scenario: Scenario, readonly options: WorldOptions) {
    const engine = (this.engine = new SimEngine(options.seed, { traceSink: options.traceSink }))
    const setup = strategySetup(options.strategy, { originIdc: scenario.origin.idc })
    this.makeScheduler = setup.makeScheduler
    this.scheduler = setup.makeScheduler("epoch-0")
    this.monitor = options.monitor
    const { intraIdcRttMs, interIdcRttMs } = scenario.latency
    this.network = new Network(
      engine,
      (a, b) => (a === b ? 0 : this.idcOf[a.index] === this.idcOf[b.index] ? intraIdcRttMs / 2 : interIdcRttMs / 2),
      scenario.network.sharing === "max-min" ? localMaxMin() : equalShare
    )
    this.blobs = blobsOf(scenario.file).map((b, index) => {
      const pieceLength = scenarioPieceLength(scenario, options.strategy, b.sizeBytes)
      const taskId = Effect.runSync(Effect.provideService(taskIdOf({ url: b.url, pieceLength }), Sha256, sha256Service))
      return { ...b, index, taskId, pieceLength }
    })
    this.originBytesByBlob = this.blobs.map(() => 0)
    this.pieceLength = this.blobs[0].pieceLength
    this.taskId = this.blobs[0].taskId
    this.peerOptions = { ...defaultPeerOptions, ...setup.peerOptions, ...scenario.peerOptions }

    // Control hosts: links far wider than any flow, so only their latency counts.
    this.schedulerNet = this.addNet("scheduler", scenario.scheduler?.idc ?? scenario.origin.idc, 1e15, 1e15)
    this.originNet = this.addNet("origin", scenario.origin.idc, scenario.origin.uploadBytesPerSecond, 1e15)

    const arrivals = engine.subRandom("arrivals")
    const arrival = scenario.arrival
    const spreadMillis = arrival.kind === "uniform" ? arrival.spreadSeconds * 1000 : 0
    let poissonAt = 0
    scenario.idcs.forEach((idc, d) => {
      for (let i = 0; i < idc.peers; i++) {
        const h = this.addHost(idc, d, i, "normal")
        if (arrival.kind === "poisson") {
          // Exponential gaps, in scenario order.
          poissonAt += (-Math.log(1 - arrivals.nextDoubleUnsafe()) / arrival.ratePerSecond!) * 1000
          h.arrival = poissonAt
        } else h.arrival = spreadMillis > 0 ? arrivals.nextDoubleUnsafe() * spreadMillis : 0
        this.peers.push(h)
      }
      if (setup.seeds) for (let i = 0; i < idc.seeds; i++) this.seeds.push(this.addHost(idc, d, i, "seed"))
    })
    if (arrival.kind === "rolling") {
      const size = Math.max(1, Math.ceil(arrival.batchFraction! * this.peers.length))
      for (let i = 0; i < this.peers.length; i += size) this.batches.push(this.peers.slice(i, i + size))
    }
    if (scenario.departure !== undefined) {
      const leaving = engine.subRandom("departures")
      for (const p of this.peers) if (leaving.nextDoubleUnsafe() < scenario.departure.fraction) this.departing.add(p.host.id)
    }
    this.peersLeft = this.peers.length
    this.buildTopology()
    this.faults = new Faults(scenario.faults ?? [], this)
  }

  // ------------------------------------------------------------ what faults do (sim/faults.ts)

  get nets(): ReadonlyArray<NetHost> {
    return this.network.hosts
  }

  idcOfNet(net: NetHost): string {
    return this.idcOf[net.index]
  }

  crashScheduler(): void {
    this.faults.schedulerDown = true
  }

  /** A new scheduler process: new epoch, empty state. Hosts learn of it through presence. */
  restartScheduler(): void {
    this.scheduler = this.makeScheduler(`epoch-${++this.epoch}`)
    this.faults.schedulerDown = false
    this.monitor?.schedulerActivity(this.scheduler, { _tag: "restart" })
  }

  stopHost(hostId: string, graceful: boolean): void {
    const h = this.byId.get(hostId)
    if (h === undefined || this.faults.down.has(hostId)) return
    if (graceful) {
      const channel = schedulerChannel(this, h)
      for (const taskId of h.store.tasks.keys()) {
        this.engine.fork(channel.report(new LeavePeer({ peerId: peerIdOf(hostId, taskId), taskId })))
      }
    }
    this.faults.down.add(hostId)
    ;(graceful ? this.faults.left : this.faults.crashed).add(hostId)
    for (const f of this.fibersOf.get(hostId) ?? []) f.interruptUnsafe()
    if (!graceful) h.store.tasks.clear()
    // A peer stopped before it arrived never starts.
    if (h.startedAt === undefined && h.host.type === "normal") this.peersLeft--
  }

  storeOf(h: SimHost): PieceStore["Service"] {
    let s = this.stores.get(h.host.id)
    if (s === undefined) {
      s = this.faults.store(h.host.id, h.store.service)
      if (this.monitor !== undefined) s = this.monitor.store(h, s)
      this.stores.set(h.host.id, s)
    }
    return s
  }

  private track(h: SimHost, fiber: Stoppable): void {
    this.fibers.push(fiber)
    let list = this.fibersOf.get(h.host.id)
    if (list === undefined) this.fibersOf.set(h.host.id, (list = []))
    list.push(fiber)
  }

  /** With a fault plan, every host announces itself periodically (core presence) and re-registers
   *  what it holds when the scheduler's epoch changes. */
  private keepPresence(h: SimHost): void {
    const origin = originService(this.network, this.originNet, h.net, { url: this.scenario.file.url, contentLength: 0 }, this.faults)
    this.track(h, this.engine.fork(provideHost(keepPresence(h.host, PRESENCE_INTERVAL_MILLIS, PRESENCE_RETRY_MILLIS), this, h, origin)))
  }

  hostById(id: string): SimHost | undefined {
    return this.byId.get(id)
  }

  readonly seedTrigger: SeedPeerTrigger["Service"] = {
    trigger: (seed: Host, request: SeedRequest) =>
      Effect.sync(() => {
        const h = this.byId.get(seed.id)
        const blob = this.blobs.find((b) => b.taskId === request.taskId)
        if (h === undefined || blob === undefined || this.faults.down.has(h.host.id)) return
        let started = this.seedBlobs.get(h.host.id)
        if (started === undefined) this.seedBlobs.set(h.host.id, (started = new Set()))
        if (started.has(blob.index)) return
        started.add(blob.index)
        this.engine.record(this.blobs.length === 1 ? `seed-trigger ${seed.id}` : `seed-trigger ${seed.id} ${blob.name}`)
        if (h.startedAt === undefined) h.arrival = this.engine.now
        // Out of the scheduler's call: the seed runs on its own fiber from the next event on.
        this.engine.after(0, () => this.launch(h, [blob]))
      })
  }

  /** Schedules seed announcements and peer arrivals. Call once, then `engine.run`. */
  start(): void {
    const presence = this.scenario.faults !== undefined
    for (const s of this.seeds) {
      this.engine.at(0, () => {
        if (presence) this.keepPresence(s)
        else this.engine.fork(Effect.ignore(schedulerChannel(this, s).request(new AnnounceHost({ host: s.host }))))
      })
    }
    const leaveAt = this.scenario.departure?.atSeconds
    if (leaveAt !== undefined) {
      this.engine.at(leaveAt * 1000, () => {
        for (const p of this.peers) {
          if (!this.departing.has(p.host.id)) continue
          this.engine.record(`leave ${p.host.id}`)
          this.stopHost(p.host.id, true)
          // Its pull (if any) ended; a batch waiting for it goes on.
        }
        this.maybeNextBatch()
      })
    }
    if (this.batches.length > 0) this.engine.at(0, () => this.startBatch())
    else for (const p of this.peers) this.engine.at(p.arrival, () => this.arrive(p))
    this.faults.schedule()
  }

  private arrive(p: SimHost): void {
    if (this.faults.down.has(p.host.id)) return
    if (this.scenario.faults !== undefined) this.keepPresence(p)
    this.launch(p, this.blobs)
  }

  /** Rolling update: starts the next batch now; it is followed when done or after the interval. */
  private startBatch(): void {
    const k = this.nextBatch
    if (k >= this.batches.length) return
    this.nextBatch++
    this.engine.record(`batch ${k} start`)
    for (const p of this.batches[k]) {
      p.arrival = this.engine.now
      this.arrive(p)
    }
    const interval = this.scenario.arrival.intervalSeconds
    if (interval !== undefined) this.engine.after(interval * 1000, () => this.nextBatch === k + 1 && this.startBatch())
    this.maybeNextBatch()
  }

  /** The current batch is over when each of its peers finished its pull or is down. */
  private maybeNextBatch(): void {
    const k = this.nextBatch - 1
    if (k < 0 || this.nextBatch >= this.batches.length) return
    if (this.batches[k].every((p) => p.finishedAt !== undefined || this.faults.down.has(p.host.id))) {
      // From the next event: a batch's completion is observed, not reacted to inside a peer's fiber.
      this.engine.after(0, () => this.nextBatch === k + 1 && this.startBatch())
    }
  }

  /** Runs until every started download ended, nothing is left to do, or the time limit. */
  run(): void {
    this.start()
    this.engine.run({
      untilMillis: this.scenario.limits.maxVirtualSeconds * 1000,
      stopWhen: () => this.peersLeft === 0 && this.running === 0
    })
    // Whatever still waits (long-polls of finished children, a stuck peer at the time limit) ends here.
    for (const f of this.fibers) if (f.pollUnsafe() === undefined) f.interruptUnsafe()
    this.engine.drain()
  }

  /**
   * Starts one download per blob on the host, each a core PeerMachine. The host's pull is
   * done (finishedAt, outcome, "done" in the trace) when its last blob ends; it failed if any did.
   */
  private launch(h: SimHost, blobs: ReadonlyArray<WorldBlob>): void {
    const layered = this.blobs.length > 1
    const first = h.startedAt === undefined
    if (first) h.startedAt = this.engine.now
    if (first || layered) this.engine.record(layered && h.host.type === "seed" ? `start ${h.host.id} ${blobs.map((b) => b.name).join(",")}` : `start ${h.host.id}`)
    let outcomes = this.blobOutcomes.get(h.host.id)
    if (outcomes === undefined) this.blobOutcomes.set(h.host.id, (outcomes = this.blobs.map(() => undefined)))
    const ended = outcomes
    for (const blob of blobs) {
      this.running++
      // The core PeerMachine, driven by the event loop (no fiber per peer).
      const request = { url: blob.url, taskId: blob.taskId, pieceLength: blob.pieceLength, peerId: peerIdOf(h.host.id, blob.taskId), host: h.host, headers: {} }
      const origin = this.countOrigin(blob.index, originService(this.network, this.originNet, h.net, { url: blob.url, contentLength: blob.sizeBytes }, this.faults))
      const fiber = runPeerMachine(this, h, request, this.peerOptions, origin)
      this.track(h, fiber)
      fiber.addObserver((exit) => {
        this.running--
        const ok = Exit.isSuccess(exit)
        ended[blob.index] = { at: this.engine.now, ok }
        if (!ok && h.failure === undefined) h.failure = `${layered ? `${blob.name}: ` : ""}${String(Exit.isFailure(exit) ? exit.cause : exit)}`
        if (layered) this.engine.record(`layer ${h.host.id} ${blob.name} ${ok ? "ok" : "failed"}`)
        // A seed is done with what it was triggered for; a peer when every layer has ended.
        const mine = h.host.type === "seed" ? [...(this.seedBlobs.get(h.host.id) ?? [])].map((i) => ended[i]) : ended
        if (mine.some((o) => o === undefined)) return
        h.finishedAt = this.engine.now
        h.outcome = mine.every((o) => o!.ok) ? "ok" : "failed"
        if (h.outcome === "ok") h.failure = undefined
        if (h.host.type === "normal") this.peersLeft--
        this.engine.record(`done ${h.host.id} ${h.outcome}`)
        if (h.host.type !== "normal") return
        this.maybeNextBatch()
        const departure = this.scenario.departure
        if (departure?.afterCompletionSeconds !== undefined && h.outcome === "ok" && this.departing.has(h.host.id)) {
          this.engine.after(departure.afterCompletionSeconds * 1000, () => {
            this.engine.record(`leave ${h.host.id}`)
            this.stopHost(h.host.id, true)
          })
        }
      })
    }
  }

  /** Counts the origin bytes each blob costs (ranges served in full). */
  private countOrigin(index: number, origin: ReturnType<typeof originService>): ReturnType<typeof originService> {
    return {
      ...origin,
      fetchRange: (request, offset, length) => Effect.tap(origin.fetchRange(request, offset, length), () => Effect.sync(() => {
        this.originBytesByBlob[index] += length
      }))
    }
  }

  /**
   * Rack links (for IDCs with an oversubscription ratio) and WAN links (for IDCs with a WAN rate), and
   * the route every flow takes through them: out of the source's rack, out of its IDC, into the
   * destination's IDC, into its rack. The origin and the scheduler sit outside any rack.
   */
  private buildTopology(): void {
    const racks = new Map<string, { up: Link; down: Link }>()
    const rackOf = new Map<NetHost, { up: Link; down: Link }>()
    const wan = new Map<string, { out: Link; in: Link }>()
    for (const idc of this.scenario.idcs) {
      if (idc.wanBytesPerSecond !== undefined) {
        wan.set(idc.name, {
          out: this.network.addLink(`wan-out:${idc.name}`, idc.wanBytesPerSecond),
          in: this.network.addLink(`wan-in:${idc.name}`, idc.wanBytesPerSecond)
        })
      }
      const ratio = idc.rackOversubscription
      if (ratio === undefined) continue
      for (const h of [...this.peers, ...this.seeds]) {
        if (h.host.idc !== idc.name) continue
        const key = h.host.location
        let r = racks.get(key)
        if (r === undefined) {
          r = { up: this.network.addLink(`rack-up:${key}`, 0), down: this.network.addLink(`rack-down:${key}`, 0) }
          racks.set(key, r)
        }
        r.up.capacity += h.net.up / ratio
        r.down.capacity += h.net.down / ratio
        rackOf.set(h.net, r)
      }
    }
    if (racks.size === 0 && wan.size === 0) return
    this.network.route = (src, dst) => {
      const rs = rackOf.get(src)
      const rd = rackOf.get(dst)
      const links: Array<Link> = []
      if (rs !== undefined && rs !== rd) links.push(rs.up)
      const a = this.idcOf[src.index]
      const b = this.idcOf[dst.index]
      if (a !== b) {
        const out = wan.get(a)?.out
        const into = wan.get(b)?.in
        if (out !== undefined) links.push(out)
        if (into !== undefined) links.push(into)
      }
      if (rd !== undefined && rd !== rs) links.push(rd.down)
      return links
    }
  }

  private addNet(name: string, idc: string, up: number, down: number): NetHost {
    const n = this.network.addHost(name, up, down)
    this.idcOf[n.index] = idc
    return n
  }

  private addHost(idc: Scenario["idcs"][number], d: number, i: number, type: "normal" | "seed"): SimHost {
    const cls = type === "seed" ? this.scenario.seed : peerClassOf(this.scenario, idc, i)
    const id = `${type === "seed" ? "seed" : "peer"}-${idc.name}-${String(i).padStart(4, "0")}`
    const rack = i % idc.racks
    const host = new Host({
      id,
      ip: `10.${d}.${type === "seed" ? 255 : rack}.${(i % 250) + 1}`,
      port: 65000,
      idc: idc.name,
      location: `${idc.location}|rack${rack}`,
      type,
      uploadBandwidth: Math.max(1, Math.round(cls.uploadBytesPerSecond)),
      downloadBandwidth: Math.max(1, Math.round(cls.downloadBytesPerSecond)),
      // A strategy's upload policy may serve fewer at once (BitTorrent's unchoke slots).
      uploadSlots: Math.min(cls.uploadSlots, strategies[this.options.strategy].uploadSlots ?? Infinity)
    })
    const net = this.addNet(id, idc.name, cls.uploadBytesPerSecond, cls.downloadBytesPerSecond)
    const h: SimHost = { host, net, store: new MemoryStore(id, (line) => this.engine.record(line), this.engine), slots: undefined, arrival: 0 }
    this.byId.set(id, h)
    return h
  }
}


/**
 * The NICs of the IDC's i-th peer: with `peerClasses`, class k covers the share of host positions
 * its weight gives it (in host order); otherwise the scenario's `peer` class.
 */
export const peerClassOf = (scenario: Scenario, idc: Scenario["idcs"][number], i: number): Scenario["peer"] => {
  const classes = idc.peerClasses
  if (classes === undefined) return scenario.peer
  const total = classes.reduce((n, c) => n + c.weight, 0)
  const at = ((i + 0.5) / idc.peers) * total
  let acc = 0
  for (const c of classes) {
    acc += c.weight
    if (at < acc) return c
  }
  return classes[classes.length - 1]
}
