// The peer: one download of one task. It registers with the scheduler, takes the parents it is given
// (or the origin when told, or when the scheduler cannot be reached), and runs a single loop that owns
// all state: sources and what they hold, pieces in flight, what is verified. Fetches run in child
// fibers that post their outcome back to the loop, so there is no shared mutable state between fibers.
import { Clock, Effect, Fiber, Option, Queue, Random } from "effect"
import type { Host, TaskId } from "../domain.ts"
import { DownloadError, type OriginFailed, type SchedulerUnavailable, TransferFailed } from "../errors.ts"
import { pieceAt, pieceCountOf } from "../piece-layout.ts"
import type { PieceLedger } from "../piece-ledger.ts"
import {
  BackToSourceStarted,
  type CandidateParent,
  type CandidateParents,
  DownloadFailed,
  DownloadFinished,
  DownloadStarted,
  PieceFailed,
  PieceFinished,
  type PieceAvailability,
  type PeerReport,
  RegisterPeer,
  RescheduleParents,
  type SchedulerToPeer
} from "../protocol.ts"
import { PieceStore } from "../services/piece-store.ts"
import { Origin, type OriginRequest, PieceTransfer } from "../services/piece-transfer.ts"
import { SchedulerChannel } from "../services/scheduler-channel.ts"
import { Sha256 } from "../services/sha256.ts"
import { chooseSource, pickPieces } from "./piece-picker.ts"

export interface DownloadRequest {
  readonly url: string
  readonly taskId: TaskId
  readonly pieceLength: number
  readonly peerId: string
  readonly host: Host
  readonly headers: Readonly<Record<string, string>>
}

export interface PeerOptions {
  /** Piece downloads in flight at once, over all sources. */
  readonly concurrentPieces: number
  /** Pieces in flight from any one parent at once. */
  readonly perParentPieces: number
  /** Prefer low piece indices (streaming to a reader) over pure rarest-first. */
  readonly sequentialBias: boolean
  /** BitTorrent's endgame: once every missing piece is requested, request the stragglers again elsewhere. */
  readonly endgame: boolean
  /** No piece finished for this long → ask the scheduler for other parents. */
  readonly stallTimeoutMillis: number
  /** One piece from one parent may take this long before it counts as a (temporary) failure. */
  readonly pieceTimeoutMillis: number
  /** Temporary failures after which a parent is dropped and blocklisted. */
  readonly parentFailureLimit: number
  /** How long the origin may keep failing (retried with backoff) before the download fails. */
  readonly originOutageMillis: number
  /** How long a peer with no parent keeps trying an unreachable scheduler before it goes to the origin. */
  readonly schedulerRetryMillis: number
  /** Stalls (no piece for `stallTimeoutMillis`) in a row after which the peer goes to the origin itself. */
  readonly stallsBeforeOrigin: number
  /** Ask the scheduler for more parents this often and add them to the ones we have (a tracker's announce interval); 0 = never. */
  readonly refreshParentsMillis: number
  readonly disableBackToSource: boolean
  /** Pieces in flight from the origin at once; 0 = `concurrentPieces`. A seed fetching one or two at a
   *  time has whole pieces to relay early, instead of many pieces all at the very end. */
  readonly originPieces: number
  /** Stripe overlays: a piece whose stripe's parent does not hold it is taken from another holder
   *  once it has been out this many piece-times (at that holder's upload rate). */
  readonly stripeGracePieces: number
  /** First backoff (doubling) before asking a parent that has not opened the task yet again. */
  readonly parentRetryMillis: number
}

export const defaultPeerOptions: PeerOptions = {
  concurrentPieces: 8,
  perParentPieces: 4,
  sequentialBias: false,
  endgame: false,
  stallTimeoutMillis: 10_000,
  pieceTimeoutMillis: 60_000,
  parentFailureLimit: 3,
  originOutageMillis: 60_000,
  schedulerRetryMillis: 10_000,
  stallsBeforeOrigin: 3,
  refreshParentsMillis: 0,
  disableBackToSource: false,
  originPieces: 0,
  stripeGracePieces: 4,
  parentRetryMillis: 100
}

export interface DownloadResult {
  readonly taskId: TaskId
  readonly contentLength: number
  readonly pieceCount: number
  readonly bytesFromPeers: number
  readonly bytesFromOrigin: number
  /** The peer fetched (some of) the content from the origin itself. */
  readonly backToSource: boolean
}

export type PeerServices = SchedulerChannel | PieceTransfer | Origin | PieceStore | Sha256

const ORIGIN = "origin"

/** A place pieces come from: a parent peer, or the origin (which holds everything). */
interface Source {
  readonly id: string
  readonly parent: CandidateParent | undefined
  readonly uploadBandwidth: number
  readonly maxInflight: number
  readonly have: Uint8Array
  readonly claimed: Map<number, string>
  inflight: number
  /** Pieces being fetched from this source now. */
  readonly fetching: Set<number>
  /** Bytes/s this source delivered per fetch, as a moving average (undefined until measured). */
  measuredRate: number | undefined
  failures: number
  /** No new fetches go to a retired source (dropped, failed, or replaced by a reschedule). */
  retired: boolean
  watcher: Fiber.Fiber<void> | undefined
}

type LoopEvent =
  | { readonly _tag: "Availability"; readonly source: Source; readonly availability: PieceAvailability }
  | { readonly _tag: "AvailabilityLost"; readonly source: Source; readonly reason: string }
  | { readonly _tag: "Fetched"; readonly source: Source; readonly index: number; readonly bytes: Uint8Array; readonly millis: number }
  | { readonly _tag: "FetchFailed"; readonly source: Source; readonly index: number; readonly reason: string; readonly temporary: boolean }
  | { readonly _tag: "Digests"; readonly digests: ReadonlyArray<string | null> | undefined }

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
    const events = yield* Queue.unbounded<LoopEvent>()
    const originRequest: OriginRequest = { url: request.url, headers: request.headers }
    const base = { peerId: request.peerId, taskId: request.taskId }

    // Reports are one-way and must never hold up the transfer loop; detached so that the last ones
    // still arrive after this download's fiber is done.
    const report = (m: PeerReport) => Effect.forkDetach(Effect.ignore(channel.report(m)))
    const fail = (message: string) =>
      Effect.andThen(Effect.ignore(channel.report(new DownloadFailed({ ...base, reason: message }))), Effect.fail(new DownloadError({ message })))

    // ---------------------------------------------------------------- task state, once the length is known
    let ledger: PieceLedger | undefined
    let pieceCount = 0
    let availability = new Int32Array(0)
    let expected: Array<string | null> = []
    /** Piece → fetches of it in flight (more than one only in endgame). */
    const inflight = new Map<number, number>()
    let fetchesInFlight = 0
    /** Live sources by id; a retired source leaves the map (its running fetches still settle on it). */
    const sources = new Map<string, Source>()
    /** Parents that served corrupt data, failed too often or went away: never asked again. */
    const failed = new Set<string>()
    let bytesFromPeers = 0
    let bytesFromOrigin = 0
    let backToSource = false
    let lastProgress = 0
    /** Stall reschedules since the last piece arrived. */
    let stalls = 0
    /** When the origin started failing (undefined while it delivers). */
    let originDownSince: number | undefined
    /** Pieces from parents whose digest the scheduler had not told us yet: held until it does. */
    const unverified = new Map<number, { readonly s: Source; readonly bytes: Uint8Array; readonly millis: number }>()
    let digestsRequested = false
    /** Stripe overlay: the stripe count, and each stripe's parent (by source id), as the scheduler said. */
    let stripeCount: number | undefined
    const stripeParent = new Map<number, string>()
    /** When each piece first became available from some parent (NaN until then). */
    let firstSeen = new Float64Array(0)
    /** The earliest moment a held-back piece may be fetched from a holder that is not its stripe's parent. */
    let graceWake = Infinity
    /** How long a piece from a parent takes us, as a moving average (undefined until one arrived). */
    let pieceMillis: number | undefined

    const openTask = (contentLength: number, pieceLength: number) =>
      Effect.gen(function*() {
        if (ledger !== undefined) return
        ledger = yield* Effect.mapError(
          store.open({ taskId: request.taskId, url: request.url, contentLength, pieceLength }),
          (e) => new DownloadError({ message: `piece store: ${e.message}` })
        )
        pieceCount = pieceCountOf(contentLength, pieceLength)
        availability = new Int32Array(pieceCount)
        firstSeen = new Float64Array(pieceCount).fill(NaN)
        if (expected.length !== pieceCount) expected = new Array(pieceCount).fill(null)
      })

    const wanted = (i: number) => !inflight.has(i) && !ledger!.has(i) && !unverified.has(i)

    const newSource = (id: string, parent: CandidateParent | undefined, uploadBandwidth: number, maxInflight: number): Source => ({
      id,
      parent,
      uploadBandwidth,
      maxInflight,
      have: new Uint8Array(pieceCount),
      claimed: new Map(),
      inflight: 0,
      fetching: new Set(),
      measuredRate: undefined,
      failures: 0,
      retired: false,
      watcher: undefined
    })

    const retire = (s: Source) =>
      Effect.gen(function*() {
        if (s.retired) return
        s.retired = true
        if (sources.get(s.id) === s) sources.delete(s.id)
        for (let i = 0; i < pieceCount; i++) if (s.have[i] === 1) availability[i]--
        if (s.watcher !== undefined) yield* Fiber.interrupt(s.watcher)
      })

    const watch = (s: Source) =>
      Effect.gen(function*() {
        let since = 0
        let misses = 0
        while (true) {
          const answer = yield* Effect.result(transfer.availability(s.parent!, request.taskId, since))
          if (answer._tag === "Failure") {
            // A parent handed out a moment ago may not have opened the task yet: a temporary failure
            // is retried with backoff a few times before the parent counts as lost.
            if (!answer.failure.temporary || ++misses > options.parentFailureLimit) return yield* answer.failure
            yield* Effect.sleep(options.parentRetryMillis * 2 ** misses)
            continue
          }
          misses = 0
          const a = answer.success
          since = a.version
          yield* Queue.offer(events, { _tag: "Availability", source: s, availability: a })
          if (a.complete) return
        }
      }).pipe(
        Effect.catch((e: TransferFailed) =>
          Queue.offer(events, { _tag: "AvailabilityLost", source: s, reason: e.message })
        ),
        Effect.asVoid
      )

    /** A stripe overlay's answer names every stripe's parent anew. */
    const learnStripes = (answer: CandidateParents) => {
      if (answer.stripeCount === undefined) return
      stripeCount = answer.stripeCount
      stripeParent.clear()
      for (const p of answer.parents) for (const j of p.stripes ?? []) stripeParent.set(j, p.peerId)
    }

    /** Replace our parents with these, or (`merge`, a periodic refresh) add the new ones to ours. */
    const adoptParents = (parents: ReadonlyArray<CandidateParent>, merge = false) =>
      Effect.gen(function*() {
        if (!merge) for (const s of [...sources.values()]) if (s.id !== ORIGIN) yield* retire(s)
        for (const p of parents) {
          if (failed.has(p.peerId) || sources.has(p.peerId)) continue
          // Fetches still running from an earlier adoption settle on that (retired) record.
          const s = newSource(p.peerId, p, p.host.uploadBandwidth, options.perParentPieces)
          sources.set(p.peerId, s)
          s.watcher = yield* Effect.forkChild(watch(s))
        }
      })

    const goToOrigin = (reason: string) =>
      Effect.gen(function*() {
        if (options.disableBackToSource) return yield* fail(`back-to-source disabled and ${reason}`)
        backToSource = true
        if (ledger === undefined) {
          // An origin outage is waited out (with backoff) for up to originOutageMillis.
          const started = yield* Clock.currentTimeMillis
          let attempt = 0
          while (ledger === undefined) {
            const probe = yield* Effect.result(origin.probe(originRequest))
            if (probe._tag === "Success") {
              yield* openTask(probe.success.contentLength, request.pieceLength)
              break
            }
            const e: OriginFailed = probe.failure
            if ((yield* Clock.currentTimeMillis) - started >= options.originOutageMillis) {
              return yield* fail(`origin: ${e.message}`)
            }
            yield* Effect.sleep(Math.min(5_000, 100 * 2 ** Math.min(6, attempt++)))
          }
        }
        yield* report(new BackToSourceStarted({ ...base, contentLength: ledger!.contentLength }))
        for (const s of [...sources.values()]) yield* retire(s)
        const s = newSource(ORIGIN, undefined, Number.MAX_SAFE_INTEGER, options.originPieces > 0 ? options.originPieces : options.concurrentPieces)
        s.have.fill(1)
        for (let i = 0; i < pieceCount; i++) availability[i]++
        sources.set(ORIGIN, s)
      })

    /** Acts on what the scheduler said. Returns false when the task needs no download loop. */
    const follow = (answer: SchedulerToPeer): Effect.Effect<boolean, DownloadError> =>
      Effect.gen(function*() {
        switch (answer._tag) {
          case "CandidateParents": {
            yield* openTask(answer.task.contentLength, answer.task.pieceLength)
            answer.task.pieceDigests.forEach((d, i) => {
              if (d !== null && i < expected.length) expected[i] = d
            })
            learnStripes(answer)
            yield* adoptParents(answer.parents)
            yield* report(new DownloadStarted(base))
            return true
          }
          case "EmptyTask":
            yield* openTask(0, request.pieceLength)
            return false
          case "MetadataOnly":
            yield* openTask(answer.task.contentLength, answer.task.pieceLength)
            if (ledger!.complete) return false
            yield* goToOrigin("the scheduler had metadata but no parents")
            return true
          case "NeedBackToSource":
            yield* goToOrigin(answer.reason)
            return true
          case "ScheduleFailed":
            yield* goToOrigin(`scheduling failed: ${answer.reason}`)
            return true
          case "NeedRegister":
            return yield* ask(registration())
          case "HostAnnounced":
            yield* goToOrigin("the scheduler answered a registration with a host announcement")
            return true
        }
      })

    /** Register, or register again with what we hold (after a scheduler restart or failover). */
    const registration = () =>
      new RegisterPeer({
        ...base,
        url: request.url,
        host: request.host,
        contentLength: ledger?.contentLength ?? null,
        pieceLength: ledger?.pieceLength ?? request.pieceLength,
        finishedPieces: ledger?.held() ?? [],
        metadataOnly: false
      })

    /** With no scheduler, keep the parents we still have; only with none left go to the origin. */
    /**
     * With no scheduler: keep the parents we still have; with none, keep asking (backoff from 250 ms to
     * 2 s) for up to `schedulerRetryMillis` — a restarted or failed-over scheduler is usually back within
     * seconds, and a peer that gives up at once costs the origin a whole copy — then go to the origin.
     */
    const ask = (message: RegisterPeer | RescheduleParents): Effect.Effect<boolean, DownloadError> =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        let attempt = 0
        while (true) {
          const answer = yield* Effect.result(channel.request(message))
          if (answer._tag === "Success") return yield* follow(answer.success)
          if (sources.size > 0) return true
          const e: SchedulerUnavailable = answer.failure
          const waited = (yield* Clock.currentTimeMillis) - started
          if (waited >= options.schedulerRetryMillis) {
            yield* goToOrigin(`scheduler unreachable for ${Math.round(waited)} ms: ${e.message}`)
            return true
          }
          yield* Effect.sleep(Math.min(2_000, 250 * 2 ** attempt++))
        }
      })

    /** A tracker-style re-announce: new parents join the ones we have; any other answer changes nothing. */
    const refresh = () =>
      channel.request(new RescheduleParents({ ...base, blockedParents: [...failed], reason: "refresh", refresh: true })).pipe(
        Effect.flatMap((answer) => {
          if (answer._tag !== "CandidateParents") return Effect.void
          learnStripes(answer)
          return adoptParents(answer.parents, true)
        }),
        Effect.ignore
      )

    const reschedule = (reason: string) =>
      Effect.gen(function*() {
        yield* ask(new RescheduleParents({ ...base, blockedParents: [...failed], reason }))
      })

    // ---------------------------------------------------------------- fetching

    const fetch = (s: Source, index: number) =>
      Effect.gen(function*() {
        const piece = pieceAt(ledger!.contentLength, ledger!.pieceLength, index)
        const started = yield* Clock.currentTimeMillis
        // A failing origin is retried with exponential backoff (100 ms doubling, capped at 5 s).
        if (s.id === ORIGIN && s.failures > 0) yield* Effect.sleep(Math.min(5_000, 100 * 2 ** Math.min(6, s.failures - 1)))
        const bytes = s.id === ORIGIN
          ? yield* Effect.mapError(origin.fetchRange(originRequest, piece.offset, piece.length), (e) => ({
            message: `origin: ${e.message}`,
            temporary: true
          }))
          : yield* transfer.fetchPiece(s.parent!, request.taskId, index).pipe(
            Effect.timeoutOrElse({
              duration: options.pieceTimeoutMillis,
              orElse: () => Effect.fail(new TransferFailed({ message: `timed out after ${options.pieceTimeoutMillis} ms`, temporary: true }))
            }),
            Effect.mapError((e: TransferFailed) => ({ message: e.message, temporary: e.temporary }))
          )
        const millis = (yield* Clock.currentTimeMillis) - started
        yield* Queue.offer(events, { _tag: "Fetched", source: s, index, bytes, millis })
      }).pipe(
        Effect.catch((e: { message: string; temporary: boolean }) =>
          Queue.offer(events, { _tag: "FetchFailed", source: s, index, reason: e.message, temporary: e.temporary })
        ),
        Effect.asVoid
      )

    const startFetch = (s: Source, index: number) => {
      inflight.set(index, (inflight.get(index) ?? 0) + 1)
      fetchesInFlight++
      ledger!.markArriving(index)
      s.inflight++
      s.fetching.add(index)
      return Effect.forkChild(fetch(s, index))
    }

    const fetchEnded = (s: Source, index: number) => {
      s.inflight--
      s.fetching.delete(index)
      fetchesInFlight--
      const n = (inflight.get(index) ?? 1) - 1
      if (n > 0) inflight.set(index, n)
      else inflight.delete(index)
    }

    /**
     * Stripe overlay: a piece comes from its stripe's parent when that parent holds it; from another
     * holder only when it does not and the piece has been out for `stripeGracePieces` piece-times (the
     * stripe's parent may be gone or behind). The origin is always fine.
     */
    const mayServe = (s: Source, index: number, holders: ReadonlyArray<Source>, now: number): boolean => {
      if (stripeCount === undefined || s.id === ORIGIN) return true
      const designated = stripeParent.get(index % stripeCount)
      if (s.id === designated) return true
      if (designated !== undefined && holders.some((h) => h.id === designated)) return false
      // A piece-time: what one takes us (measured), at least what the holder's announced uplink allows.
      const pieceTime = Math.max(pieceMillis ?? 0, ledger!.pieceLength * 1000 / Math.max(1, s.uploadBandwidth))
      // A seed's uplink feeds the stripes' roots: it helps with other pieces only when one is stuck.
      const due = firstSeen[index] + options.stripeGracePieces * pieceTime * (s.parent?.host.type === "seed" ? 4 : 1)
      if (now >= due) return true
      graceWake = Math.min(graceWake, due)
      return false
    }

    const dispatch = (offset: number) =>
      Effect.gen(function*() {
        let room = options.concurrentPieces - fetchesInFlight
        if (room <= 0) return
        const live = [...sources.values()]
        const now = stripeCount === undefined ? 0 : yield* Clock.currentTimeMillis
        graceWake = Infinity
        // With stripes, pieces held back for their stripe's parent are passed over: look further down the list.
        const picks = pickPieces({ pieceCount, availability, wanted }, stripeCount === undefined ? room : pieceCount, offset, options.sequentialBias)
        for (const index of picks) {
          if (room <= 0) break
          const holders = live.filter((x) => x.have[index] === 1)
          const s = chooseSource(stripeCount === undefined ? holders : holders.filter((x) => mayServe(x, index, holders, now)))
          if (s === undefined) continue
          yield* startFetch(s, index)
          room--
        }
        // Endgame: every missing piece is already requested; ask other holders for the stragglers too.
        if (options.endgame && room > 0 && inflight.size > 0 && ledger!.version + inflight.size === pieceCount) {
          for (const index of inflight.keys()) {
            if (room <= 0) break
            // Never twice from the origin: that would cost it more than one copy.
            const s = chooseSource(live.filter((x) => x.id !== ORIGIN && x.have[index] === 1 && !x.fetching.has(index)))
            if (s === undefined) continue
            yield* startFetch(s, index)
            room--
          }
        }
      })

    /**
     * Set while re-checking held pieces the scheduler could not vouch for (it does not know the digest,
     * or is unreachable). Then a piece is taken only from a seed peer, with the digest the seed claims.
     */
    let trustClaims = false

    const askDigests = channel.request(new RegisterPeer({
      ...base,
      url: request.url,
      host: request.host,
      contentLength: null,
      pieceLength: request.pieceLength,
      finishedPieces: [],
      metadataOnly: true
    })).pipe(
      Effect.map((answer) => (answer._tag === "MetadataOnly" ? answer.task.pieceDigests : undefined)),
      Effect.orElseSucceed(() => undefined),
      Effect.flatMap((digests) => Queue.offer(events, { _tag: "Digests", digests }))
    )

    const onDigests = (digests: ReadonlyArray<string | null> | undefined) =>
      Effect.gen(function*() {
        digestsRequested = false
        if (digests !== undefined) digests.forEach((d, i) => {
          if (d !== null && i < expected.length) expected[i] = d
        })
        const held = [...unverified]
        unverified.clear()
        for (const [index, { s, bytes, millis }] of held) {
          // Still unknown to the scheduler: fall back to the parent's claim for this piece.
          if (expected[index] === null) trustClaims = true
          yield* onFetched(s, index, bytes, millis)
          trustClaims = false
        }
      })

    const onFetched = (s: Source, index: number, bytes: Uint8Array, millis: number): Effect.Effect<void, DownloadError> =>
      Effect.gen(function*() {
        if (ledger!.has(index)) return // an endgame duplicate that lost the race
        if (s.id !== ORIGIN && expected[index] === null && !trustClaims) {
          // Only the scheduler's digests (learned from the origin) are trusted; ask for them first.
          unverified.set(index, { s, bytes, millis })
          if (!digestsRequested) {
            digestsRequested = true
            yield* Effect.forkChild(askDigests)
          }
          return
        }
        const digest = sha.hex(bytes)
        // The scheduler could not vouch for this digest: only a seed peer's word counts (it fetched the
        // piece from the origin itself and is operator infrastructure). Any number of other parents
        // agreeing proves nothing — colluding peers can agree on a lie — so the bytes are dropped, that
        // parent is not asked for the piece again, and a seed (or in the end the origin) serves it.
        if (s.id !== ORIGIN && expected[index] === null && !(s.parent?.host.type === "seed" && s.claimed.get(index) === digest)) {
          if (!inflight.has(index)) ledger!.clearArriving(index)
          if (s.have[index] === 1 && !s.retired) {
            s.have[index] = 0
            availability[index]--
          }
          return
        }
        const want = expected[index] ?? (s.id === ORIGIN ? null : s.claimed.get(index) ?? null)
        if (want !== null && want !== digest) {
          // A corrupt piece: never stored, the parent is dropped and reported as bad.
          if (!inflight.has(index)) ledger!.clearArriving(index)
          yield* report(new PieceFailed({ ...base, index, parentId: s.parent?.peerId ?? null, temporary: false, reason: `digest mismatch: got ${digest}, expected ${want}` }))
          if (s.id === ORIGIN) return yield* fail(`origin content of piece ${index} does not match the task's digest`)
          failed.add(s.id)
          yield* retire(s)
          return
        }
        yield* Effect.mapError(store.write(request.taskId, index, bytes, digest), (e) => new DownloadError({ message: `piece store: ${e.message}` }))
        ledger!.add(index, digest)
        expected[index] = digest
        const length = pieceAt(ledger!.contentLength, ledger!.pieceLength, index).length
        // Per-fetch rate times the fetches we had in flight from it: what the source gives us in all.
        const rate = (length * 1000 / Math.max(1, millis)) * Math.max(1, s.inflight + 1)
        s.measuredRate = s.measuredRate === undefined ? rate : 0.7 * s.measuredRate + 0.3 * rate
        if (s.id === ORIGIN) {
          bytesFromOrigin += length
          s.failures = 0
          originDownSince = undefined
        } else {
          bytesFromPeers += length
          pieceMillis = pieceMillis === undefined ? millis : 0.8 * pieceMillis + 0.2 * millis
        }
        lastProgress = yield* Clock.currentTimeMillis
        stalls = 0
        yield* report(new PieceFinished({ ...base, index, parentId: s.parent?.peerId ?? null, digest, length, costMillis: millis }))
      })

    const onFetchFailed = (s: Source, index: number, reason: string, temporary: boolean) =>
      Effect.gen(function*() {
        if (!inflight.has(index)) ledger!.clearArriving(index)
        yield* report(new PieceFailed({ ...base, index, parentId: s.parent?.peerId ?? null, temporary, reason }))
        s.failures++
        if (s.id === ORIGIN) {
          // `failures` counts failures since the origin last delivered a piece; fetches back off by it.
          const now = yield* Clock.currentTimeMillis
          originDownSince ??= now
          if (now - originDownSince >= options.originOutageMillis) {
            return yield* fail(`origin failing for ${now - originDownSince} ms (${s.failures} attempts), last: ${reason}`)
          }
          return
        }
        if (!temporary || s.failures >= options.parentFailureLimit) {
          failed.add(s.id)
          yield* retire(s)
        }
      })

    // ---------------------------------------------------------------- the run

    let needLoop = yield* ask(registration())
    if (ledger === undefined) return yield* fail("the scheduler gave no task metadata")
    lastProgress = yield* Clock.currentTimeMillis
    const rotation = yield* Random.nextIntBetween(0, Math.max(0, pieceCount - 1))
    let nextRefresh = lastProgress + options.refreshParentsMillis

    while (needLoop && !ledger.complete) {
      yield* dispatch(rotation)
      if (sources.size === 0 && fetchesInFlight === 0) {
        yield* reschedule("no live parent")
        continue
      }
      const now = yield* Clock.currentTimeMillis
      const stallAt = lastProgress + options.stallTimeoutMillis
      const refreshing = options.refreshParentsMillis > 0 && !sources.has(ORIGIN)
      const wakeAt = Math.min(refreshing ? Math.min(stallAt, nextRefresh) : stallAt, graceWake)
      const next = yield* Effect.timeoutOption(Queue.take(events), Math.max(graceWake < Infinity ? 0.001 : 1, wakeAt - now))
      if (Option.isNone(next)) {
        const at = yield* Clock.currentTimeMillis
        // A held-back piece's grace ran out: dispatch again.
        if (graceWake < Math.min(stallAt, refreshing ? nextRefresh : Infinity)) continue
        // The wait ended at the earlier deadline; decide by the deadlines, not by comparing clock
        // readings (virtual time is a float: `now + (deadline - now)` can land a hair short).
        if (refreshing && nextRefresh < stallAt) {
          nextRefresh = at + options.refreshParentsMillis
          yield* refresh()
          continue
        }
        if (!sources.has(ORIGIN)) {
          stalls++
          if (stalls >= options.stallsBeforeOrigin) yield* goToOrigin(`no piece from parents in ${stalls} × ${options.stallTimeoutMillis} ms`)
          else yield* reschedule(`no piece for ${options.stallTimeoutMillis} ms`)
        }
        lastProgress = at
        nextRefresh = at + options.refreshParentsMillis
        continue
      }
      const ev = next.value
      switch (ev._tag) {
        case "Availability": {
          if (ev.source.retired) break
          const seen = stripeCount === undefined ? 0 : yield* Clock.currentTimeMillis
          for (const p of ev.availability.pieces) {
            if (p.index < pieceCount && ev.source.have[p.index] === 0) {
              ev.source.have[p.index] = 1
              ev.source.claimed.set(p.index, p.digest)
              if (availability[p.index] === 0 && !(firstSeen[p.index] <= seen)) firstSeen[p.index] = seen
              availability[p.index]++
            }
          }
          break
        }
        case "AvailabilityLost":
          failed.add(ev.source.id)
          yield* retire(ev.source)
          break
        case "Fetched":
          fetchEnded(ev.source, ev.index)
          yield* onFetched(ev.source, ev.index, ev.bytes, ev.millis)
          break
        case "FetchFailed":
          fetchEnded(ev.source, ev.index)
          yield* onFetchFailed(ev.source, ev.index, ev.reason, ev.temporary)
          break
        case "Digests":
          yield* onDigests(ev.digests)
          break
      }
    }
    needLoop = false

    for (const s of [...sources.values()]) yield* retire(s)
    yield* Effect.mapError(store.commit(request.taskId), (e) => new DownloadError({ message: `piece store: ${e.message}` }))
    yield* Effect.ignore(channel.report(new DownloadFinished({ ...base, contentLength: ledger.contentLength })))
    return {
      taskId: request.taskId,
      contentLength: ledger.contentLength,
      pieceCount,
      bytesFromPeers,
      bytesFromOrigin,
      backToSource
    } satisfies DownloadResult
  })
