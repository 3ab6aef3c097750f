// One simulated host: its domain Host, its network endpoint, its store, and the core services a peer
// program on it sees. Peer-to-peer and scheduler traffic go through the Network, so every call costs
// latency (and bytes, for pieces) in virtual time.
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { Host, TaskId } from "../core/domain.ts"
import { TransferFailed } from "../core/errors.ts"
import { pieceAt } from "../core/piece-layout.ts"
import type { PeerReport, ScheduleRequest } from "../core/protocol.ts"
import type { Scheduler } from "../core/scheduler/scheduler.ts"
import { PieceStore } from "../core/services/piece-store.ts"
import { Origin, type ParentAddress, PieceTransfer } from "../core/services/piece-transfer.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { Sha256 } from "../core/services/sha256.ts"
import type { SimEngine } from "./engine.ts"
import type { Faults } from "./faults.ts"
import type { Network, NetHost } from "./network.ts"
import type { MemoryStore } from "./store.ts"
import { type UploadSlots, uploadSlotsOf } from "./upload-slots.ts"

export interface SimHost {
  readonly host: Host
  readonly net: NetHost
  readonly store: MemoryStore
  /** Its upload slots (`uploadSlotsOf`), kept here once looked up: the peer driver asks per piece. */
  slots: UploadSlots | undefined
  /** Virtual time the host's download starts (ms); seeds start when triggered. */
  arrival: number
  startedAt?: number
  finishedAt?: number
  outcome?: "ok" | "failed"
  failure?: string
}

// Piece bytes are shared, never mutated objects in the simulator (a child holds its parent's array), so
// each array is hashed once.
const hexOf = new WeakMap<Uint8Array, string>()
export const sha256Service: Sha256["Service"] = {
  hex: (data) => {
    if (typeof data === "string") return createHash("sha256").update(data).digest("hex")
    let hex = hexOf.get(data)
    if (hex === undefined) hexOf.set(data, (hex = createHash("sha256").update(data).digest("hex")))
    return hex
  }
}

/** Watches a run from outside (chaos checkers): every store a peer program sees, every scheduler step. */
export interface WorldMonitor {
  store(me: SimHost, inner: PieceStore["Service"]): PieceStore["Service"]
  /** After the scheduler answered a request or took a report (or, `{ _tag: "restart" }`, started). */
  schedulerActivity(scheduler: Scheduler, message: { readonly _tag: string }): void
}

/** What a host's services need from the world around it. */
export interface HostContext {
  readonly engine: SimEngine
  readonly network: Network
  /** The scheduler process of the moment (a restart replaces it). */
  readonly scheduler: Scheduler
  readonly schedulerNet: NetHost
  readonly seedTrigger: SeedPeerTrigger["Service"]
  readonly faults: Faults
  readonly monitor?: WorldMonitor | undefined
  hostById(id: string): SimHost | undefined
  /** The host's PieceStore as its peer program sees it (faults and monitor applied). */
  storeOf(me: SimHost): PieceStore["Service"]
}

const describe = (m: ScheduleRequest | PeerReport): string =>
  "index" in m ? `${m._tag} ${m.index}` : m._tag

export const schedulerChannel = (world: HostContext, me: SimHost): SchedulerChannel["Service"] => {
  const { engine, network, schedulerNet, faults } = world
  const name = me.host.id
  const problem = () => faults.schedulerProblem(me.net)
  return {
    request: (message) =>
      faults.call(Effect.gen(function*() {
        yield* network.delay(me.net, schedulerNet)
        engine.record(`msg ${name}>scheduler ${describe(message)}`)
        const scheduler = world.scheduler
        const answer = yield* Effect.provideService(scheduler.request(message), SeedPeerTrigger, world.seedTrigger)
        world.monitor?.schedulerActivity(scheduler, message)
        yield* network.delay(schedulerNet, me.net)
        engine.record(`msg scheduler>${name} ${answer._tag}${answer._tag === "CandidateParents" ? " " + answer.parents.map((p) => p.peerId).join(",") : ""}`)
        return answer
      }), problem, network.rtt(me.net, schedulerNet)),
    // One-way: the sender goes on while the report travels; reports from one host keep their order
    // because they share the same latency and the agenda is FIFO at equal times.
    report: (message) =>
      Effect.asVoid(Effect.forkDetach(
        Effect.andThen(network.delay(me.net, schedulerNet), Effect.suspend(() => {
          // A report into a dead or partitioned scheduler is lost.
          if (problem() !== undefined) return Effect.sync(() => engine.record(`lost ${name}>scheduler ${describe(message)}`))
          engine.record(`msg ${name}>scheduler ${describe(message)}`)
          const scheduler = world.scheduler
          return Effect.tap(scheduler.report(message), () => Effect.sync(() => world.monitor?.schedulerActivity(scheduler, message)))
        }))
      ))
  }
}

export const pieceTransfer = (world: HostContext, me: SimHost): PieceTransfer["Service"] => {
  const { network, faults } = world
  const guarded = <A>(parent: ParentAddress, effect: Effect.Effect<A, TransferFailed>) => {
    const target = world.hostById(parent.host.id)
    if (target === undefined) return effect
    return faults.call(effect, () => faults.transferProblem(me.net, target.net), network.rtt(me.net, target.net))
  }
  const parentOf = (parent: ParentAddress, taskId: TaskId) => {
    const p = world.hostById(parent.host.id)
    if (p === undefined) return Effect.fail(new TransferFailed({ message: `no host ${parent.host.id}`, temporary: false }))
    const ledger = p.store.ledger(taskId)
    if (ledger === undefined) {
      return Effect.fail(new TransferFailed({ message: `${parent.peerId} has not opened task ${taskId}`, temporary: true }))
    }
    return Effect.succeed({ p, ledger })
  }
  return {
    availability: (parent, taskId, since) =>
      guarded(parent, Effect.gen(function*() {
        const target = world.hostById(parent.host.id)
        if (target !== undefined) yield* network.delay(me.net, target.net)
        const { p, ledger } = yield* parentOf(parent, taskId)
        const answer = yield* ledger.awaitChange(since)
        yield* network.delay(p.net, me.net)
        return faults.advertised(p.host.id, answer, sha256Service.hex, (i) => p.store.tasks.get(taskId)?.pieces.get(i))
      })),
    fetchPiece: (parent, taskId, index) =>
      guarded(parent, Effect.gen(function*() {
        const target = world.hostById(parent.host.id)
        if (target !== undefined) yield* network.delay(me.net, target.net)
        const { p, ledger } = yield* parentOf(parent, taskId)
        const bytes = p.store.tasks.get(taskId)?.pieces.get(index)
        if (!ledger.has(index) || bytes === undefined) {
          return yield* new TransferFailed({ message: `${parent.peerId} does not hold piece ${index}`, temporary: true })
        }
        const { length } = pieceAt(ledger.contentLength, ledger.pieceLength, index)
        // The other half of the request round trip, then the piece itself once an upload slot is free.
        yield* network.delay(p.net, me.net)
        yield* uploadSlotsOf(p, p.host.uploadSlots).with(network.flow(p.net, me.net, length))
        if (faults.lost()) return yield* new TransferFailed({ message: `piece ${index} from ${parent.peerId}: connection reset`, temporary: true })
        return faults.served(p.host.id, bytes)
      }))
  }
}

/** Provides every core service a peer program needs on this host. */
export const provideHost = <A, E>(
  program: Effect.Effect<A, E, SchedulerChannel | PieceTransfer | Origin | PieceStore | Sha256>,
  world: HostContext,
  me: SimHost,
  origin: Origin["Service"]
): Effect.Effect<A, E> =>
  program.pipe(
    Effect.provideService(SchedulerChannel, schedulerChannel(world, me)),
    Effect.provideService(PieceTransfer, pieceTransfer(world, me)),
    Effect.provideService(Origin, origin),
    Effect.provideService(PieceStore, world.storeOf(me)),
    Effect.provideService(Sha256, sha256Service)
  )
