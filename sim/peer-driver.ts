// The simulator's peer driver: runs a core PeerMachine straight from the event loop, with no fiber per
// peer. Every command becomes agenda events and callbacks. Without a fault plan, piece transfers,
// long-polls, reports and store writes are plain callbacks on the network, the upload slots and the
// parent's ledger (the same steps as host.ts's services, minus the Effect runtime per step). With a
// fault plan, transfers and long-polls go through host.ts's Effect services (forked on the engine), so
// every fault hook (guards, loss, corruption, lies) applies exactly as it does to any other program.
// Scheduler requests and origin calls always go through the services: they are few per peer.
import { Cause, Effect, Exit, type Fiber } from "effect"
import { DownloadError, type TransferFailed } from "../core/errors.ts"
import { pieceAt, pieceLengthAt } from "../core/piece-layout.ts"
import { type AvailabilityAnswer, type DownloadRequest, type DownloadResult, ORIGIN, type PeerCommand, PeerMachine, type PeerOptions, type Source } from "../core/peer/machine.ts"
import { DownloadFailed, DownloadFinished, type PeerReport } from "../core/protocol.ts"
import type { Origin } from "../core/services/piece-transfer.ts"
import type { LedgerDeltaView, LedgerWaiter, PieceLedger } from "../core/piece-ledger.ts"
import { type HostContext, pieceTransfer, schedulerChannel, sha256Service, type SimHost } from "./host.ts"
import { type EventId, NO_EVENT } from "./event-queue.ts"
import type { Flow } from "./network.ts"
import type { StoredContent } from "./store.ts"
import { type SlotWaiter, type UploadSlots, uploadSlotsOf } from "./upload-slots.ts"

type Cancel = () => void
type Observer = (exit: Exit.Exit<DownloadResult, DownloadError>) => void

/** One download on one simulated host. Looks like a fiber to the world (poll, interrupt, observe). */
export class PeerDriver {
  readonly machine: PeerMachine
  private exit: Exit.Exit<DownloadResult, DownloadError> | undefined
  private readonly observers: Array<Observer> = []
  /** Everything in flight for this peer (events, flows, slot requests, forked fibers), to stop it. */
  private readonly pending = new Set<Cancel>()
  /** Long-polls in flight under a fault plan (service path). */
  private readonly watches = new Map<Source, { cancel(): void }>()
  /** Each parent's long-poll (fault-free path): in flight, or answered and reused for the next one. */
  private readonly polls = new Map<Source, LongPoll>()
  private readonly timers = new Map<number, Cancel>()
  private pumping = false
  /** Piece fetches in flight, in no order (`FetchJob.slot` is each one's place): no hash set per peer. */
  readonly jobs: Array<FetchJob> = []
  /** Numbers the fetches as they join `jobs`, so they are stopped in that order (as a Set would iterate). */
  private jobSeq = 0
  /** Our own task in our store (fault-free path), looked up once. */
  private content: StoredContent | undefined = undefined
  /** Our own ledger's version times (`timesOf`), looked up once. */
  private myTimes: VersionTimes | undefined = undefined
  /** A report's one-way latency to the scheduler (fixed: the hosts' IDCs). */
  private reportLatency = -1
  readonly fast: boolean
  /** PeerOptions.pickPerSource: a fetch that waited for a parent's slot picks its piece again (FetchJob.rebind). */
  readonly rebinds: boolean
  private readonly channel
  /** The transfer service (fault plans and origin-free service paths only): made when first used, as a
   *  fault-free peer never needs its closures (a large run holds one driver per peer). */
  private transferService: ReturnType<typeof pieceTransfer> | undefined = undefined
  private get transfer(): ReturnType<typeof pieceTransfer> {
    return this.transferService ??= pieceTransfer(this.world, this.me)
  }

  constructor(
    readonly world: HostContext,
    readonly me: SimHost,
    readonly request: DownloadRequest,
    options: PeerOptions,
    private readonly origin: Origin["Service"]
  ) {
    const engine = world.engine
    this.machine = new PeerMachine(request, options, {
      now: () => engine.now,
      random: engine.random.nextDoubleUnsafe(),
      hex: sha256Service.hex
    })
    this.fast = !world.faults.active
    this.rebinds = options.pickPerSource === true
    this.channel = schedulerChannel(world, me)
  }

  start(): this {
    this.machine.start()
    this.pump()
    return this
  }

  // ------------------------------------------------------------ the fiber-like face the world uses

  pollUnsafe(): Exit.Exit<DownloadResult, DownloadError> | undefined {
    return this.exit
  }

  addObserver(observer: Observer): void {
    if (this.exit !== undefined) observer(this.exit)
    else this.observers.push(observer)
  }

  get ended(): boolean {
    return this.exit !== undefined
  }

  fetchedInput(job: FetchJob, bytes: Uint8Array): void {
    if (this.exit !== undefined) return
    this.machine.fetched(job.s, job.index, bytes, this.world.engine.now - job.started)
    this.pump()
  }

  /** A fetch took another piece when its slot was granted (FetchJob.rebind): perform what that changed. */
  reboundInput(): void {
    if (this.exit === undefined) this.pump()
  }

  fetchFailedInput(job: FetchJob, message: string, temporary: boolean): void {
    if (this.exit !== undefined) return
    this.machine.fetchFailed(job.s, job.index, message, temporary)
    this.pump()
  }

  /** The host stopped (or the run ended): drop everything in flight. */
  interruptUnsafe(): void {
    if (this.exit !== undefined) return
    this.end(Exit.failCause(Cause.interrupt()))
  }

  private end(exit: Exit.Exit<DownloadResult, DownloadError>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const jobs = this.jobs.splice(0, this.jobs.length).sort((a, b) => a.seq - b.seq)
    for (const job of jobs) job.slot = -1
    for (const job of jobs) job.cancel()
    for (const cancel of [...this.pending]) cancel()
    this.pending.clear()
    for (const w of this.watches.values()) w.cancel()
    this.watches.clear()
    for (const [s, p] of this.polls) {
      p.cancel()
      if (s.link !== undefined) (s.link as SourceLink).poll = undefined
    }
    this.polls.clear()
    for (const cancel of this.timers.values()) cancel()
    this.timers.clear()
    for (const o of this.observers) o(exit)
  }

  // ------------------------------------------------------------ commands

  /** Performs the machine's commands until it has none; re-entrant calls leave it to the outer one. */
  private pump(): void {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.exit === undefined) {
        const c = this.machine.nextCommand()
        if (c === undefined) break
        this.perform(c)
      }
    } finally {
      this.pumping = false
    }
  }

  /** Calls a machine input from an event, then performs what it asks for. */
  private input(f: () => void): void {
    if (this.exit !== undefined) return
    f()
    this.pump()
  }

  private perform(c: PeerCommand): void {
    const { world, me, request, machine } = this
    switch (c._tag) {
      case "Open": {
        const exit = Effect.runSyncExit(world.storeOf(me).open({ taskId: request.taskId, url: request.url, contentLength: c.contentLength, pieceLength: c.pieceLength }))
        if (Exit.isSuccess(exit)) machine.opened(exit.value)
        else machine.openFailed(messageOf(exit.cause))
        return
      }
      case "Request":
        this.run(this.channel.request(c.message), (exit) =>
          Exit.isSuccess(exit) ? machine.answered(c.purpose, exit.value) : machine.requestFailed(c.purpose, messageOf(exit.cause)))
        return
      case "Probe":
        this.run(this.origin.probe({ url: request.url, headers: request.headers }), (exit) =>
          Exit.isSuccess(exit) ? machine.probed(exit.value.contentLength) : machine.probeFailed(messageOf(exit.cause)))
        return
      case "Watch":
        return this.watch(c.source, c.since)
      case "Unwatch": {
        const w = this.watches.get(c.source)
        const p = this.polls.get(c.source)
        this.watches.delete(c.source)
        this.polls.delete(c.source)
        if (c.source.link !== undefined) (c.source.link as SourceLink).poll = undefined
        w?.cancel()
        p?.cancel()
        return
      }
      case "Fetch":
        return this.fetch(c.source, c.index, c.delayMillis, c.timeoutMillis)
      case "Write": {
        const ledger = machine.ledger!
        const before = ledger.version
        // Our own content, looked up once (fault-free: a crash, which empties the store, is a fault).
        const content = this.fast && world.monitor === undefined ? (this.content ??= me.store.tasks.get(request.taskId)) : undefined
        const failure = content !== undefined
          ? me.store.writeInto(content, c.index, c.bytes, c.digest)
          : failureOf(Effect.runSyncExit(world.storeOf(me).write(request.taskId, c.index, c.bytes, c.digest)))
        if (ledger.version > before) {
          const times = this.myTimes ??= timesOf(ledger)
          while (times.count < ledger.version) times.at[times.count++] = world.engine.now
        }
        if (failure === undefined) machine.stored(c)
        else machine.storeFailed(failure.message)
        return
      }
      case "Report":
        return this.report(c.report)
      case "Timer": {
        const token = c.token
        const ev = world.engine.at(c.at, () => {
          this.timers.delete(token)
          this.input(() => machine.timerFired(token))
        })
        this.timers.set(token, () => world.engine.queue.cancel(ev))
        return
      }
      case "Finish": {
        const exit = Effect.runSyncExit(world.storeOf(me).commit(request.taskId))
        if (Exit.isFailure(exit)) return this.end(Exit.fail(new DownloadError({ message: `piece store: ${messageOf(exit.cause)}` })))
        this.report(new DownloadFinished({ peerId: request.peerId, taskId: request.taskId, contentLength: machine.ledger!.contentLength }))
        return this.end(Exit.succeed(machine.result()))
      }
      case "Fail":
        if (c.report) this.report(new DownloadFailed({ peerId: request.peerId, taskId: request.taskId, reason: c.message }))
        return this.end(Exit.fail(new DownloadError({ message: c.message })))
    }
  }

  /** Runs a service Effect on the engine; `done` gets its exit as a machine input. */
  run<A, E>(effect: Effect.Effect<A, E>, done: (exit: Exit.Exit<A, E>) => void): Cancel {
    let fiber: Fiber.Fiber<A, E> | undefined = undefined
    let settled = false
    const cancel = () => {
      if (!settled) fiber?.interruptUnsafe()
    }
    this.pending.add(cancel)
    fiber = this.world.engine.fork(effect)
    fiber.addObserver((exit) => {
      settled = true
      this.pending.delete(cancel)
      if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return
      this.input(() => done(exit))
    })
    return cancel
  }

  // ------------------------------------------------------------ reports: one-way, latency only

  private report(m: PeerReport): void {
    const { world, me } = this
    // Not tied to the peer: like a detached fiber, the last reports still arrive after it ends.
    if (this.reportLatency < 0) this.reportLatency = world.network.latency(me.net, world.schedulerNet)
    world.engine.afterFixed(this.reportLatency, reportArrives, { d: this, m })
  }

  /** A report reaches the scheduler. */
  reportArrived(m: PeerReport): void {
    const { world, me } = this
    const { engine, faults } = world
    // A report into a dead or partitioned scheduler is lost.
    if (faults.schedulerProblem(me.net) !== undefined) return engine.record(`lost ${me.host.id}>scheduler ${"index" in m ? `${m._tag} ${m.index}` : m._tag}`)
    // `msg ${host}>scheduler ${tag}[ ${index}]`, written straight into the trace (a line per piece).
    const line = engine.trace.begin(engine.now, me.host.id.length + m._tag.length + 48).text("msg ").text(me.host.id).text(">scheduler ").text(m._tag)
    if ("index" in m) line.text(" ").int(m.index)
    line.end()
    const scheduler = world.scheduler
    scheduler.reportNow(m)
    world.monitor?.schedulerActivity(scheduler, m)
  }

  // ------------------------------------------------------------ long-polls

  private watch(s: Source, since: number): void {
    const { machine } = this
    if (!this.fast) {
      const w = { cancel: () => {} }
      w.cancel = this.run(this.transfer.availability(s.parent!, this.request.taskId, since), (exit) => {
        if (this.watches.get(s) === w) this.watches.delete(s)
        if (Exit.isSuccess(exit)) machine.availability(s, exit.value)
        else {
          const e = failureOf(exit) as TransferFailed | undefined
          machine.availabilityFailed(s, e?.message ?? messageOf(exit.cause), e?.temporary ?? false)
        }
      })
      this.watches.set(s, w)
      return
    }
    // The request travels to the parent, waits there for a change, and the answer travels back.
    const { world, request } = this
    const link = this.linkOf(s)
    if (link === undefined) {
      this.machine.availabilityFailed(s, `no host ${s.parent!.host.id}`, false)
      return
    }
    // The same parent asked again (after each answer): its last poll, with what it looked up.
    const last = link.poll
    if (last !== undefined && last.reusable) {
      last.rearm(since)
      last.ledger!.addWaiter(last)
      return
    }
    const p = link.parent
    const engine = world.engine
    const there = link.there
    const ledger = p.store.ledger(request.taskId)
    const poll = new LongPoll(this, s, since, p, engine.now + there, there, link.back)
    this.polls.set(s, poll)
    link.poll = poll
    if (ledger === undefined) {
      // Not open yet: whether it is by the time the request arrives decides (a temporary failure if not).
      poll.ev = engine.afterCall(there, pollArrived, poll)
    } else {
      // Open already (ledgers only grow): no event for the request's trip. The parent answers when the
      // request has arrived and its version exceeds `since`, with what it held at that instant.
      poll.setLedger(ledger)
      ledger.addWaiter(poll)
    }
  }

  /** The fault-free path's record of a parent source (`Source.link`), made when first needed; undefined if no such host. */
  linkOf(s: Source): SourceLink | undefined {
    if (s.link !== undefined) return s.link as SourceLink
    const p = this.world.hostById(s.parent!.host.id)
    if (p === undefined) return undefined
    const network = this.world.network
    const link = new SourceLink(p, network.latency(this.me.net, p.net), network.latency(p.net, this.me.net))
    s.link = link
    return link
  }

  /** A long-poll's answer is back. */
  pollAnswered(poll: LongPoll, a: AvailabilityAnswer): void {
    if (this.exit !== undefined) return
    this.machine.availability(poll.s, a)
    this.pump()
  }

  pollFailed(poll: LongPoll, e: TransferFailed): void {
    if (this.exit !== undefined) return
    this.machine.availabilityFailed(poll.s, e.message, e.temporary)
    this.pump()
  }

  // ------------------------------------------------------------ fetches

  private fetch(s: Source, index: number, delayMillis: number, timeoutMillis: number): void {
    const job = new FetchJob(this, s, index, this.world.engine.now, timeoutMillis)
    if (delayMillis > 0) {
      // Waiting out an origin backoff: dropped with the peer.
      this.addJob(job)
      job.ev = this.world.engine.afterCall(delayMillis, jobBegin, job)
    } else job.begin()
  }

  addJob(job: FetchJob): void {
    if (job.slot >= 0) return
    job.slot = this.jobs.length
    job.seq = this.jobSeq++
    this.jobs.push(job)
  }

  removeJob(job: FetchJob): void {
    const i = job.slot
    if (i < 0) return
    const last = this.jobs.pop()!
    if (last !== job) {
      this.jobs[i] = last
      last.slot = i
    }
    job.slot = -1
  }

  /** The service path (origin ranges; parents' pieces under a fault plan). */
  fetchByService(job: FetchJob): Cancel {
    const { s, index } = job
    const request = this.request
    if (s.id === ORIGIN) {
      const ledger = this.machine.ledger!
      const piece = pieceAt(ledger.contentLength, ledger.pieceLength, index)
      return this.run(this.origin.fetchRange({ url: request.url, headers: request.headers }, piece.offset, piece.length), (exit) => {
        if (Exit.isSuccess(exit)) job.ok(exit.value)
        else job.failed(`origin: ${messageOf(exit.cause)}`, true)
      })
    }
    return this.run(this.transfer.fetchPiece(s.parent!, request.taskId, index), (exit) => {
      if (Exit.isSuccess(exit)) return job.ok(exit.value)
      const e = failureOf(exit) as TransferFailed | undefined
      job.failed(e?.message ?? messageOf(exit.cause), e?.temporary ?? true)
    })
  }

  // ------------------------------------------------------------ fetch deadlines

  /** Fetches with a deadline, in issue order (all fetches share one timeout, so they are due in this order). */
  private readonly deadlines: Array<FetchJob> = []
  private deadlineHead = 0
  private deadlineEvent: EventId = NO_EVENT

  /** Calls `job.timedOut()` at `job.dueAt` unless its `deadlineLive` is cleared first; one agenda event per peer at a time, not one per fetch. */
  watchDeadline(job: FetchJob): void {
    const list = this.deadlines
    // Fetches mostly settle in issue order: drop settled ones from the front, so the list stays short
    // (and holds no finished fetch alive).
    while (this.deadlineHead < list.length && !list[this.deadlineHead].deadlineLive) this.deadlineHead++
    if (this.deadlineHead === list.length) list.length = this.deadlineHead = 0
    else if (this.deadlineHead >= 16 && this.deadlineHead * 2 > list.length) {
      list.splice(0, this.deadlineHead)
      this.deadlineHead = 0
    }
    // Out of order (cannot happen with one timeout for all): an event of its own.
    if (this.deadlineHead < list.length && list[list.length - 1].dueAt > job.dueAt) {
      job.deadlineEvent = this.world.engine.atCall(job.dueAt, fireDeadline, job)
      return
    }
    list.push(job)
    if (this.deadlineEvent === NO_EVENT) this.armDeadlines()
  }

  private armDeadlines(): void {
    const list = this.deadlines
    while (this.deadlineHead < list.length && !list[this.deadlineHead].deadlineLive) this.deadlineHead++
    if (this.deadlineHead > 1024 && this.deadlineHead * 2 > list.length) {
      list.splice(0, this.deadlineHead)
      this.deadlineHead = 0
    }
    if (this.deadlineHead >= list.length) {
      list.length = this.deadlineHead = 0
      this.deadlineEvent = NO_EVENT
      return
    }
    this.deadlineEvent = this.world.engine.atCall(list[this.deadlineHead].dueAt, fireDeadlines, this)
  }

  /** The earliest deadline is due: time out every fetch due by now, then wait for the next. */
  deadlinesDue(): void {
    this.deadlineEvent = NO_EVENT
    if (this.exit !== undefined) return
    const list = this.deadlines
    const now = this.world.engine.now
    while (this.deadlineHead < list.length && list[this.deadlineHead].dueAt <= now) {
      const job = list[this.deadlineHead++]
      if (job.deadlineLive) job.timedOut()
    }
    if (this.deadlineEvent === NO_EVENT) this.armDeadlines()
  }
}

const fireDeadlines = (d: PeerDriver): void => d.deadlinesDue()
const reportArrives = (r: { readonly d: PeerDriver; readonly m: PeerReport }): void => r.d.reportArrived(r.m)
const fireDeadline = (job: FetchJob): void => {
  job.deadlineEvent = NO_EVENT
  if (job.deadlineLive) job.timedOut()
}
const jobBegin = (job: FetchJob): void => {
  job.ev = NO_EVENT
  job.begin()
}
const jobArrived = (job: FetchJob): void => job.arrived()
const jobAnswered = (job: FetchJob): void => job.answered()
const jobFlowed = (job: FetchJob): void => job.flowed()

/**
 * One piece fetch. Fault-free, from a parent, it is host.ts's fetchPiece as events: the request's round
 * trip, the parent's checks, an upload slot, the flow; a deadline abandons it. Otherwise it runs the
 * service. An object with methods and shared callbacks rather than closures: there are millions of
 * these in a large run.
 */
class FetchJob implements SlotWaiter {
  settled = false
  cancelled = false
  /** Its place in the driver's `jobs` (-1: not there), and the order it joined them. */
  slot = -1
  seq = 0
  /** An upload slot is being waited for (SlotWaiter). */
  waiting = false
  /** The deadline still applies. */
  deadlineLive = false
  deadlineEvent: EventId = NO_EVENT
  readonly dueAt: number
  private parent: SimHost | undefined
  private bytes: Uint8Array | undefined
  private length = 0
  ev: EventId = NO_EVENT
  private slots: UploadSlots | undefined
  private flow: Flow | undefined
  private serviceCancel: Cancel | undefined

  constructor(
    readonly d: PeerDriver,
    readonly s: Source,
    /** The piece fetched (with `pickPerSource`, chosen again when the parent's slot is granted). */
    public index: number,
    readonly started: number,
    private readonly timeoutMillis: number
  ) {
    this.dueAt = started + timeoutMillis
  }

  begin(): void {
    const d = this.d
    if (d.ended) return
    d.addJob(this)
    if (this.s.id === ORIGIN) {
      this.serviceCancel = d.fetchByService(this)
      return
    }
    // A parent's piece that takes too long is abandoned (its flow cancelled) and counts as temporary.
    this.deadlineLive = true
    d.watchDeadline(this)
    if (!d.fast) {
      this.serviceCancel = d.fetchByService(this)
      return
    }
    const { world, request } = d
    const link = d.linkOf(this.s)
    if (link === undefined) return this.failed(`no host ${this.s.parent!.host.id}`, false)
    const p = link.parent
    this.parent = p
    // Fault-free, a store that opened the task keeps it (only a crash, a fault, empties one).
    const content = link.content ??= p.store.tasks.get(request.taskId)
    const held = content?.ledger
    const bytes = held?.has(this.index) === true ? content!.pieces.get(this.index) : undefined
    if (held !== undefined && bytes !== undefined) {
      // The parent holds it already (and keeps it): its checks pass on arrival, so the request's
      // round trip is one event.
      this.bytes = bytes
      this.length = pieceLengthAt(held.contentLength, held.pieceLength, this.index)
      // Many fetches share this round trip: a fixed-delay lane, not the agenda (so no event to cancel:
      // `answered` checks that the fetch still stands).
      world.engine.afterFixed(link.there + link.back, jobAnswered, this)
      return
    }
    this.ev = world.engine.afterCall(link.there, jobArrived, this)
  }

  /** At the parent (only when it did not hold the piece when asked): its checks, then the answer's trip. */
  arrived(): void {
    this.ev = NO_EVENT
    const { world, me, request } = this.d
    const p = this.parent!
    const ledger = p.store.ledger(request.taskId)
    if (ledger === undefined) return this.failed(`${this.s.parent!.peerId} has not opened task ${request.taskId}`, true)
    const bytes = p.store.tasks.get(request.taskId)?.pieces.get(this.index)
    if (!ledger.has(this.index) || bytes === undefined) return this.failed(`${this.s.parent!.peerId} does not hold piece ${this.index}`, true)
    this.bytes = bytes
    this.length = pieceLengthAt(ledger.contentLength, ledger.pieceLength, this.index)
    this.ev = world.engine.afterCall(world.network.latency(p.net, me.net), jobAnswered, this)
  }

  /** The answer is back: wait for one of the parent's upload slots, then the bytes flow. */
  answered(): void {
    if (this.cancelled) return
    this.ev = NO_EVENT
    const p = this.parent!
    this.slots = p.slots ??= uploadSlotsOf(p, p.host.uploadSlots)
    this.slots.enqueue(this)
  }

  granted(): void {
    const { world, me } = this.d
    if (this.d.rebinds) this.rebind()
    this.flow = world.network.startFlowCall(this.parent!.net, me.net, this.length, jobFlowed, this)
  }

  /** BitTorrent's picking (PeerOptions.pickPerSource): the piece is chosen again now that a slot is held. */
  private rebind(): void {
    const d = this.d
    const index = d.machine.rebind(this.s, this.index)
    if (index === this.index) return
    const p = this.parent!
    const ledger = p.store.ledger(d.request.taskId)!
    this.index = index
    this.bytes = p.store.tasks.get(d.request.taskId)!.pieces.get(index)
    this.length = pieceLengthAt(ledger.contentLength, ledger.pieceLength, index)
    d.reboundInput()
  }

  flowed(): void {
    const flow = this.flow!
    this.flow = undefined
    // Nothing else holds it (the network called this last): the next flow reuses it.
    this.d.world.network.release(flow)
    this.slots!.release()
    this.ok(this.bytes!)
  }

  timedOut(): void {
    this.deadlineLive = false
    this.cancel()
    this.failed(`timed out after ${this.timeoutMillis} ms`, true)
  }

  /** Stops whatever stage is under way (the peer ended, or the deadline passed). */
  cancel(): void {
    this.cancelled = true
    const engine = this.d.world.engine
    engine.queue.cancel(this.ev)
    this.ev = NO_EVENT
    this.waiting = false
    if (this.flow !== undefined) {
      const network = this.d.world.network
      network.cancel(this.flow)
      network.release(this.flow)
      this.flow = undefined
      this.slots!.release()
    }
    this.serviceCancel?.()
    this.serviceCancel = undefined
    this.dropDeadline()
  }

  private dropDeadline(): void {
    this.deadlineLive = false
    if (this.deadlineEvent !== NO_EVENT) this.d.world.engine.queue.cancel(this.deadlineEvent)
    this.deadlineEvent = NO_EVENT
  }

  ok(bytes: Uint8Array): void {
    if (this.settle()) this.d.fetchedInput(this, bytes)
  }

  failed(message: string, temporary: boolean): void {
    if (this.settle()) this.d.fetchFailedInput(this, message, temporary)
  }

  private settle(): boolean {
    if (this.settled) return false
    this.settled = true
    this.serviceCancel = undefined
    this.dropDeadline()
    this.d.removeJob(this)
    return true
  }
}

/**
 * What the fault-free path keeps per parent source (`Source.link`): the parent's host, the latencies
 * between us (fixed by the hosts' IDCs), its content once it has opened the task, and our long-poll of
 * it (also in `PeerDriver.polls`). Looked up once per source instead of per fetch and per poll.
 */
class SourceLink {
  poll: LongPoll | undefined = undefined
  content: StoredContent | undefined = undefined
  constructor(readonly parent: SimHost, readonly there: number, readonly back: number) {}
}

/**
 * One long-poll of a parent's ledger (fault-free path): the request's trip (an event only when the
 * parent had not opened the task when asked), the wait at the parent (a ledger waiter), the answer's
 * trip (a shared delivery event). One object, no closures.
 */
class LongPoll implements LedgerWaiter {
  live = true
  /** Answered (so in no ledger's waiters and no pending delivery): may be rearmed for the next poll. */
  reusable = false
  ev: EventId = NO_EVENT
  ledger: PieceLedger | undefined = undefined
  /** The ledger's version times (`versionTimes`), looked up once. */
  private times: VersionTimes = NO_TIMES
  /** The answer handed to the machine, refilled for each answer (the machine does not keep it). */
  private readonly view: LedgerDeltaView = { version: 0, pieces: [], from: 0, to: 0, complete: false }
  /** The parent opened the task only after the request was sent: it answers with what it holds when it changes. */
  private late = false
  private answerAt = 0
  /** The late answer's version (what the parent held when it changed), or -1. */
  private answerVersion = -1

  constructor(
    readonly d: PeerDriver,
    readonly s: Source,
    public since: number,
    private readonly p: SimHost,
    private arrives: number,
    private readonly there: number,
    private readonly back: number
  ) {}

  /** The next poll of the same parent, whose ledger is known (open: ledgers only grow). */
  rearm(since: number): void {
    this.since = since
    this.arrives = this.d.world.engine.now + this.there
    this.live = true
    this.reusable = false
    this.late = false
    this.answerVersion = -1
    this.answerAt = 0
  }

  setLedger(ledger: PieceLedger): void {
    this.ledger = ledger
    this.times = timesOf(ledger)
  }

  /** The request reached a parent that had not opened the task when it was sent. */
  arrived(): void {
    this.ev = NO_EVENT
    const taskId = this.d.request.taskId
    const l = this.p.store.ledger(taskId)
    if (l === undefined) {
      this.live = false
      return this.d.pollFailed(this, transferFailed(`${this.s.parent!.peerId} has not opened task ${taskId}`, true))
    }
    this.setLedger(l)
    this.late = true
    l.addWaiter(this)
  }

  /** The parent's version passed `since` (LedgerWaiter). */
  changed(): void {
    const engine = this.d.world.engine
    const ledger = this.ledger!
    if (this.late) {
      this.answerVersion = ledger.version
      deliverAt(engine, engine.now + this.back, this)
    } else {
      this.answerAt = Math.max(engine.now, this.arrives)
      deliverAt(engine, this.answerAt + this.back, this)
    }
  }

  /** The answer arrives (Delivery). */
  deliver(): void {
    if (!this.live) return
    this.live = false
    const ledger = this.ledger!
    const answer = ledger.deltaView(this.view, this.since, this.answerVersion >= 0 ? this.answerVersion : versionAt(ledger, this.times, this.answerAt))
    this.reusable = true
    // Last: the answer may rearm this poll at once.
    this.d.pollAnswered(this, answer)
  }

  cancel(): void {
    this.live = false
    this.reusable = false
    if (this.ev !== NO_EVENT) this.d.world.engine.queue.cancel(this.ev)
    this.ev = NO_EVENT
  }
}

const pollArrived = (poll: LongPoll): void => poll.arrived()

/** Ledger → the virtual time each of its versions was reached (fast path only: writes go through the driver). */
const versionTimes = new WeakMap<object, VersionTimes>()

/** When each version of a ledger was reached: `at[v - 1]`, for the first `count` versions (sized for all
 *  of them at once, not grown piece by piece). */
interface VersionTimes {
  readonly at: Float64Array
  count: number
}
const NO_TIMES: VersionTimes = { at: new Float64Array(0), count: 0 }

const timesOf = (ledger: PieceLedger): VersionTimes => {
  let times = versionTimes.get(ledger)
  if (times === undefined) versionTimes.set(ledger, (times = { at: new Float64Array(ledger.pieceCount), count: 0 }))
  return times
}

/** The ledger's version at virtual time `at` (at or before now); `times` = `timesOf(ledger)`. */
const versionAt = (ledger: { readonly version: number }, times: VersionTimes, at: number): number => {
  let v = ledger.version
  // A version not recorded (`count` short of it, never in the fast path) counts as reached.
  while (v > 0 && v <= times.count && times.at[v - 1] > at) v--
  return v
}

/**
 * Deliveries due at the same instant, pushed one after another with nothing in between, share one
 * agenda event (a parent's new piece reaching all its waiting children): same order, fewer events.
 */
interface Delivery {
  deliver(): void
}
interface DeliveryBatch {
  readonly time: number
  readonly seq: number
  readonly items: Array<Delivery>
  running: boolean
}
const openBatch = new WeakMap<object, DeliveryBatch>()
/** The last engine's open batch, in front of the WeakMap (a run delivers millions from one engine). */
let lastEngine: object | undefined = undefined
let lastBatch: DeliveryBatch | undefined = undefined

const runBatch = (batch: DeliveryBatch): void => {
  batch.running = true
  for (const d of batch.items) d.deliver()
}

const deliverAt = (engine: HostContext["engine"], time: number, item: Delivery): void => {
  const b = engine === lastEngine ? lastBatch : openBatch.get(engine)
  const t = Math.max(time, engine.now)
  if (b !== undefined && !b.running && b.time === t && engine.queue.pushes === b.seq + 1) {
    b.items.push(item)
    return
  }
  const batch: DeliveryBatch = { time: t, seq: engine.queue.pushes, items: [item], running: false }
  engine.atCall(t, runBatch, batch)
  openBatch.set(engine, batch)
  lastEngine = engine
  lastBatch = batch
}

/** Starts a download on `me`, driven by the engine. */
export const runPeerMachine = (
  world: HostContext,
  me: SimHost,
  request: DownloadRequest,
  options: PeerOptions,
  origin: Origin["Service"]
): PeerDriver => new PeerDriver(world, me, request, options, origin).start()

const transferFailed = (message: string, temporary: boolean) => ({ message, temporary }) as TransferFailed

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const f = exit.cause.reasons.find(Cause.isFailReason)
  return f?.error
}

const messageOf = (cause: Cause.Cause<unknown>): string => {
  const f = cause.reasons.find(Cause.isFailReason)
  const e = f?.error as { message?: unknown } | undefined
  return typeof e?.message === "string" ? e.message : Cause.pretty(cause)
}
