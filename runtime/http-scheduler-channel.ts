// SchedulerChannel over HTTP, to one scheduler or to several placed on a consistent-hash ring.
// Anything that keeps us from a usable answer (refused, timeout, 5xx, an undecodable reply) is
// SchedulerUnavailable: core then keeps its parents or goes back to the origin instead of failing.
//
// With several schedulers, each task lives on the scheduler its id hashes to. A scheduler that cannot
// be reached (refused, reset, timed out) is marked down for `downMillis` and its tasks move to the next
// scheduler clockwise; AnnounceHost goes to every scheduler, down or not (it is also the health probe),
// and answers with one epoch made of every answering scheduler's, so a scheduler lost, restarted or
// back makes core's `announceHost` re-register the complete tasks this host holds — each with its own
// scheduler — and the daemon re-register its downloads under way (`moved` says which tasks need it).
import { Effect, Layer, Queue, Schema } from "effect"
import { SchedulerUnavailable } from "../core/errors.ts"
import {
  HostAnnounced,
  NeedRegister,
  PeerReport,
  PeerReportBatch,
  type PeerToScheduler,
  ScheduleRequest,
  SchedulerToPeer
} from "../core/protocol.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { authHeaders } from "./auth.ts"
import { describe, postJson } from "./http-call.ts"
import { SchedulerRing } from "./scheduler-ring.ts"

/** Scheduling rounds may wait for a seed to learn the length (10 s by default): leave room. */
const REQUEST_TIMEOUT_MILLIS = 60_000
const REPORT_TIMEOUT_MILLIS = 10_000
/** How long an unreachable scheduler is passed over before it is tried again. */
export const DEFAULT_SCHEDULER_DOWN_MILLIS = 10_000

const encodeRequest = Schema.encodeSync(ScheduleRequest)
const encodeReport = Schema.encodeSync(PeerReport)
const encodeBatch = Schema.encodeSync(PeerReportBatch)

/**
 * A piece's report from a parent (one per piece and peer: most of what a scheduler hears in a swarm)
 * waits this long for others of the same task, and all go in one request. The scheduler's view of who
 * holds what lags by as much; reports that carry something it needs (a digest learned from the origin,
 * a failure, a start or an end) go at once, after what was gathered before them.
 */
export const REPORT_BATCH_MILLIS = 1_000
/** ... or until this many are gathered. */
const REPORT_BATCH_MAX = 64
const decodeAnswer = Schema.decodeUnknownEffect(SchedulerToPeer)

/** Why one call to one scheduler failed; `down` when the scheduler itself is gone (not merely unhappy). */
interface CallFailed {
  readonly message: string
  readonly down: boolean
  /** The connection failed at once (refused, reset) rather than timing out: worth one more try. */
  readonly reset: boolean
}

const callScheduler = (base: string, headers: Record<string, string>) => {
  const failed = (message: string, down = false, reset = false): CallFailed => ({ message: `scheduler ${base}: ${message}`, down, reset })
  return {
    request: (message: ScheduleRequest, extra: Record<string, string> = {}): Effect.Effect<SchedulerToPeer, CallFailed> =>
      postJson(`${base}/v1/schedule`, encodeRequest(message), REQUEST_TIMEOUT_MILLIS, { ...headers, ...extra }).pipe(
        Effect.mapError((e) => failed(e.message, e.unreachable || e.timedOut, e.unreachable && !e.timedOut)),
        Effect.flatMap((reply) => {
          if (reply.status !== 200) return Effect.fail(failed(describe(reply)))
          return Effect.try({ try: () => JSON.parse(reply.body.toString("utf8")) as unknown, catch: () => failed("reply is not JSON") }).pipe(
            Effect.flatMap((json) => Effect.mapError(decodeAnswer(json), (e) => failed(`undecodable reply: ${e.message}`)))
          )
        })
      ),
    report: (message: PeerReport): Effect.Effect<void, CallFailed> =>
      postJson(`${base}/v1/report`, encodeReport(message), REPORT_TIMEOUT_MILLIS, headers).pipe(
        Effect.mapError((e) => failed(e.message, e.unreachable || e.timedOut, e.unreachable && !e.timedOut)),
        Effect.flatMap((reply) => reply.status < 300 ? Effect.void : Effect.fail(failed(describe(reply))))
      ),
    /** Several reports in one request; `false` when the scheduler has no batch route (an older one). */
    reports: (reports: ReadonlyArray<PeerReport>): Effect.Effect<boolean, CallFailed> =>
      postJson(`${base}/v1/reports`, encodeBatch({ reports }), REPORT_TIMEOUT_MILLIS, headers).pipe(
        Effect.mapError((e) => failed(e.message, e.unreachable || e.timedOut, e.unreachable && !e.timedOut)),
        Effect.flatMap((reply) => reply.status < 300 ? Effect.succeed(true) : reply.status === 404 ? Effect.succeed(false) : Effect.fail(failed(describe(reply))))
      )
  }
}

export interface SchedulerStatus {
  readonly url: string
  /** Passed over until this time (ms since the epoch), when marked down. */
  readonly downUntil: number | null
  /** The scheduler's epoch at its last answer to AnnounceHost. */
  readonly epoch: string | null
}

export interface RingSchedulerChannel {
  readonly ring: SchedulerRing
  /** For downloads: each message goes to its task's scheduler (the first one on the ring not marked down). */
  readonly channel: SchedulerChannel["Service"]
  /**
   * For the presence loop: like `channel`, but a re-registration of a task already registered with its
   * current scheduler at that scheduler's current epoch is skipped, so a change of one scheduler moves
   * only the tasks that scheduler had (or gets back).
   */
  readonly presence: SchedulerChannel["Service"]
  /** Completes when a scheduler is newly marked down: the presence loop then re-announces at once. */
  readonly changed: Effect.Effect<void>
  /** Drops pending `changed` signals (before an announcement that will see the change anyway). */
  readonly settle: Effect.Effect<void>
  /** Milliseconds until the earliest down mark expires (when the presence loop probes again), if any. */
  untilNextExpiry(): number | undefined
  /** The scheduler a task's messages go to now. */
  currentOwner(taskId: string): string | undefined
  /** This host registered the task with a scheduler that is no longer its owner, or that restarted since. */
  moved(taskId: string): boolean
  status(): ReadonlyArray<SchedulerStatus>
}

export const makeRingSchedulerChannel = (
  schedulerUrls: ReadonlyArray<string>,
  token?: string,
  downMillis = DEFAULT_SCHEDULER_DOWN_MILLIS,
  /** Extra HTTP headers for a download's RegisterPeer of a task (runtime/blob-access.ts's seed credentials). */
  registerHeaders: (taskId: string) => Record<string, string> = () => ({}),
  /** Headers for every call (a seed's seed token). */
  extraHeaders: Record<string, string> = {}
): Effect.Effect<RingSchedulerChannel> =>
  Effect.gen(function*() {
    const ring = new SchedulerRing(schedulerUrls)
    const headers = { ...authHeaders(token), ...extraHeaders }
    const calls = new Map(ring.nodes.map((url) => [url, callScheduler(url, headers)]))
    const downUntil = new Map<string, number>()
    const epochs = new Map<string, string>()
    /** Task → `url=epoch` of the scheduler it was last registered with. */
    const registeredAt = new Map<string, string>()
    const signal = yield* Queue.sliding<void>(1)

    /** Schedulers marked down and not heard from since (a re-mark after a mark expires is not news). */
    const lost = new Set<string>()
    const isDown = (url: string, now = Date.now()) => (downUntil.get(url) ?? 0) > now
    const markDown = (url: string, reason: string) => {
      downUntil.set(url, Date.now() + downMillis)
      if (!lost.has(url)) {
        lost.add(url)
        Queue.offerUnsafe(signal, undefined)
        return Effect.logWarning("scheduler marked down; its tasks move to the next scheduler on the ring").pipe(
          Effect.annotateLogs({ scheduler: url, downMillis, reason })
        )
      }
      return Effect.void
    }
    const live = (taskId: string) => {
      const now = Date.now()
      return ring.preference(taskId).filter((u) => !isDown(u, now))
    }
    const currentOwner = (taskId: string) => live(taskId)[0]

    /** Tries the task's schedulers in ring order, passing over (and marking) the ones that are gone. */
    const route = <A>(taskId: string, send: (url: string) => Effect.Effect<A, CallFailed>) =>
      Effect.gen(function*() {
        const order = live(taskId)
        if (order.length === 0) {
          return yield* Effect.fail(new SchedulerUnavailable({ message: `every scheduler is marked down (${ring.nodes.join(", ")})` }))
        }
        const reasons: Array<string> = []
        for (const url of order) {
          let r = yield* Effect.result(send(url))
          // A reset or refused connection is tried once more before the scheduler counts as gone: the
          // server may have closed the kept-alive socket this call went out on just as it was sent.
          if (r._tag === "Failure" && r.failure.reset) r = yield* Effect.result(send(url))
          if (r._tag === "Success") return [url, r.success] as const
          reasons.push(r.failure.message)
          if (!r.failure.down) return yield* Effect.fail(new SchedulerUnavailable({ message: r.failure.message }))
          yield* markDown(url, r.failure.message)
        }
        return yield* Effect.fail(new SchedulerUnavailable({ message: reasons.join("; ") }))
      })

    const announce = (message: ScheduleRequest) =>
      Effect.gen(function*() {
        const results = yield* Effect.forEach(ring.nodes, (url) => Effect.result(calls.get(url)!.request(message)), { concurrency: "unbounded" })
        const parts: Array<string> = []
        const reasons: Array<string> = []
        for (let i = 0; i < ring.nodes.length; i++) {
          const url = ring.nodes[i]
          const r = results[i]
          if (r._tag === "Success" && r.success._tag === "HostAnnounced") {
            downUntil.delete(url)
            if (lost.delete(url)) yield* Effect.logInfo("scheduler answers again; its tasks move back to it").pipe(Effect.annotateLogs({ scheduler: url }))
            epochs.set(url, r.success.epoch)
            parts.push(`${url}=${r.success.epoch}`)
          } else if (r._tag === "Failure") {
            reasons.push(r.failure.message)
            if (r.failure.down) yield* markDown(url, r.failure.message)
          }
        }
        if (parts.length === 0) return yield* Effect.fail(new SchedulerUnavailable({ message: reasons.join("; ") }))
        return new HostAnnounced({ epoch: parts.join(" ") })
      })

    const taskOf = (m: Exclude<PeerToScheduler, { _tag: "AnnounceHost" }>) => m.taskId

    /** Per task: piece reports waiting for the batch to go. */
    const gathered = new Map<string, Array<PeerReport>>()
    const sendOne = (message: PeerReport) => Effect.asVoid(route(message.taskId, (url) => calls.get(url)!.report(message)))
    /** Sends what the task has gathered (each alone to a scheduler without the batch route). */
    const flush = (taskId: string): Effect.Effect<void, SchedulerUnavailable> =>
      Effect.suspend(() => {
        const batch = gathered.get(taskId)
        if (batch === undefined || batch.length === 0) return Effect.void
        gathered.delete(taskId)
        if (batch.length === 1) return sendOne(batch[0])
        return route(taskId, (url) => calls.get(url)!.reports(batch)).pipe(
          Effect.flatMap(([, accepted]) => accepted ? Effect.void : Effect.forEach(batch, sendOne, { discard: true }))
        )
      })
    const report = (message: PeerReport): Effect.Effect<void, SchedulerUnavailable> => {
      if (message._tag !== "PieceFinished" || message.parentId === null) {
        return Effect.andThen(Effect.ignoreCause(flush(message.taskId)), sendOne(message))
      }
      let batch = gathered.get(message.taskId)
      if (batch === undefined) {
        batch = []
        gathered.set(message.taskId, batch)
      }
      batch.push(message)
      if (batch.length >= REPORT_BATCH_MAX) return flush(message.taskId)
      if (batch.length > 1) return Effect.void
      // The first of a batch: it goes, with whatever joined it, in a moment (unless a flush took it first).
      const first = batch
      return Effect.asVoid(Effect.forkDetach(Effect.andThen(
        Effect.sleep(REPORT_BATCH_MILLIS),
        Effect.suspend(() => gathered.get(message.taskId) === first ? Effect.ignoreCause(flush(message.taskId)) : Effect.void)
      )))
    }

    const channel = SchedulerChannel.of({
      request: (message) => {
        if (message._tag === "AnnounceHost") return announce(message)
        // The seed credentials ride every download registration: the scheduler may trigger (or re-trigger,
        // when a seed failed) the task's seed on any of them, and uses them only for that.
        const extra = message._tag === "RegisterPeer" && !message.metadataOnly ? registerHeaders(message.taskId) : {}
        return route(taskOf(message), (url) => calls.get(url)!.request(message, extra)).pipe(
          Effect.map(([url, answer]) => {
            if (message._tag === "RegisterPeer" && !message.metadataOnly && answer._tag !== "NeedRegister") registeredAt.set(message.taskId, `${url}=${epochs.get(url) ?? "?"}`)
            return answer
          })
        )
      },
      report
    })

    const registeredWithOwner = (taskId: string) => {
      const owner = currentOwner(taskId)
      return owner !== undefined && registeredAt.get(taskId) === `${owner}=${epochs.get(owner) ?? "?"}`
    }

    const presence = SchedulerChannel.of({
      request: (message) => {
        if (message._tag === "RegisterPeer") {
          if (registeredWithOwner(message.taskId)) {
            // Its scheduler already knows it: nothing moved. (announceHost ignores the answer.)
            return Effect.succeed(new NeedRegister({ taskId: message.taskId }))
          }
        }
        return channel.request(message)
      },
      report: channel.report
    })

    return {
      ring,
      channel,
      presence,
      changed: Effect.asVoid(Queue.take(signal)),
      settle: Effect.asVoid(Queue.clear(signal)),
      untilNextExpiry: () => {
        const now = Date.now()
        const pending = [...downUntil.values()].filter((t) => t > now)
        return pending.length === 0 ? undefined : Math.min(...pending) - now
      },
      currentOwner,
      moved: (taskId) => registeredAt.has(taskId) && !registeredWithOwner(taskId),
      status: () => ring.nodes.map((url) => ({
        url,
        downUntil: isDown(url) ? downUntil.get(url)! : null,
        epoch: epochs.get(url) ?? null
      }))
    } satisfies RingSchedulerChannel
  })

/** One scheduler (a ring of one): the plain channel, for tools and tests that talk to one scheduler. */
export const makeHttpSchedulerChannel = (schedulerUrl: string, token?: string) => {
  const call = callScheduler(schedulerUrl.replace(/\/+$/, ""), authHeaders(token))
  return SchedulerChannel.of({
    request: (message) => Effect.mapError(call.request(message), (e) => new SchedulerUnavailable({ message: e.message })),
    report: (message) => Effect.mapError(call.report(message), (e) => new SchedulerUnavailable({ message: e.message }))
  })
}

export const HttpSchedulerChannel = (schedulerUrl: string, token?: string) =>
  Layer.succeed(SchedulerChannel)(makeHttpSchedulerChannel(schedulerUrl, token))
