// A simulated deployment: hosts from the scenario, the network between them, the origin, and ONE core
// Scheduler. Every host runs the core peer program (downloadTask) as an ordinary fiber with its own
// services; seed hosts start when the scheduler triggers them.
import { Effect, Exit, type Fiber } from "effect"
import { Host, peerIdOf, type TaskId } from "../core/domain.ts"
import { AnnounceHost, LeavePeer } from "../core/protocol.ts"
import { keepPresence } from "../core/peer/presence.ts"
import type { PieceStore } from "../core/services/piece-store.ts"
import { defaultPeerOptions, type PeerOptions } from "../core/peer/conductor.ts"
import { pieceLengthFor } from "../core/piece-layout.ts"
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
import type { Scenario, Strategy } from "./scenario.ts"
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
  readonly taskId: TaskId
  readonly pieceLength: number
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
    const setup = strategySetup(options.strategy)
    this.makeScheduler = setup.makeScheduler
    this.scheduler = setup.makeScheduler("epoch-0")
    this.monitor = options.monitor
    const { intraIdcRttMs, interIdcRttMs } = scenario.latency
    this.network = new Network(
      engine,
      (a, b) => (a === b ? 0 : this.idcOf[a.index] === this.idcOf[b.index] ? intraIdcRttMs / 2 : interIdcRttMs / 2),
      scenario.network.sharing === "max-min" ? localMaxMin() : equalShare
    )
    this.pieceLength = pieceLengthFor(scenario.file.sizeBytes, scenario.file.pieceLength)
    this.taskId = Effect.runSync(Effect.provideService(taskIdOf({ url: scenario.file.url, pieceLength: this.pieceLength }), Sha256, sha256Service))
    this.peerOptions = { ...defaultPeerOptions, ...setup.peerOptions, ...scenario.peerOptions }

    // Control hosts: links far wider than any flow, so only their latency counts.
    this.schedulerNet = this.addNet("scheduler", scenario.scheduler?.idc ?? scenario.origin.idc, 1e15, 1e15)
    this.originNet = this.addNet("origin", scenario.origin.idc, scenario.origin.uploadBytesPerSecond, 1e15)

    const arrivals = engine.subRandom("arrivals")
    const spreadMillis = scenario.arrival.spreadSeconds * 1000
    scenario.idcs.forEach((idc, d) => {
      for (let i = 0; i < idc.peers; i++) {
        const h = this.addHost(idc, d, i, "normal")
        h.arrival = spreadMillis > 0 ? arrivals.nextDoubleUnsafe() * spreadMillis : 0
        this.peers.push(h)
      }
      if (setup.seeds) for (let i = 0; i < idc.seeds; i++) this.seeds.push(this.addHost(idc, d, i, "seed"))
    })
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
        if (h === undefined || h.startedAt !== undefined || this.faults.down.has(h.host.id)) return
        this.engine.record(`seed-trigger ${seed.id}`)
        h.arrival = this.engine.now
        // Out of the scheduler's call: the seed runs on its own fiber from the next event on.
        this.engine.after(0, () => this.launch(h, request.url))
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
    for (const p of this.peers) {
      this.engine.at(p.arrival, () => {
        if (this.faults.down.has(p.host.id)) return
        if (presence) this.keepPresence(p)
        this.launch(p, this.scenario.file.url)
      })
    }
    this.faults.schedule()
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

  private launch(h: SimHost, url: string): void {
    h.startedAt = this.engine.now
    this.running++
    this.engine.record(`start ${h.host.id}`)
    // The core PeerMachine, driven by the event loop (no fiber per peer).
    const request = { url, taskId: this.taskId, pieceLength: this.pieceLength, peerId: peerIdOf(h.host.id, this.taskId), host: h.host, headers: {} }
    const origin = originService(this.network, this.originNet, h.net, { url: this.scenario.file.url, contentLength: this.scenario.file.sizeBytes }, this.faults)
    const fiber = runPeerMachine(this, h, request, this.peerOptions, origin)
    this.track(h, fiber)
    fiber.addObserver((exit) => {
      h.finishedAt = this.engine.now
      this.running--
      if (h.host.type === "normal") this.peersLeft--
      if (Exit.isSuccess(exit)) {
        h.outcome = "ok"
      } else {
        h.outcome = "failed"
        h.failure = String(Exit.isFailure(exit) ? exit.cause : exit)
      }
      this.engine.record(`done ${h.host.id} ${h.outcome}`)
    })
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
    const cls = type === "seed" ? this.scenario.seed : this.scenario.peer
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
      uploadSlots: cls.uploadSlots
    })
    const net = this.addNet(id, idc.name, cls.uploadBytesPerSecond, cls.downloadBytesPerSecond)
    const h: SimHost = { host, net, store: new MemoryStore(id, (line) => this.engine.record(line)), arrival: 0 }
    this.byId.set(id, h)
    return h
  }
}

