// The peer's fiber driver: one download of one task on Effect services. All decisions are the
// PeerMachine's (machine.ts); this loop only performs its commands — scheduler requests, long-polls,
// fetches and timers run in child fibers that post their outcome back to the loop's inbox, store
// operations run inline — so state is owned by one loop and never shared between fibers. The
// simulator drives the same machine from its event loop instead (sim/peer-driver.ts).
import { Clock, Effect, Fiber, Queue, Random, Schedule } from "effect"
import { DownloadError, TransferFailed } from "../errors.ts"
import { pieceAt } from "../piece-layout.ts"
import { DownloadFailed, DownloadFinished, type PeerReport } from "../protocol.ts"
import { PieceStore } from "../services/piece-store.ts"
import { Origin, type OriginRequest, PieceTransfer } from "../services/piece-transfer.ts"
import { SchedulerChannel } from "../services/scheduler-channel.ts"
import { Sha256 } from "../services/sha256.ts"
import {
  defaultPeerOptions,
  type DownloadRequest,
  type DownloadResult,
  ORIGIN,
  PeerMachine,
  type PeerOptions,
  type Source
} from "./machine.ts"

export { defaultPeerOptions, ORIGIN, PeerMachine } from "./machine.ts"
export type { DownloadRequest, DownloadResult, PeerCommand, PeerOptions } from "./machine.ts"

export type PeerServices = SchedulerChannel | PieceTransfer | Origin | PieceStore | Sha256

/** A report of an origin-fetched piece (it carries the digest) is tried again: 100 ms doubling, ~50 s in all. */
const REPORT_RETRY = { schedule: Schedule.exponential("100 millis"), times: 9 }

export const downloadTask = (
  request: DownloadRequest,
  options: PeerOptions = defaultPeerOptions
): Effect.Effect<DownloadResult, DownloadError, PeerServices> =>
  Effect.gen(function*() {
    const channel = yield* SchedulerChannel
    const transfer = yield* PieceTransfer
    const origin = yield* Origin
    const store = yield* PieceStore
    const sha = yield* Sha256
    const clock = yield* Clock.Clock
    const random = yield* Random.next
    const inbox = yield* Queue.unbounded<() => void>()
    const originRequest: OriginRequest = { url: request.url, headers: request.headers }
    const base = { peerId: request.peerId, taskId: request.taskId }
    const machine = new PeerMachine(request, options, {
      now: () => clock.currentTimeMillisUnsafe(),
      random,
      hex: (bytes) => sha.hex(bytes)
    })
    const post = (input: () => void) => Queue.offer(inbox, input)
    /** Long-polls in flight, by source, so a retired source's poll can be abandoned. */
    const watchers = new Map<Source, Fiber.Fiber<unknown, unknown>>()

    // Reports are one-way and must never hold up the loop; detached so that the last ones still
    // arrive after this download's fiber is done. A piece fetched from the origin is retried: its
    // report carries the digest that only the origin's fetcher learned, and children verify the piece
    // against the scheduler's copy of it — one lost report (a reset, a busy scheduler) left every peer
    // dropping that piece until it stalled and went to the origin (a 16-host swarm: 30 s, 1.38 copies).
    const report = (m: PeerReport) =>
      Effect.forkDetach(Effect.ignore(
        m._tag === "PieceFinished" && m.parentId === null ? Effect.retry(channel.report(m), REPORT_RETRY) : channel.report(m)
      ))

    const fetch = (s: Source, index: number, delayMillis: number, timeoutMillis: number) =>
      Effect.gen(function*() {
        const ledger = machine.ledger!
        const piece = pieceAt(ledger.contentLength, ledger.pieceLength, index)
        const started = clock.currentTimeMillisUnsafe()
        if (delayMillis > 0) yield* Effect.sleep(delayMillis)
        const bytes = s.id === ORIGIN
          ? yield* Effect.mapError(origin.fetchRange(originRequest, piece.offset, piece.length), (e) => ({
            message: `origin: ${e.message}`,
            temporary: true
          }))
          : yield* transfer.fetchPiece(s.parent!, request.taskId, index).pipe(
            Effect.timeoutOrElse({
              duration: timeoutMillis,
              orElse: () => Effect.fail(new TransferFailed({ message: `timed out after ${timeoutMillis} ms`, temporary: true }))
            }),
            Effect.mapError((e: TransferFailed) => ({ message: e.message, temporary: e.temporary }))
          )
        // Wall clocks step backwards; a negative cost would fail the report's Schema at the wire.
        const millis = Math.max(0, clock.currentTimeMillisUnsafe() - started)
        yield* post(() => machine.fetched(s, index, bytes, millis))
      }).pipe(
        Effect.catch((e: { message: string; temporary: boolean }) => post(() => machine.fetchFailed(s, index, e.message, e.temporary))),
        Effect.asVoid
      )

    machine.start()
    while (true) {
      const commands = machine.takeCommands()
      if (commands.length === 0) {
        ;(yield* Queue.take(inbox))()
        continue
      }
      for (const c of commands) {
        switch (c._tag) {
          case "Open": {
            const opened = yield* Effect.result(store.open({ taskId: request.taskId, url: request.url, contentLength: c.contentLength, pieceLength: c.pieceLength }))
            if (opened._tag === "Success") machine.opened(opened.success)
            else machine.openFailed(opened.failure.message)
            break
          }
          case "Request":
            yield* Effect.forkChild(Effect.flatMap(Effect.result(channel.request(c.message)), (answer) =>
              post(() =>
                answer._tag === "Success"
                  ? machine.answered(c.purpose, answer.success)
                  : machine.requestFailed(c.purpose, answer.failure.message)
              )))
            break
          case "Probe":
            yield* Effect.forkChild(Effect.flatMap(Effect.result(origin.probe(originRequest)), (probe) =>
              post(() => probe._tag === "Success" ? machine.probed(probe.success.contentLength) : machine.probeFailed(probe.failure.message))))
            break
          case "Watch": {
            const s = c.source
            const fiber = yield* Effect.forkChild(Effect.flatMap(Effect.result(transfer.availability(s.parent!, request.taskId, c.since)), (answer) =>
              post(() => {
                if (watchers.get(s) === fiber) watchers.delete(s)
                if (answer._tag === "Success") machine.availability(s, answer.success)
                else machine.availabilityFailed(s, answer.failure.message, answer.failure.temporary)
              })))
            watchers.set(s, fiber)
            break
          }
          case "Unwatch": {
            const fiber = watchers.get(c.source)
            watchers.delete(c.source)
            if (fiber !== undefined) yield* Fiber.interrupt(fiber)
            break
          }
          case "Fetch":
            yield* Effect.forkChild(fetch(c.source, c.index, c.delayMillis, c.timeoutMillis))
            break
          case "Write": {
            const written = yield* Effect.result(store.write(request.taskId, c.index, c.bytes, c.digest))
            if (written._tag === "Success") machine.stored(c)
            else machine.storeFailed(written.failure.message)
            break
          }
          case "Report":
            yield* report(c.report)
            break
          case "Timer": {
            const token = c.token
            yield* Effect.forkChild(Effect.andThen(Effect.sleep(Math.max(0, c.at - clock.currentTimeMillisUnsafe())), post(() => machine.timerFired(token))))
            break
          }
          case "Finish": {
            const ledger = machine.ledger!
            yield* Effect.mapError(store.commit(request.taskId), (e) => new DownloadError({ message: `piece store: ${e.message}` }))
            yield* Effect.ignore(channel.report(new DownloadFinished({ ...base, contentLength: ledger.contentLength })))
            return machine.result()
          }
          case "Fail":
            if (c.report) yield* Effect.ignore(channel.report(new DownloadFailed({ ...base, reason: c.message })))
            return yield* Effect.fail(new DownloadError({ message: c.message }))
        }
      }
    }
  })
