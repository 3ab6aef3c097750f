// The scheduler: one state machine per scheduler process, driven by peer messages. It keeps a DAG of
// peers per task, hands each peer its best K parents, triggers a seed peer on a task's first
// download and decides who may go to the origin. Time (rounds) comes from Effect's Clock and
// sampling from Effect's Random, so the same code runs under virtual time and on real sockets.
import { Effect, Random } from "effect"
import type { Host, PeerState, TaskId } from "../domain.ts"
import { Task } from "../domain.ts"
import { pieceCountOf } from "../piece-layout.ts"
import {
  CandidateParents,
  EmptyTask,
  HostAnnounced,
  NeedRegister,
  MetadataOnly,
  NeedBackToSource,
  type PeerReport,
  type RegisterPeer,
  ScheduleFailed,
  type ScheduleRequest,
  type SchedulerToPeer,
  trusted
} from "../protocol.ts"
import { SeedPeerTrigger } from "../services/seed-peer-trigger.ts"
import { defaultSchedulerConfig, type SchedulerConfig } from "./config.ts"
import { dragonflyEvaluator, type Evaluator, type PeerView } from "./evaluator.ts"
import { dagTopK, type ParentHandout } from "./handout.ts"
import { SEED, StripeForest } from "./stripe-forest.ts"
import { TaskDag } from "./task-dag.ts"

const MAX_COSTS = 64

interface PeerRecord extends PeerView {
  readonly id: string
  readonly taskId: TaskId
  host: Host
  state: PeerState
  /** 1 per piece the peer reported finished (grown as needed); `finishedPieces` counts them. */
  finished: Uint8Array
  finishedPieces: number
  pieceCosts: Array<number>
  blocklist: Set<string>
  rounds: number
  seedWaitRounds: number
  /** Parents handed out in the last answer (DAG edges too, for DAG policies). */
  assigned: Array<string>
  uploadsOk: number
  uploadsFailed: number
  /** Its stripe, under a stripe overlay (dealt round-robin at registration; seeds have none). */
  stripe: number | undefined
  /** The last stripe parents handed out ("stripe:parent,…"), so that a refresh without change says so. */
  designation: string
}

interface TaskRecord {
  readonly id: TaskId
  url: string
  contentLength: number | null
  pieceLength: number
  digests: Array<string | null>
  readonly peers: Map<string, PeerRecord>
  /** The same peers in an array, for O(1) random sampling. */
  readonly peerList: Array<PeerRecord>
  readonly dag: TaskDag
  readonly backToSource: Set<string>
  seedTriggered: boolean
  /** Stripes dealt so far (round-robin over registering peers). */
  stripesDealt: number
  /** The stripe forest of the task's current members; dropped whenever membership changes. */
  forest: StripeForest | undefined
  /** `taskMessage`'s answer, dropped whenever the length or a digest changes. */
  message: Task | undefined
  /** The seed host asked to fetch the task (its IDC is the stripe forest's home). */
  seedHost: Host | undefined
}

/** A read-only view for tests, metrics and chaos checkers. */
export interface TaskSnapshot {
  readonly taskId: TaskId
  readonly peers: ReadonlyArray<{ id: string; hostId: string; state: PeerState; parents: ReadonlyArray<string> }>
  readonly backToSource: ReadonlyArray<string>
  readonly acyclic: boolean
}

/** Records a finished piece once (a bitmap: a large swarm's scheduler holds one per peer). */
const markFinished = (peer: PeerRecord, index: number): void => {
  if (index >= peer.finished.length) {
    const grown = new Uint8Array(Math.max(index + 1, peer.finished.length * 2, 64))
    grown.set(peer.finished)
    peer.finished = grown
  }
  if (peer.finished[index] === 0) {
    peer.finished[index] = 1
    peer.finishedPieces++
  }
}

export class Scheduler {
  private readonly tasks = new Map<TaskId, TaskRecord>()
  private readonly hosts = new Map<string, Host>()
  private readonly hostUploads = new Map<string, number>()

  constructor(
    readonly config: SchedulerConfig = defaultSchedulerConfig,
    readonly evaluator: Evaluator = dragonflyEvaluator,
    /** Identifies this scheduler's state; a restart must choose a new one. */
    readonly epoch: string = "0",
    readonly handout: ParentHandout = dagTopK(config.filterParentLimit, config.candidateParentLimit)
  ) {}

  // ------------------------------------------------------------ requests

  readonly request = (message: ScheduleRequest): Effect.Effect<SchedulerToPeer, never, SeedPeerTrigger> => {
    switch (message._tag) {
      case "AnnounceHost":
        return Effect.sync(() => {
          this.hosts.set(message.host.id, message.host)
          return new HostAnnounced({ epoch: this.epoch })
        })
      case "RegisterPeer":
        return this.register(message)
      case "RescheduleParents":
        return message.refresh === true
          ? this.refreshParents(message.taskId, message.peerId, message.blockedParents)
          : this.reschedule(message.taskId, message.peerId, message.blockedParents)
    }
  }

  private register(m: RegisterPeer): Effect.Effect<SchedulerToPeer, never, SeedPeerTrigger> {
    return Effect.gen({ self: this }, function*() {
      this.hosts.set(m.host.id, m.host)
      const task = this.taskFor(m.taskId, m.url, m.pieceLength)
      if (m.contentLength !== null && task.contentLength === null) this.learnLength(task, m.contentLength)
      if (m.metadataOnly) {
        return task.contentLength === null
          ? new NeedBackToSource({ taskId: task.id, reason: "task metadata not known yet" })
          : trusted(MetadataOnly, { task: this.taskMessage(task) })
      }
      if (task.contentLength === 0) return new EmptyTask({ taskId: task.id })

      const peer = this.addPeer(task, m.peerId, m.host)
      for (const i of m.finishedPieces) markFinished(peer, i)
      // A seed fetched its pieces from the origin: after a scheduler restart its digests are the ones to trust.
      if (m.host.type === "seed" && m.pieceDigests !== undefined) {
        for (const e of m.pieceDigests) if (e.index < task.digests.length && task.digests[e.index] === null) {
          task.digests[e.index] = e.digest
          task.message = undefined
        }
      }
      if (task.contentLength !== null && peer.finishedPieces === pieceCountOf(task.contentLength, task.pieceLength)) {
        peer.state = "succeeded"
        return trusted(MetadataOnly, { task: this.taskMessage(task) })
      }
      if (m.host.type === "seed") {
        if (task.seedHost?.id !== m.host.id) task.forest = undefined
        peer.state = "back-to-source"
        task.backToSource.add(peer.id)
        return new NeedBackToSource({ taskId: task.id, reason: "seed peers fetch from the origin" })
      }
      if (this.handout.stripes !== undefined && peer.stripe === undefined) {
        peer.stripe = task.stripesDealt++ % this.handout.stripes.count
        task.forest = undefined
      }
      yield* this.triggerSeed(task)
      return yield* this.scheduleRounds(task, peer)
    })
  }

  private reschedule(taskId: TaskId, peerId: string, blocked: ReadonlyArray<string>): Effect.Effect<SchedulerToPeer> {
    return Effect.suspend(() => {
      const task = this.tasks.get(taskId)
      const peer = task?.peers.get(peerId)
      if (task === undefined || peer === undefined) return Effect.succeed(new NeedRegister({ taskId }))
      for (const b of blocked) peer.blocklist.add(b)
      this.dropParents(task, peer.id)
      return this.scheduleRounds(task, peer)
    })
  }

  /** One round for a peer that is doing fine and wants more parents (mesh strategies re-announce). */
  private refreshParents(taskId: TaskId, peerId: string, blocked: ReadonlyArray<string>): Effect.Effect<SchedulerToPeer> {
    return Effect.suspend((): Effect.Effect<SchedulerToPeer> => {
      const task = this.tasks.get(taskId)
      const peer = task?.peers.get(peerId)
      if (task === undefined || peer === undefined) return Effect.succeed(new NeedRegister({ taskId }))
      for (const b of blocked) peer.blocklist.add(b)
      if (task.contentLength === null) return Effect.succeed(new ScheduleFailed({ taskId, reason: "task length not known yet" }))
      if (this.handout.stripes !== undefined && peer.stripe !== undefined) {
        // A stripe overlay answers with the whole (current) set, or that nothing changed.
        return Effect.map(this.selectParents(task, peer, true), (parents) => {
          const designation = parents.map((p) => p.id).join(",")
          if (parents.length === 0 || designation === peer.designation) return new ScheduleFailed({ taskId, reason: "no parent to add" })
          peer.designation = designation
          this.assign(task, peer, parents)
          return this.candidateParents(task, peer, parents)
        })
      }
      return Effect.map(this.selectParents(task, peer, true), (picked) => {
        // The peer keeps the parents it has: add only new ones, and count them against their hosts.
        const parents = picked.filter((p) => !peer.assigned.includes(p.id))
        if (parents.length === 0) return new ScheduleFailed({ taskId, reason: "no parent to add" })
        this.assign(task, peer, parents, false)
        return this.candidateParents(task, peer, parents)
      })
    })
  }

  private assign(task: TaskRecord, peer: PeerRecord, parents: ReadonlyArray<PeerRecord>, replace = true): void {
    if (replace) this.dropParents(task, peer.id)
    for (const p of parents) {
      if (this.handout.dag) task.dag.addEdge(p.id, peer.id)
      peer.assigned.push(p.id)
      this.hostUploads.set(p.host.id, (this.hostUploads.get(p.host.id) ?? 0) + 1)
    }
  }

  /** The answer handing out `parents`; under a stripe overlay each says which stripes it relays. */
  private candidateParents(task: TaskRecord, peer: PeerRecord, parents: ReadonlyArray<PeerRecord>): CandidateParents {
    const stripes = this.handout.stripes
    if (stripes === undefined) {
      // Built from our own records, once per answer to every peer: no Schema pass (see `trusted`).
      return trusted(CandidateParents, { task: this.taskMessage(task), parents: parents.map((p) => ({ peerId: p.id, host: p.host })) })
    }
    const relayed = new Map<string, Array<number>>()
    for (const [j, parent] of this.stripeParents(task, peer)) {
      if (!relayed.has(parent.id)) relayed.set(parent.id, [])
      relayed.get(parent.id)!.push(j)
    }
    return new CandidateParents({
      task: this.taskMessage(task),
      parents: parents.map((p) => ({ peerId: p.id, host: p.host, ...(relayed.has(p.id) ? { stripes: relayed.get(p.id)! } : {}) })),
      stripeCount: stripes.count
    })
  }

  /** Under a stripe overlay: the peer's parent in each stripe's tree (stripes whose parent cannot serve it are left out). */
  private stripeParents(task: TaskRecord, peer: PeerRecord): Map<number, PeerRecord> {
    const stripes = this.handout.stripes!
    // Without a seed host, the peer sent back to source holds every piece first: it feeds every
    // stripe's roots as a seed would (else one stripe would hang below it and the others have no upstream).
    const seedPeer = task.peerList.find((p) => p.host.type === "seed") ??
      (task.seedHost === undefined ? this.sourcePeer(task) : undefined)
    if (task.forest === undefined) {
      const members = task.peerList.filter((p) => p.stripe !== undefined && p !== seedPeer && p.state !== "failed" && p.state !== "leave")
      task.forest = new StripeForest(
        members.map((p) => ({ id: p.id, idc: p.host.idc, location: p.host.location, uploadBandwidth: p.host.uploadBandwidth })),
        stripes.count,
        stripes.fanout,
        seedPeer === undefined || seedPeer.host.type === "seed"
          ? seedPeer?.host ?? task.seedHost
          : { idc: seedPeer.host.idc, uploadBandwidth: seedPeer.host.uploadBandwidth, childrenPerStripe: stripes.fanout }
      )
    }
    const seed = seedPeer !== undefined && this.isForestParent(seedPeer, peer) ? seedPeer : undefined
    const out = new Map<number, PeerRecord>()
    for (let j = 0; j < stripes.count; j++) {
      const id = task.forest.parentOf(peer.id, j)
      const parent = id === SEED ? seed : id === undefined ? undefined : task.peers.get(id)
      if (parent !== undefined && this.isForestParent(parent, peer)) out.set(j, parent)
    }
    return out
  }

  /**
   * The common filter, except that a peer still waiting for its own parents counts: in a flash crowd
   * everyone registers before anyone is answered, and the tree's interior is made of such peers.
   */
  private isForestParent(p: PeerRecord, child: PeerRecord): boolean {
    if (p.id === child.id || p.host.id === child.host.id || child.blocklist.has(p.id)) return false
    if (p.state === "failed" || p.state === "leave") return false
    return p.state === "pending" || !this.evaluator.isBadParent(p)
  }

  /** Rounds of filter → score → top K, spaced by the retry interval, until parents or a verdict. */
  private scheduleRounds(task: TaskRecord, peer: PeerRecord): Effect.Effect<SchedulerToPeer> {
    const round: Effect.Effect<SchedulerToPeer | undefined> = Effect.gen({ self: this }, function*() {
      if (peer.state === "leave" || peer.state === "failed") {
        return new ScheduleFailed({ taskId: task.id, reason: `peer ${peer.id} is ${peer.state}` })
      }
      // While a triggered seed is still probing the origin the task's length is unknown; those rounds
      // do not count toward going back to source (up to the seed wait limit), or every early peer
      // of a flash crowd would hit the origin.
      if (task.contentLength === null && task.seedTriggered && peer.seedWaitRounds * this.config.retryIntervalMillis < this.config.seedWaitMillis) {
        peer.seedWaitRounds++
        return undefined
      }
      peer.rounds++
      const parents = task.contentLength === null ? [] : yield* this.selectParents(task, peer)
      if (parents.length > 0) {
        this.assign(task, peer, parents)
        peer.designation = parents.map((p) => p.id).join(",")
        if (peer.state === "pending") peer.state = "received-normal"
        return this.candidateParents(task, peer, parents)
      }
      const noSource = !this.hasSeedHost() && !this.hasActiveSource(task)
      if (noSource || peer.rounds >= this.config.retryBackToSourceLimit) {
        if (task.backToSource.size < this.config.backToSourceCount) {
          task.backToSource.add(peer.id)
          peer.state = "back-to-source"
          task.forest = undefined
          return new NeedBackToSource({
            taskId: task.id,
            reason: noSource ? "no seed peer and no peer holds the task" : `no parent after ${peer.rounds} rounds`
          })
        }
      }
      if (peer.rounds >= this.config.retryLimit) {
        return new ScheduleFailed({ taskId: task.id, reason: `no parent after ${peer.rounds} rounds` })
      }
      return undefined
    })
    const loop: Effect.Effect<SchedulerToPeer> = Effect.flatMap(round, (answer) =>
      answer !== undefined
        ? Effect.succeed(answer)
        : Effect.andThen(Effect.sleep(this.config.retryIntervalMillis), loop))
    return loop
  }

  /**
   * Draws up to `handoutSample` peers of the task at random (as Dragonfly samples its candidates, so a
   * round costs the same in a task of ten peers or ten thousand), keeps those that pass the common
   * filter, and lets the strategy's handout policy choose among them.
   */
  private selectParents(task: TaskRecord, child: PeerRecord, refresh = false): Effect.Effect<Array<PeerRecord>> {
    if (this.handout.stripes !== undefined && child.stripe !== undefined) {
      const parents = [...new Set(this.stripeParents(task, child).values())]
      // Nobody placed yet (the seed is still probing): the scored mesh meanwhile.
      if (parents.length > 0 || refresh) return Effect.succeed(parents)
    }
    return Effect.map(Effect.service(Random.Random), (rng) => {
      const all = task.peerList
      const want = Math.min(all.length, this.config.handoutSample ?? this.config.filterParentLimit)
      let drawn: Array<PeerRecord>
      if (want * 2 >= all.length) {
        drawn = [...all]
        for (let i = drawn.length - 1; i > 0; i--) {
          const j = Math.floor(rng.nextDoubleUnsafe() * (i + 1))
          const t = drawn[i]
          drawn[i] = drawn[j]
          drawn[j] = t
        }
        drawn.length = want
      } else {
        const seen = new Set<number>()
        drawn = []
        while (drawn.length < want) {
          const k = Math.floor(rng.nextDoubleUnsafe() * all.length)
          if (seen.has(k)) continue
          seen.add(k)
          drawn.push(all[k])
        }
      }
      const eligible = drawn.filter((p) => this.isCandidate(p, child))
      const total = task.contentLength === null ? 0 : pieceCountOf(task.contentLength, task.pieceLength)
      const chosen = this.handout.select({
        child,
        eligible,
        totalPieces: total,
        evaluator: this.evaluator,
        loadOf: (hostId) => ({ uploads: this.hostUploads.get(hostId) ?? 0 }),
        canAddEdge: (parent, c) => task.dag.canAddEdge(parent, c)
      })
      return chosen.slice(0, this.config.candidateParentLimit) as Array<PeerRecord>
    })
  }

  /** The filter every strategy's candidates pass: never itself, its host, a blocklisted or a bad peer. */
  isCandidate(p: PeerRecord, child: PeerRecord): boolean {
    if (p.id === child.id) return false
    if (p.host.id === child.host.id) return false
    if (child.blocklist.has(p.id)) return false
    if (p.state !== "running" && p.state !== "back-to-source" && p.state !== "succeeded" && p.state !== "received-normal") {
      return false
    }
    return !this.evaluator.isBadParent(p)
  }

  // ------------------------------------------------------------ reports

  readonly report = (m: PeerReport): Effect.Effect<void> => Effect.sync(() => this.reportNow(m))

  /** `report` as a plain call: a report only updates state (no waiting), and a large swarm sends one per piece. */
  reportNow(m: PeerReport): void {
    const task = this.tasks.get(m.taskId)
    const peer = task?.peers.get(m.peerId)
    if (task === undefined || peer === undefined) return
    switch (m._tag) {
      case "DownloadStarted":
        if (peer.state === "pending" || peer.state === "received-normal") peer.state = "running"
        return
      case "BackToSourceStarted":
        if (!task.backToSource.has(peer.id)) task.forest = undefined
        peer.state = "back-to-source"
        task.backToSource.add(peer.id)
        if (task.contentLength === null) this.learnLength(task, m.contentLength)
        return
      case "PieceFinished":
        markFinished(peer, m.index)
        if (m.parentId !== null) {
          const parent = task.peers.get(m.parentId)
          if (parent !== undefined) parent.uploadsOk++
        }
        peer.pieceCosts.push(m.costMillis)
        if (peer.pieceCosts.length > MAX_COSTS) peer.pieceCosts.shift()
        // Only digests of bytes fetched from the origin are recorded: a peer that took a piece from a
        // parent could only repeat that parent's claim, and a lying parent must not spread its lie.
        if (m.parentId === null && task.digests[m.index] === null) {
          task.digests[m.index] = m.digest
          task.message = undefined
        }
        return
      case "PieceFailed":
        if (m.parentId !== null) {
          const parent = task.peers.get(m.parentId)
          if (parent !== undefined) parent.uploadsFailed++
          if (!m.temporary) peer.blocklist.add(m.parentId)
        }
        return
      case "DownloadFinished":
        peer.state = "succeeded"
        this.dropParents(task, peer.id)
        return
      case "DownloadFailed":
        peer.state = "failed"
        this.removePeer(task, peer.id)
        return
      case "LeavePeer":
        peer.state = "leave"
        this.removePeer(task, peer.id)
        this.forget(task, peer.id)
        return
    }
  }

  /** Forget a host (it left, or its daemon told us it is going away). */
  leaveHost(hostId: string): void {
    this.hosts.delete(hostId)
    for (const task of this.tasks.values()) {
      for (const p of [...task.peers.values()]) {
        if (p.host.id === hostId) {
          p.state = "leave"
          this.removePeer(task, p.id)
          this.forget(task, p.id)
        }
      }
    }
  }

  snapshot(taskId: TaskId): TaskSnapshot | undefined {
    const task = this.tasks.get(taskId)
    if (task === undefined) return undefined
    return {
      taskId,
      peers: [...task.peers.values()].map((p) => ({
        id: p.id,
        hostId: p.host.id,
        state: p.state,
        parents: [...p.assigned]
      })),
      backToSource: [...task.backToSource],
      acyclic: task.dag.isAcyclic()
    }
  }

  /** Hosts that announced themselves (or registered a peer) since this scheduler started. */
  /** The piece length the task was registered with first (the one its peers share), if it is known here. */
  pieceLengthOf(taskId: TaskId): number | undefined {
    return this.tasks.get(taskId)?.pieceLength
  }

  hostOf(id: string): Host | undefined {
    return this.hosts.get(id)
  }

  knownHosts(): ReadonlyArray<Host> {
    return [...this.hosts.values()]
  }

  // ------------------------------------------------------------ internals

  private taskFor(id: TaskId, url: string, pieceLength: number): TaskRecord {
    let task = this.tasks.get(id)
    if (task === undefined) {
      task = {
        id,
        url,
        contentLength: null,
        pieceLength,
        digests: [],
        peers: new Map(),
        peerList: [],
        dag: new TaskDag(),
        backToSource: new Set(),
        seedTriggered: false,
        stripesDealt: 0,
        forest: undefined,
        message: undefined,
        seedHost: undefined
      }
      this.tasks.set(id, task)
    }
    return task
  }

  private learnLength(task: TaskRecord, contentLength: number): void {
    task.contentLength = contentLength
    task.digests = new Array(pieceCountOf(contentLength, task.pieceLength)).fill(null)
    task.message = undefined
  }

  private addPeer(task: TaskRecord, id: string, host: Host): PeerRecord {
    let peer = task.peers.get(id)
    if (peer === undefined) {
      peer = {
        id,
        taskId: task.id,
        host,
        state: "pending",
        finished: new Uint8Array(0),
        finishedPieces: 0,
        pieceCosts: [],
        blocklist: new Set(),
        rounds: 0,
        seedWaitRounds: 0,
        assigned: [],
        uploadsOk: 0,
        uploadsFailed: 0,
        stripe: undefined,
        designation: ""
      }
      task.peers.set(id, peer)
      task.peerList.push(peer)
      task.dag.addVertex(id)
    } else {
      peer.host = host
      if (peer.state === "failed" || peer.state === "leave") peer.state = "pending"
      peer.rounds = 0
    }
    return peer
  }

  private dropParents(task: TaskRecord, peerId: string): void {
    const peer = task.peers.get(peerId)
    if (peer === undefined) return
    task.dag.removeInEdges(peerId)
    for (const p of peer.assigned) {
      const host = task.peers.get(p)?.host.id
      if (host !== undefined) this.hostUploads.set(host, Math.max(0, (this.hostUploads.get(host) ?? 0) - 1))
    }
    peer.assigned = []
  }

  private removePeer(task: TaskRecord, peerId: string): void {
    task.forest = undefined
    this.dropParents(task, peerId)
    for (const c of [...task.dag.childrenOf(peerId)]) task.dag.removeEdge(peerId, c)
    task.backToSource.delete(peerId)
  }

  private forget(task: TaskRecord, peerId: string): void {
    task.forest = undefined
    task.peers.delete(peerId)
    const i = task.peerList.findIndex((p) => p.id === peerId)
    if (i >= 0) task.peerList.splice(i, 1)
    task.dag.removeVertex(peerId)
  }

  /** The first peer still fetching from (or done with) the origin, of those the scheduler sent back to source. */
  private sourcePeer(task: TaskRecord): PeerRecord | undefined {
    for (const id of task.backToSource) {
      const p = task.peers.get(id)
      if (p !== undefined && (p.state === "back-to-source" || p.state === "succeeded")) return p
    }
    return undefined
  }

  private hasSeedHost(): boolean {
    for (const h of this.hosts.values()) if (h.type === "seed") return true
    return false
  }

  private hasActiveSource(task: TaskRecord): boolean {
    for (const p of task.peers.values()) {
      if (p.state === "back-to-source" || p.state === "succeeded" || p.finishedPieces > 0) return true
    }
    return false
  }

  /**
   * On a task's first download, ask one seed host (chosen by task id, so retries agree) to fetch it;
   * with `seedNearOrigin`, one in the origin's IDC if there is one.
   */
  private triggerSeed(task: TaskRecord): Effect.Effect<void, never, SeedPeerTrigger> {
    if (task.seedTriggered) return Effect.void
    const all = [...this.hosts.values()].filter((h) => h.type === "seed").sort((a, b) => (a.id < b.id ? -1 : 1))
    const near = this.config.seedNearOrigin === true ? all.filter((h) => h.idc === this.config.originIdc) : []
    const seeds = near.length > 0 ? near : all
    if (seeds.length === 0) return Effect.void
    task.seedTriggered = true
    const seed = seeds[parseInt(task.id.slice(0, 8), 16) % seeds.length]
    task.seedHost = seed
    task.forest = undefined
    return SeedPeerTrigger.use((t) =>
      t.trigger(seed, { taskId: task.id, url: task.url, pieceLength: task.pieceLength, headers: {} })
    )
  }

  /** The task as answers describe it; rebuilt only when it changed (every answer carries it). */
  private taskMessage(task: TaskRecord): Task {
    if (task.message !== undefined) return task.message
    // Built from our own state, so without the constructor's Schema pass (see `trusted`); a copy of
    // the digests, so that an answer in flight says what was known when it was sent.
    return (task.message = trusted(Task, {
      id: task.id,
      url: task.url,
      contentLength: task.contentLength ?? 0,
      pieceLength: task.pieceLength,
      pieceDigests: task.digests.slice()
    }))
  }
}
