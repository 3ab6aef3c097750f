// The peer as a state machine (quinn-proto style): all of one download's logic — registration and
// retries, parents and their availability, rarest-first picking, source choice, endgame, verification,
// stall → reschedule → origin, origin backoff, refresh — with no I/O and no waiting. Inputs are method
// calls (an answer arrived, a piece arrived, a timer fired…); outputs are commands the driver performs
// (`takeCommands`). Two drivers run it: `downloadTask` (conductor.ts, Effect fibers over the services,
// used by the daemons) and the simulator's event loop (sim/peer-driver.ts), so both worlds run this code.
import type { Host, TaskId } from "../domain.ts"
import { pieceCountOf, pieceLengthAt } from "../piece-layout.ts"
import type { PieceLedger } from "../piece-ledger.ts"
import {
  BackToSourceStarted,
  type CandidateParent,
  type CandidateParents,
  DownloadStarted,
  PieceFailed,
  type PeerReport,
  RegisterPeer,
  RescheduleParents,
  type SchedulerToPeer,
  trusted,
  trustedPieceFinished
} from "../protocol.ts"
import { PieceIndexCounts, PieceIndexSet } from "./piece-index-set.ts"
import { chooseSource, pickPieces, type PickerView } from "./piece-picker.ts"

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
  /** The first refresh comes this soon after the download starts (0 = `refreshParentsMillis`): a stripe
   *  overlay laid out while a crowd is still registering changes once the crowd is in. */
  readonly firstRefreshMillis: number
  /** A refresh answered with nothing to add doubles the interval to the next one, up to this (0 = never
   *  back off): in a settled overlay most refreshes change nothing, and each costs both ends a request. */
  readonly refreshBackoffMaxMillis: number
  readonly disableBackToSource: boolean
  /** Pieces in flight from the origin at once; 0 = `concurrentPieces`. A seed fetching one or two at a
   *  time has whole pieces to relay early, instead of many pieces all at the very end. */
  readonly originPieces: number
  /** Stripe overlays: a piece whose stripe's parent does not hold it is taken from another holder
   *  once it has been out this many piece-times (at that holder's upload rate). */
  readonly stripeGracePieces: number
  /** Pieces in flight from a parent in another IDC (0 = `perParentPieces`): across a WAN round trip one
   *  piece at a time leaves the link idle between pieces. */
  readonly remoteParentPieces: number
  /** First backoff (doubling) before asking a parent that has not opened the task yet again. */
  readonly parentRetryMillis: number
  /** Begin the piece order here instead of at a random rotation (a reader waits from this piece on). */
  readonly startPiece?: number | undefined
  /** BitTorrent's picking: each source with room gets the rarest wanted pieces that it holds (a client
   *  fills each connection from what that peer has), instead of the rarest pieces overall, each then
   *  given to a holder with room (which leaves the peer idle while the rarest sit at a busy parent). */
  readonly pickPerSource?: boolean | undefined
  /** Live parents at most (a BitTorrent client's peer limit, aria2's --bt-max-peers): a refresh adds new
   *  ones only up to it, and is not sent while we have that many. Absent: no limit. */
  readonly maxParents?: number | undefined
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
  firstRefreshMillis: 0,
  refreshBackoffMaxMillis: 0,
  disableBackToSource: false,
  originPieces: 0,
  stripeGracePieces: 4,
  remoteParentPieces: 0,
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

export const ORIGIN = "origin"

/** A place pieces come from: a parent peer, or the origin (which holds everything). */
export interface Source {
  readonly id: string
  readonly parent: CandidateParent | undefined
  /** The parent is a seed peer (its claims count while the scheduler has no digest). */
  readonly seed: boolean
  readonly uploadBandwidth: number
  readonly maxInflight: number
  readonly have: Uint8Array
  readonly claimed: Map<number, string>
  inflight: number
  /** Pieces being fetched from this source now. */
  readonly fetching: PieceIndexSet
  /** Bytes/s this source delivered per fetch, as a moving average (undefined until measured). */
  measuredRate: number | undefined
  failures: number
  /** No new fetches go to a retired source (dropped, failed, or replaced by a reschedule). */
  retired: boolean
  /** Availability version seen so far, and failed long-polls in a row. */
  since: number
  misses: number
  /** `pickPerSource`: creation order (the order dispatch goes through sources, as `sources` iterates). */
  readonly seq: number
  /**
   * `pickPerSource`: a scan of this source found nothing to fetch (`empty`); nothing changes that until
   * the source offers another piece (listed in `fresh`) or one of its pieces becomes wanted again.
   * Pieces leave "wanted" only to be fetched, so only those pieces need a look, not all of them.
   */
  empty: boolean
  readonly fresh: Array<number>
  /** `pickPerSource`: in the machine's `lookAt` (it may have something to fetch and room for it). */
  flagged: boolean
  /** The driver's own record for this source (the simulator's: the parent's host and its long-poll), so
   *  it needs no map by source; the machine never reads it. */
  link: unknown
}

/** What a parent's long-poll answers (a PieceAvailability, or the same fields from a simulator). */
export interface AvailabilityAnswer {
  readonly version: number
  readonly pieces: ReadonlyArray<{ readonly index: number; readonly digest: string }>
  readonly complete: boolean
  /**
   * Optional window into `pieces`: only `pieces[from..to)` are the answer (defaults: all of them). A
   * simulator answers with the parent's arrival log itself, shared by reference, instead of a copy per child.
   */
  readonly from?: number
  readonly to?: number
}

export type RequestPurpose = "ask" | "refresh" | "digests"

export type PeerCommand =
  /** Open (or reopen) the task in the store, then call `opened` before anything else. */
  | { readonly _tag: "Open"; readonly contentLength: number; readonly pieceLength: number }
  /** A scheduler request; answer with `answered` or `requestFailed`. */
  | { readonly _tag: "Request"; readonly message: RegisterPeer | RescheduleParents; readonly purpose: RequestPurpose }
  /** Ask the origin for the content length; answer with `probed` or `probeFailed`. */
  | { readonly _tag: "Probe" }
  /** Long-poll `source` for pieces past `since`; answer with `availability` or `availabilityFailed`. */
  | { readonly _tag: "Watch"; readonly source: Source; readonly since: number }
  /** The source was retired: its long-poll may be abandoned. */
  | { readonly _tag: "Unwatch"; readonly source: Source }
  /**
   * Fetch a piece (from the origin's byte range when `source.id === ORIGIN`), after `delayMillis`;
   * a parent's piece that takes longer than `timeoutMillis` fails as temporary. Answer with `fetched`
   * or `fetchFailed`; `millis` is measured from when the command was issued.
   */
  | { readonly _tag: "Fetch"; readonly source: Source; readonly index: number; readonly delayMillis: number; readonly timeoutMillis: number }
  /** Store a verified piece, then call `stored` (or `storeFailed`) before anything else; `bytes` go to the store (PieceStore's `write` owns them). */
  | { readonly _tag: "Write"; readonly source: Source; readonly index: number; readonly bytes: Uint8Array; readonly digest: string; readonly millis: number }
  /** A one-way report to the scheduler; nothing waits for it. */
  | { readonly _tag: "Report"; readonly report: PeerReport }
  /** Call `timerFired(token)` at virtual/real time `at` (ms). Stale tokens are ignored. */
  | { readonly _tag: "Timer"; readonly token: number; readonly at: number }
  /** Every piece is in: commit the store, report DownloadFinished, and end with `result()`. */
  | { readonly _tag: "Finish" }
  /** End with a DownloadError; `report` = tell the scheduler first (DownloadFailed). */
  | { readonly _tag: "Fail"; readonly message: string; readonly report: boolean }

export interface MachineEnvironment {
  /** Current time in milliseconds (the driver's Clock). */
  readonly now: () => number
  /** A random number in [0, 1), drawn once: the piece-order rotation. */
  readonly random: number
  /** sha256 of a piece, in hex (the Sha256 service). */
  readonly hex: (bytes: Uint8Array) => string
}

export class PeerMachine {
  private readonly out: Array<PeerCommand> = []
  /** Commands before this index were taken (`nextCommand`). */
  private outHead = 0
  private readonly base: { readonly peerId: string; readonly taskId: TaskId }
  private readonly now: () => number
  private readonly hex: (bytes: Uint8Array) => string

  // ------------------------------------------------------------ task state, once the length is known
  ledger: PieceLedger | undefined
  /** The ledger's `heldMask`, one load nearer (read for every piece a parent announces). */
  private held: Uint8Array = new Uint8Array(0)
  pieceCount = 0
  private availabilityCount = new Int32Array(0)
  /**
   * Pieces some source offered that we did not hold when last looked, in no order, no repeats
   * (`isOffered`): a superset of the picker's candidates, so a dispatch looks at a handful of pieces,
   * not every piece. Pruned as pieces are held or no longer offered.
   */
  private offered = new Int32Array(0)
  private offeredCount = 0
  /** What a dispatch picks from (rarest first among `offered`): made once the task is open, its count refreshed per pick. */
  private offeredView: PickerView & { candidateCount: number } | undefined = undefined
  private isOffered = new Uint8Array(0)
  private expected: Array<string | null> = []
  /** Piece → fetches of it in flight (more than one only in endgame). */
  private readonly inflight = new PieceIndexCounts()
  private fetchesInFlight = 0
  /** Live sources by id; a retired source leaves the map (its running fetches still settle on it). */
  private readonly sources = new Map<string, Source>()
  /** The same sources in the order they joined (as `sources` iterates): the scans per dispatch walk an array, not a map. */
  private readonly live: Array<Source> = []
  /** Parents that served corrupt data, failed too often or went away: never asked again. */
  private readonly failed = new Set<string>()
  private bytesFromPeers = 0
  private bytesFromOrigin = 0
  private backToSource = false
  private lastProgress = 0
  private nextRefresh = 0
  /** The interval to the next refresh: `refreshParentsMillis`, doubled after each refresh that added nothing. */
  private refreshInterval = 0
  /** Stall reschedules since the last piece arrived. */
  private stalls = 0
  /** When the origin started failing (undefined while it delivers). */
  private originDownSince: number | undefined
  /** Pieces from parents whose digest the scheduler had not told us yet: held until it does. */
  private readonly unverified = new Map<number, { readonly s: Source; readonly bytes: Uint8Array; readonly millis: number }>()
  /** Verified pieces whose store write is under way. */
  private readonly writing = new PieceIndexSet()
  private digestsRequested = false
  /** Set while re-checking held pieces the scheduler could not vouch for (see `onDigests`). */
  private trustClaims = false
  private rotation = 0
  /** `pickPerSource`: pieces that may have become wanted again (a fetch ended or was given up) since the last dispatch. */
  private readonly rewanted: Array<number> = []
  /**
   * `pickPerSource`: the sources a dispatch looks at, in no order: every live source that may hold a
   * piece we want and has room for it (new, a fetch from it ended, or it offered or holds a piece that
   * became wanted). The others are full (until a fetch ends) or empty (until something changes).
   */
  private readonly lookAt: Array<Source> = []
  private sourceSeq = 0
  private readonly random: number
  /** Stripe overlay: the stripe count, and each stripe's parent (by source id), as the scheduler said. */
  private stripeCount: number | undefined
  private readonly stripeParent = new Map<number, string>()
  /** Per stripe, when its parent last delivered one of its pieces to us (-Infinity: never). */
  private stripeDelivered = new Float64Array(0)
  /** A seed is one of our stripe parents: we are a root of its tree (see `dispatch`). */
  private rootOfSeed = false
  /** When each piece first became available from some parent (NaN until then). */
  private firstSeen = new Float64Array(0)
  /** The earliest moment a held-back piece may be fetched from a holder that is not its stripe's parent. */
  private graceWake = Infinity
  /** How long a piece from a parent takes us, as a moving average (undefined until one arrived). */
  private pieceMillis: number | undefined = undefined

  // ------------------------------------------------------------ what the machine is waiting for
  /** Continuation once the store has opened the task. */
  private afterOpen: (() => void) | undefined
  /** An outstanding scheduler request that holds the loop (register / reschedule), with its retry state. */
  private asking: { readonly message: RegisterPeer | RescheduleParents; readonly started: number; attempt: number } | undefined
  /** Probing the origin for the length (going back to source before the length is known). */
  private probing: { readonly started: number; attempt: number } | undefined
  private running = false
  private ended = false
  /** Picks may have changed since the last dispatch. */
  private dirty = true

  // ------------------------------------------------------------ timers
  private nextToken = 0
  private readonly timers = new Map<number, () => void>()
  /** The stall/refresh deadline the main timer is armed for. */
  private mainArmedFor: number | undefined
  private mainToken = -1

  constructor(readonly request: DownloadRequest, readonly options: PeerOptions, env: MachineEnvironment) {
    this.base = { peerId: request.peerId, taskId: request.taskId }
    this.now = env.now
    this.random = env.random
    this.hex = env.hex
  }

  /** Commands produced since the last call, in order. */
  takeCommands(): Array<PeerCommand> {
    if (this.out.length === this.outHead) return EMPTY
    const taken = this.out.splice(this.outHead, this.out.length - this.outHead)
    this.out.length = this.outHead = 0
    return taken
  }

  /** The oldest command not yet taken (one at a time, without an array per call: the simulator's driver). */
  nextCommand(): PeerCommand | undefined {
    const out = this.out
    if (this.outHead === out.length) return undefined
    const c = out[this.outHead]
    out[this.outHead++] = EMPTY_SLOT
    // Emptied: start over, but only now and then (truncating an array is a runtime call; taken slots hold nothing).
    if (this.outHead === out.length && this.outHead >= 64) out.length = this.outHead = 0
    return c
  }

  get done(): boolean {
    return this.ended
  }

  result(): DownloadResult {
    return {
      taskId: this.request.taskId,
      contentLength: this.ledger?.contentLength ?? 0,
      pieceCount: this.pieceCount,
      bytesFromPeers: this.bytesFromPeers,
      bytesFromOrigin: this.bytesFromOrigin,
      backToSource: this.backToSource
    }
  }

  // ============================================================ inputs

  /** Begin: register with the scheduler. */
  start(): void {
    this.ask(this.registration())
  }

  opened(ledger: PieceLedger): void {
    if (this.ended) return
    if (this.ledger === undefined) {
      this.ledger = ledger
      this.held = ledger.heldMask
      this.pieceCount = pieceCountOf(ledger.contentLength, ledger.pieceLength)
      this.availabilityCount = new Int32Array(this.pieceCount)
      this.offered = new Int32Array(this.pieceCount)
      this.isOffered = new Uint8Array(this.pieceCount)
      this.firstSeen = new Float64Array(this.pieceCount).fill(NaN)
      this.offeredView = { pieceCount: this.pieceCount, availability: this.availabilityCount, wanted: this.wanted, skip: ledger.heldMask, candidates: this.offered, candidateCount: 0 }
      if (this.expected.length !== this.pieceCount) this.expected = new Array(this.pieceCount).fill(null)
    }
    const k = this.afterOpen
    this.afterOpen = undefined
    k?.()
    this.step()
  }

  openFailed(message: string): void {
    this.fail(`piece store: ${message}`, false)
  }

  answered(purpose: RequestPurpose, answer: SchedulerToPeer): void {
    if (this.ended) return
    switch (purpose) {
      case "ask":
        this.asking = undefined
        this.follow(answer)
        break
      case "refresh":
        if (answer._tag === "CandidateParents") {
          this.learnStripes(answer)
          this.adoptParents(answer.parents, true)
          this.refreshInterval = this.options.refreshParentsMillis
          this.nextRefresh = Math.min(this.nextRefresh, this.now() + this.refreshInterval)
        } else this.backOffRefresh()
        break
      case "digests":
        this.onDigests(answer._tag === "MetadataOnly" ? answer.task.pieceDigests : undefined)
        break
    }
    this.step()
  }

  requestFailed(purpose: RequestPurpose, message: string): void {
    if (this.ended) return
    if (purpose === "digests") this.onDigests(undefined)
    else if (purpose === "ask") this.askFailed(message)
    this.step()
  }

  probed(contentLength: number): void {
    if (this.ended || this.probing === undefined) return
    this.probing = undefined
    this.openTask(contentLength, this.request.pieceLength, () => this.originReady())
    this.step()
  }

  probeFailed(message: string): void {
    if (this.ended || this.probing === undefined) return
    const probing = this.probing
    if (this.now() - probing.started >= this.options.originOutageMillis) return this.fail(`origin: ${message}`, true)
    // An origin outage is waited out (with backoff) for up to originOutageMillis.
    this.timer(Math.min(5_000, 100 * 2 ** Math.min(6, probing.attempt++)), () => {
      if (this.probing === probing) this.out.push(PROBE)
    })
  }

  availability(s: Source, a: AvailabilityAnswer): void {
    if (this.ended || s.retired) return
    s.misses = 0
    s.since = a.version
    const endgame = this.options.endgame
    const seen = this.stripeCount === undefined ? 0 : this.now()
    const seed = s.seed
    const held = this.ledger!.heldMask
    const pieces = a.pieces
    const to = a.to ?? pieces.length
    for (let k = a.from ?? 0; k < to; k++) {
      const p = pieces[k]
      const i = p.index
      if (i < this.pieceCount && s.have[i] === 0) {
        s.have[i] = 1
        // A piece we hold is never wanted again: only the others can end a source's emptiness.
        if (s.empty && held[i] === 0) {
          s.fresh.push(i)
          this.flag(s)
        }
        if (this.availabilityCount[i] === 0 && !(this.firstSeen[i] <= seen)) this.firstSeen[i] = seen
        // A parent's claim only matters while the scheduler has not told us the digest (never unlearned),
        // and only a seed's (`onFetched`): a map per parent of every piece it offers costs memory and time.
        if (seed && this.expected[i] === null) s.claimed.set(i, p.digest)
        if (this.availabilityCount[i]++ === 0) this.offer(i)
        // Picks change only if the piece is one we still want (or, in endgame, one in flight).
        if (!this.dirty && ((endgame && this.inflight.has(i)) || this.wanted(i))) this.dirty = true
      }
    }
    if (!a.complete) this.out.push({ _tag: "Watch", source: s, since: s.since })
    this.step()
  }

  availabilityFailed(s: Source, message: string, temporary: boolean): void {
    if (this.ended || s.retired) return
    // A parent handed out a moment ago may not have opened the task yet: a temporary failure is
    // retried with backoff a few times before the parent counts as lost.
    if (!temporary || ++s.misses > this.options.parentFailureLimit) {
      void message
      this.failed.add(s.id)
      this.retire(s)
    } else {
      this.timer(this.options.parentRetryMillis * 2 ** s.misses, () => {
        if (!s.retired) this.out.push({ _tag: "Watch", source: s, since: s.since })
      })
    }
    this.step()
  }

  fetched(s: Source, index: number, bytes: Uint8Array, millis: number): void {
    if (this.ended) return
    this.fetchEnded(s, index)
    this.onFetched(s, index, bytes, millis)
    this.step()
  }

  fetchFailed(s: Source, index: number, reason: string, temporary: boolean): void {
    if (this.ended) return
    this.fetchEnded(s, index)
    this.onFetchFailed(s, index, reason, temporary)
    this.step()
  }

  stored(command: Extract<PeerCommand, { _tag: "Write" }>): void {
    if (this.ended) return
    const { source: s, index, digest, millis } = command
    this.writing.delete(index)
    const ledger = this.ledger!
    ledger.add(index, digest)
    this.expected[index] = digest
    const length = pieceLengthAt(ledger.contentLength, ledger.pieceLength, index)
    // Per-fetch rate times the fetches we had in flight from it: what the source gives us in all.
    const rate = (length * 1000 / Math.max(1, millis)) * Math.max(1, s.inflight + 1)
    s.measuredRate = s.measuredRate === undefined ? rate : 0.7 * s.measuredRate + 0.3 * rate
    if (s.id === ORIGIN) {
      this.bytesFromOrigin += length
      s.failures = 0
      this.originDownSince = undefined
    } else {
      this.bytesFromPeers += length
      this.pieceMillis = this.pieceMillis === undefined ? millis : 0.8 * this.pieceMillis + 0.2 * millis
      if (this.stripeCount !== undefined && this.stripeParent.get(index % this.stripeCount) === s.id) this.stripeDelivered[index % this.stripeCount] = this.now()
    }
    this.lastProgress = this.now()
    this.stalls = 0
    // Holding the piece makes nothing newly pickable (it was not wanted while being written, and the
    // fetch's end already asked for a dispatch), except for stripes (the piece-time changed) and
    // endgame (the count of missing pieces did). A peer does one scan per piece instead of two.
    if (this.stripeCount !== undefined || this.options.endgame) this.dirty = true
    // Per piece, so built without the constructor's Schema pass (see `trusted`).
    this.report(trustedPieceFinished(this.base.peerId, this.base.taskId, index, s.parent?.peerId ?? null, digest, length, millis))
    this.step()
  }

  storeFailed(message: string): void {
    this.fail(`piece store: ${message}`, false)
  }

  timerFired(token: number): void {
    if (this.ended) return
    const action = this.timers.get(token)
    if (action === undefined) return
    this.timers.delete(token)
    action()
    this.step()
  }

  // ============================================================ the loop

  /** After every input: finish, or dispatch fetches, ask for parents when none is left, arm the deadline. */
  private step(): void {
    if (this.ended || this.ledger === undefined) return
    // While registering, rescheduling, probing or opening, the loop waits (as a blocking call would).
    if (this.asking !== undefined || this.probing !== undefined || this.afterOpen !== undefined) return
    if (!this.running) {
      this.running = true
      this.lastProgress = this.now()
      this.rotation = this.options.startPiece !== undefined
        ? Math.min(Math.max(0, this.options.startPiece), Math.max(0, this.pieceCount - 1))
        : Math.floor(this.random * Math.max(1, this.pieceCount))
      this.nextRefresh = this.lastProgress + (this.options.firstRefreshMillis || this.options.refreshParentsMillis)
      this.refreshInterval = this.options.refreshParentsMillis
    }
    if (this.ledger.complete) return this.finish()
    if (this.dirty) {
      this.dirty = false
      this.dispatch()
    }
    if (this.sources.size === 0 && this.fetchesInFlight === 0) {
      this.reschedule("no live parent")
      return
    }
    this.armMain()
  }

  /** The stall or refresh deadline. */
  private loopDeadline(): number {
    const stallAt = this.lastProgress + this.options.stallTimeoutMillis
    return this.refreshing() ? Math.min(stallAt, this.nextRefresh) : stallAt
  }

  /** ... or earlier, when a piece held back for its stripe's parent may go elsewhere. */
  private deadline(): number {
    return Math.min(this.loopDeadline(), this.graceWake)
  }

  private refreshing(): boolean {
    return this.options.refreshParentsMillis > 0 && !this.sources.has(ORIGIN)
  }

  /** One timer for the stall/refresh deadline, moved only when it would fire too late. */
  private armMain(): void {
    const deadline = this.deadline()
    if (this.mainArmedFor !== undefined && this.mainArmedFor <= deadline) return
    if (this.mainArmedFor !== undefined) this.timers.delete(this.mainToken)
    this.mainArmedFor = deadline
    const token = this.mainToken = this.nextToken++
    this.timers.set(token, () => this.onDeadline(deadline))
    this.out.push({ _tag: "Timer", token, at: Math.max(this.now() + (this.graceWake < Infinity ? 0.001 : 1), deadline) })
  }

  private onDeadline(armedFor: number): void {
    this.mainArmedFor = undefined
    if (!this.running || this.asking !== undefined || this.probing !== undefined) return
    // Decide by the deadlines, not by comparing clock readings (a float `now` can land a hair short).
    if (this.deadline() > armedFor) return // progress moved it; step() re-arms
    // A held-back piece's grace ran out: dispatch again.
    if (this.graceWake < this.loopDeadline()) {
      this.dirty = true
      return
    }
    const now = this.now()
    const stallAt = this.lastProgress + this.options.stallTimeoutMillis
    if (this.refreshing() && this.nextRefresh < stallAt) {
      this.nextRefresh = now + this.refreshInterval
      this.refresh()
      return
    }
    if (!this.sources.has(ORIGIN)) {
      this.stalls++
      if (this.stalls >= this.options.stallsBeforeOrigin) this.goToOrigin(`no piece from parents in ${this.stalls} × ${this.options.stallTimeoutMillis} ms`)
      else this.reschedule(`no piece for ${this.options.stallTimeoutMillis} ms`)
    }
    this.lastProgress = now
    this.refreshInterval = this.options.refreshParentsMillis
    this.nextRefresh = now + this.refreshInterval
  }

  /** A refresh that added nothing: the next one comes twice as late (from now), up to `refreshBackoffMaxMillis`. */
  private backOffRefresh(): void {
    const max = this.options.refreshBackoffMaxMillis
    if (max <= this.options.refreshParentsMillis || !this.running) return
    this.refreshInterval = Math.min(max, this.refreshInterval * 2)
    this.nextRefresh = this.now() + this.refreshInterval
  }

  private timer(delayMillis: number, action: () => void): void {
    const token = this.nextToken++
    this.timers.set(token, action)
    this.out.push({ _tag: "Timer", token, at: this.now() + delayMillis })
  }

  private finish(): void {
    for (const s of [...this.sources.values()]) this.retire(s)
    this.lookAt.length = 0
    this.ended = true
    this.timers.clear()
    this.out.push(FINISH)
  }

  private fail(message: string, report: boolean): void {
    if (this.ended) return
    this.ended = true
    this.timers.clear()
    this.out.push({ _tag: "Fail", message, report })
  }

  private report(m: PeerReport): void {
    this.out.push({ _tag: "Report", report: m })
  }

  // ============================================================ scheduler conversation

  private openTask(contentLength: number, pieceLength: number, then: () => void): void {
    if (this.ledger !== undefined) return then()
    this.afterOpen = then
    this.out.push({ _tag: "Open", contentLength, pieceLength })
  }

  /** Register, or register again with what we hold (after a scheduler restart or failover). */
  private registration(): RegisterPeer {
    const ledger = this.ledger
    // From our own state, once or twice per download: no Schema pass (see `trusted`).
    return trusted(RegisterPeer, {
      ...this.base,
      url: this.request.url,
      host: this.request.host,
      contentLength: ledger?.contentLength ?? null,
      pieceLength: ledger?.pieceLength ?? this.request.pieceLength,
      finishedPieces: ledger?.held() ?? [],
      metadataOnly: false
    })
  }

  /**
   * With no scheduler: keep the parents we still have; with none, keep asking (backoff from 250 ms to
   * 2 s) for up to `schedulerRetryMillis` — a restarted or failed-over scheduler is usually back within
   * seconds, and a peer that gives up at once costs the origin a whole copy — then go to the origin.
   */
  private ask(message: RegisterPeer | RescheduleParents): void {
    this.asking = { message, started: this.now(), attempt: 0 }
    this.out.push({ _tag: "Request", message, purpose: "ask" })
  }

  private askFailed(message: string): void {
    const asking = this.asking
    if (asking === undefined) return
    if (this.sources.size > 0) {
      this.asking = undefined
      return
    }
    const waited = this.now() - asking.started
    if (waited >= this.options.schedulerRetryMillis) {
      this.asking = undefined
      this.goToOrigin(`scheduler unreachable for ${Math.round(waited)} ms: ${message}`)
      return
    }
    this.timer(Math.min(2_000, 250 * 2 ** asking.attempt++), () => {
      if (this.asking === asking) this.out.push({ _tag: "Request", message: asking.message, purpose: "ask" })
    })
  }

  /** Acts on what the scheduler said to a registration or reschedule. */
  private follow(answer: SchedulerToPeer): void {
    switch (answer._tag) {
      case "CandidateParents":
        return this.openTask(answer.task.contentLength, answer.task.pieceLength, () => {
          answer.task.pieceDigests.forEach((d, i) => {
            if (d !== null && i < this.expected.length) this.expected[i] = d
          })
          this.learnStripes(answer)
          this.adoptParents(answer.parents)
          this.report(new DownloadStarted(this.base))
        })
      case "EmptyTask":
        return this.openTask(0, this.request.pieceLength, () => {})
      case "MetadataOnly":
        return this.openTask(answer.task.contentLength, answer.task.pieceLength, () => {
          if (!this.ledger!.complete) this.goToOrigin("the scheduler had metadata but no parents")
        })
      case "NeedBackToSource":
        return this.goToOrigin(answer.reason)
      case "ScheduleFailed":
        return this.goToOrigin(`scheduling failed: ${answer.reason}`)
      case "NeedRegister":
        return this.ask(this.registration())
      case "HostAnnounced":
        return this.goToOrigin("the scheduler answered a registration with a host announcement")
    }
  }

  private reschedule(reason: string): void {
    if (this.asking !== undefined) return
    this.ask(new RescheduleParents({ ...this.base, blockedParents: [...this.failed], reason }))
  }

  /** Live parents (sources other than the origin). */
  private parentCount(): number {
    return this.sources.size - (this.sources.has(ORIGIN) ? 1 : 0)
  }

  /** A tracker-style re-announce: new parents join the ones we have; any other answer changes nothing. */
  private refresh(): void {
    // At the peer limit a client asks for no more peers (the next refresh comes as usual).
    if (this.parentCount() >= (this.options.maxParents ?? Infinity)) return
    this.out.push({
      _tag: "Request",
      message: new RescheduleParents({ ...this.base, blockedParents: [...this.failed], reason: "refresh", refresh: true }),
      purpose: "refresh"
    })
  }

  private goToOrigin(reason: string): void {
    if (this.options.disableBackToSource) return this.fail(`back-to-source disabled and ${reason}`, true)
    if (this.probing !== undefined) return
    this.backToSource = true
    if (this.ledger === undefined) {
      this.probing = { started: this.now(), attempt: 0 }
      this.out.push(PROBE)
      return
    }
    this.originReady()
  }

  private originReady(): void {
    this.report(new BackToSourceStarted({ ...this.base, contentLength: this.ledger!.contentLength }))
    for (const s of [...this.sources.values()]) this.retire(s)
    const s = this.newSource(ORIGIN, undefined, Number.MAX_SAFE_INTEGER, this.options.originPieces > 0 ? this.options.originPieces : this.options.concurrentPieces)
    s.have.fill(1)
    this.flag(s)
    for (let i = 0; i < this.pieceCount; i++) if (this.availabilityCount[i]++ === 0) this.offer(i)
    this.sources.set(ORIGIN, s)
    this.live.push(s)
    this.dirty = true
  }

  // ============================================================ sources

  private newSource(id: string, parent: CandidateParent | undefined, uploadBandwidth: number, maxInflight: number): Source {
    return {
      id,
      parent,
      seed: parent?.host.type === "seed",
      uploadBandwidth,
      maxInflight,
      have: new Uint8Array(this.pieceCount),
      claimed: new Map(),
      inflight: 0,
      fetching: new PieceIndexSet(),
      measuredRate: undefined,
      failures: 0,
      retired: false,
      since: 0,
      misses: 0,
      seq: this.sourceSeq++,
      empty: false,
      fresh: [],
      flagged: false,
      link: undefined
    }
  }

  private retire(s: Source): void {
    if (s.retired) return
    s.retired = true
    if (this.sources.get(s.id) === s) {
      this.sources.delete(s.id)
      this.live.splice(this.live.indexOf(s), 1)
    }
    for (let i = 0; i < this.pieceCount; i++) if (s.have[i] === 1) this.availabilityCount[i]--
    if (s.id !== ORIGIN) this.out.push({ _tag: "Unwatch", source: s })
    this.dirty = true
  }

  /** A stripe overlay's answer names every stripe's parent anew. */
  private learnStripes(answer: CandidateParents): void {
    if (answer.stripeCount === undefined) return
    if (this.stripeCount !== answer.stripeCount) this.stripeDelivered = new Float64Array(answer.stripeCount).fill(-Infinity)
    this.stripeCount = answer.stripeCount
    this.stripeParent.clear()
    for (const p of answer.parents) for (const j of p.stripes ?? []) this.stripeParent.set(j, p.peerId)
    this.rootOfSeed = answer.parents.some((p) => p.host.type === "seed" && (p.stripes?.length ?? 0) > 0)
  }


  /** Replace our parents with these, or (`merge`, a periodic refresh) add the new ones to ours. */
  private adoptParents(parents: ReadonlyArray<CandidateParent>, merge = false): void {
    if (!merge) for (const s of [...this.sources.values()]) if (s.id !== ORIGIN) this.retire(s)
    const max = this.options.maxParents ?? Infinity
    for (const p of parents) {
      if (this.failed.has(p.peerId) || this.sources.has(p.peerId)) continue
      if (this.parentCount() >= max) break
      // Fetches still running from an earlier adoption settle on that (retired) record.
      const remote = this.options.remoteParentPieces > 0 && this.isRemote(p.host.idc)
      const s = this.newSource(p.peerId, p, p.host.uploadBandwidth, remote ? this.options.remoteParentPieces : this.options.perParentPieces)
      this.sources.set(p.peerId, s)
      this.live.push(s)
      this.flag(s)
      this.out.push({ _tag: "Watch", source: s, since: 0 })
    }
    this.dirty = true
  }

  // ============================================================ fetching

  // Cheapest test first: late in a download most pieces are held; the maps are usually (nearly) empty.
  private readonly wanted = (i: number): boolean =>
    this.held[i] === 0 && !this.inflight.has(i) && (this.unverified.size === 0 || !this.unverified.has(i)) &&
    (this.writing.size === 0 || !this.writing.has(i))

  private startFetch(s: Source, index: number): void {
    this.inflight.set(index, (this.inflight.get(index) ?? 0) + 1)
    this.fetchesInFlight++
    this.ledger!.markArriving(index)
    s.inflight++
    s.fetching.add(index)
    // A failing origin is retried with exponential backoff (100 ms doubling, capped at 5 s).
    const delayMillis = s.id === ORIGIN && s.failures > 0 ? Math.min(5_000, 100 * 2 ** Math.min(6, s.failures - 1)) : 0
    this.out.push({ _tag: "Fetch", source: s, index, delayMillis, timeoutMillis: this.options.pieceTimeoutMillis })
  }

  private fetchEnded(s: Source, index: number): void {
    // The piece may be wanted again (a failure, or bytes dropped after this).
    if (this.options.pickPerSource === true) {
      this.rewanted.push(index)
      if (!s.retired) this.flag(s)
    }
    s.inflight--
    s.fetching.delete(index)
    this.fetchesInFlight--
    const n = (this.inflight.get(index) ?? 1) - 1
    if (n > 0) this.inflight.set(index, n)
    else this.inflight.delete(index)
    this.dirty = true
  }

  /** `holdersOf`'s answer: its first `holdersOf(…)` entries (the rest are stale; not truncated, which costs a runtime call per pick). */
  private readonly holders: Array<Source> = []

  /** How many live sources hold `index` (and, for endgame, are not the origin and not fetching it); they are `holders[0..count)`. */
  private holdersOf(index: number, endgame: boolean): number {
    const out = this.holders
    const live = this.live
    let k = 0
    for (let j = 0; j < live.length; j++) {
      const x = live[j]
      if (x.have[index] !== 1) continue
      if (endgame && (x.id === ORIGIN || x.fetching.has(index))) continue
      if (k < out.length) out[k] = x
      else out.push(x)
      k++
    }
    return k
  }

  /**
   * Stripe overlay: a piece comes from its stripe's parent when that parent holds it; from another
   * holder only when it does not and the piece has been out for `stripeGracePieces` piece-times (the
   * stripe's parent may be gone or behind). The origin is always fine.
   */
  private mayServe(s: Source, index: number, holders: ReadonlyArray<Source>, now: number): boolean {
    if (this.stripeCount === undefined || s.id === ORIGIN) return true
    const designated = this.stripeParent.get(index % this.stripeCount)
    if (s.id === designated) return true
    if (designated !== undefined && holders.some((h) => h.id === designated)) return false
    // Another IDC's holder of a piece whose stripe has a parent: the stripe crosses the WAN once, through
    // that parent's tree; taking it here would send it across again.
    if (designated !== undefined && s.parent !== undefined && this.isRemote(s.parent.host.idc)) return false
    // The seed's uplink feeds the stripes' roots, so it is the last resort, and not before we know what a
    // piece takes us: a daemon not told its link's rate announces an unlimited uplink, which would make
    // every piece overdue within milliseconds and send each root to the seed for the other stripe's first
    // pieces too (each such copy costs the whole forest a piece-time at its busiest uplink). Our first
    // piece's arrival dispatches again.
    const seed = s.parent?.host.type === "seed"
    if (seed && this.pieceMillis === undefined) return false
    // A piece-time: what one takes us (measured), at least what the holder's announced uplink allows.
    const pieceTime = Math.max(this.pieceMillis ?? 0, this.ledger!.pieceLength * 1000 / Math.max(1, s.uploadBandwidth))
    // A seed's uplink feeds the stripes' roots: it helps with other pieces only when one is stuck.
    // The grace runs from when the piece was first seen, or from the stripe parent's last delivery if
    // that is later: a tree that is moving is the plan even when pieces wait in it (a fast seed shows a
    // root every piece at once, long before its tree can bring them); only a stalled stripe is helped.
    const since = Math.max(this.firstSeen[index], designated === undefined ? -Infinity : this.stripeDelivered[index % this.stripeCount])
    const due = since + this.options.stripeGracePieces * pieceTime * (seed ? 4 : 1)
    if (now >= due) return true
    this.graceWake = Math.min(this.graceWake, due)
    return false
  }

  /** True when `idc` names an IDC other than ours (an unnamed one is not). */
  private isRemote(idc: string): boolean {
    return idc !== "" && this.request.host.idc !== "" && idc !== this.request.host.idc
  }

  private dispatch(): void {
    let room = this.options.concurrentPieces - this.fetchesInFlight
    if (room <= 0) return
    const ledger = this.ledger!
    const striped = this.stripeCount !== undefined
    // No source can take another fetch: nothing to pick (a starved peer gets here on every input).
    if (!striped && !this.options.endgame && !this.anySourceHasRoom()) return
    const now = striped ? this.now() : 0
    this.graceWake = Infinity
    // With stripes, pieces held back for their stripe's parent are passed over: look further down the list.
    const perSource = this.options.pickPerSource === true && !striped
    if (perSource) room = this.dispatchPerSource(room)
    else this.pruneOffered()
    // Per source, every source with room has taken what it could: a pick over all pieces would find
    // holders only with no room (the endgame below still asks further holders).
    let picks: Array<number> = NO_PICKS
    if (room > 0 && !perSource) {
      const view = this.offeredView!
      view.candidateCount = this.offeredCount
      // A seed feeding several roots of a stripe: each root in its own rarest-first order would make its
      // tree the only one still missing what that root takes last; in index order the trees move together.
      picks = pickPieces(view, striped ? this.pieceCount : room, this.rotation, this.options.sequentialBias || this.rootOfSeed)
    }
    for (const index of picks) {
      if (room <= 0) break
      const count = this.holdersOf(index, false)
      let s: Source | undefined
      if (striped) {
        const holders = this.holders.slice(0, count)
        s = chooseSource(holders.filter((x) => this.mayServe(x, index, holders, now)))
      } else s = chooseSource(this.holders, count)
      if (s === undefined) continue
      this.startFetch(s, index)
      room--
    }
    // Endgame: every missing piece is already requested; ask other holders for the stragglers too.
    if (this.options.endgame && room > 0 && this.inflight.size > 0 && ledger.version + this.inflight.size === this.pieceCount) {
      for (const index of [...this.inflight.keys()]) {
        if (room <= 0) break
        // Never twice from the origin: that would cost it more than one copy.
        const s = chooseSource(this.holders, this.holdersOf(index, true))
        if (s === undefined) continue
        this.startFetch(s, index)
        room--
      }
    }
  }

  /** `pickPerSource`: every source with room, in the order we learned of them, takes the rarest wanted
   *  pieces it holds. Returns the room left. */
  private dispatchPerSource(room: number): number {
    const ledger = this.ledger!
    // A piece wanted again makes the empty sources holding it worth a full look.
    const log = this.rewanted
    for (let k = 0; k < log.length; k++) {
      const i = log[k]
      if (!this.wanted(i)) continue
      for (const s of this.live) {
        if (s.empty && s.have[i] === 1) {
          s.empty = false
          this.flag(s)
        }
      }
    }
    log.length = 0
    const lookAt = this.lookAt
    if (lookAt.length > 1) lookAt.sort(bySeq)
    let kept = 0
    for (let k = 0; k < lookAt.length; k++) {
      const s = lookAt[k]
      if (s.retired) {
        s.flagged = false
        continue
      }
      // Out of room: the rest wait for the next dispatch.
      if (room <= 0) {
        lookAt[kept++] = s
        continue
      }
      const free = Math.min(room, s.maxInflight - s.inflight)
      if (free <= 0 || this.stillEmpty(s)) {
        s.flagged = false
        continue
      }
      const picks = pickPieces({ pieceCount: this.pieceCount, availability: this.availabilityCount, wanted: this.wanted, skip: ledger.heldMask, holder: s.have }, free, this.rotation, this.options.sequentialBias)
      // Fewer than asked for: it holds nothing else we want.
      s.empty = picks.length < free
      s.fresh.length = 0
      for (const index of picks) {
        this.startFetch(s, index)
        room--
      }
      if (!s.empty && s.inflight < s.maxInflight) lookAt[kept++] = s
      else s.flagged = false
    }
    lookAt.length = kept
    return room
  }

  /**
   * `pickPerSource`'s bookkeeping against a full scan (for tests): a live source with room that holds a
   * piece we want while we have room, which the last dispatch should have taken; undefined when none.
   */
  missedWork(): string | undefined {
    if (this.ended || this.ledger === undefined || !this.running || this.asking !== undefined || this.probing !== undefined) return undefined
    if (this.fetchesInFlight >= this.options.concurrentPieces) return undefined
    for (const s of this.sources.values()) {
      if (s.inflight >= s.maxInflight) continue
      for (let i = 0; i < this.pieceCount; i++) if (s.have[i] === 1 && this.wanted(i)) return `${s.id} has room and holds wanted piece ${i}`
    }
    return undefined
  }

  private flag(s: Source): void {
    if (s.flagged || this.options.pickPerSource !== true) return
    s.flagged = true
    this.lookAt.push(s)
  }

  /**
   * `pickPerSource`: true when a source found empty still offers nothing we want: none of the pieces it
   * offered since is one we want (pieces that became wanted again cleared `empty` already). Those are
   * looked at once; any other change means a full scan.
   */
  private stillEmpty(s: Source): boolean {
    if (!s.empty) return false
    const fresh = s.fresh
    for (let k = 0; k < fresh.length; k++) if (s.have[fresh[k]] === 1 && this.wanted(fresh[k])) return false
    fresh.length = 0
    return true
  }

  /**
   * `pickPerSource`: a request that waited for one of the parent's upload slots takes, once it holds one,
   * the rarest wanted piece that parent holds now if that is rarer than the piece chosen when it was
   * queued (which others may have spread meanwhile). BitTorrent's choked connection sends no request
   * and picks only once unchoked. Returns the piece to fetch.
   */
  rebind(s: Source, index: number): number {
    if (this.options.pickPerSource !== true || this.ended || this.ledger === undefined || this.inflight.get(index) !== 1) return index
    const ledger = this.ledger
    const [pick] = pickPieces({ pieceCount: this.pieceCount, availability: this.availabilityCount, wanted: this.wanted, skip: ledger.heldMask, holder: s.have }, 1, this.rotation, this.options.sequentialBias)
    if (pick === undefined || this.availabilityCount[pick] >= this.availabilityCount[index]) return index
    this.inflight.delete(index)
    ledger.clearArriving(index)
    s.fetching.delete(index)
    this.rewanted.push(index)
    this.inflight.set(pick, 1)
    ledger.markArriving(pick)
    s.fetching.add(pick)
    // The piece given up is wanted again (from another holder).
    this.dirty = true
    this.step()
    return pick
  }

  private offer(index: number): void {
    if (this.isOffered[index] === 1) return
    this.isOffered[index] = 1
    this.offered[this.offeredCount++] = index
  }

  /** Drops held pieces and pieces no source offers any more from `offered`. */
  private pruneOffered(): void {
    const offered = this.offered
    const isOffered = this.isOffered
    const count = this.availabilityCount
    const held = this.ledger!.heldMask
    let w = 0
    for (let r = 0; r < this.offeredCount; r++) {
      const i = offered[r]
      if (count[i] > 0 && held[i] === 0) offered[w++] = i
      else isOffered[i] = 0
    }
    this.offeredCount = w
  }

  private anySourceHasRoom(): boolean {
    const live = this.live
    for (let j = 0; j < live.length; j++) if (live[j].inflight < live[j].maxInflight) return true
    return false
  }

  private askDigests(): void {
    this.out.push({
      _tag: "Request",
      // Fields named rather than spread: a spread here cost more than the rest of the message.
      message: trusted(RegisterPeer, {
        peerId: this.base.peerId,
        taskId: this.base.taskId,
        url: this.request.url,
        host: this.request.host,
        contentLength: null,
        pieceLength: this.request.pieceLength,
        finishedPieces: [],
        metadataOnly: true
      }),
      purpose: "digests"
    })
  }

  private onDigests(digests: ReadonlyArray<string | null> | undefined): void {
    this.digestsRequested = false
    if (digests !== undefined) digests.forEach((d, i) => {
      if (d !== null && i < this.expected.length) this.expected[i] = d
    })
    const held = [...this.unverified]
    this.unverified.clear()
    // Any piece may be wanted again: every source gets a full look.
    for (const s of this.sources.values()) {
      s.empty = false
      this.flag(s)
    }
    this.dirty = true
    for (const [index, { s, bytes, millis }] of held) {
      // Still unknown to the scheduler: fall back to the parent's claim for this piece.
      if (this.expected[index] === null) this.trustClaims = true
      this.onFetched(s, index, bytes, millis)
      this.trustClaims = false
    }
  }

  private onFetched(s: Source, index: number, bytes: Uint8Array, millis: number): void {
    const ledger = this.ledger!
    if (ledger.has(index) || this.writing.has(index)) return // an endgame duplicate that lost the race
    const expected = this.expected
    if (s.id !== ORIGIN && expected[index] === null && !this.trustClaims) {
      // Only the scheduler's digests (learned from the origin) are trusted; ask for them first.
      this.unverified.set(index, { s, bytes, millis })
      if (!this.digestsRequested) {
        this.digestsRequested = true
        this.askDigests()
      }
      return
    }
    const digest = this.hex(bytes)
    // The scheduler could not vouch for this digest: only a seed peer's word counts (it fetched the
    // piece from the origin itself and is operator infrastructure). Any number of other parents
    // agreeing proves nothing — colluding peers can agree on a lie — so the bytes are dropped, that
    // parent is not asked for the piece again, and a seed (or in the end the origin) serves it.
    if (s.id !== ORIGIN && expected[index] === null && !(s.seed && s.claimed.get(index) === digest)) {
      if (!this.inflight.has(index)) ledger.clearArriving(index)
      if (s.have[index] === 1 && !s.retired) {
        s.have[index] = 0
        this.availabilityCount[index]--
      }
      return
    }
    const want = expected[index] ?? (s.id === ORIGIN ? null : s.claimed.get(index) ?? null)
    if (want !== null && want !== digest) {
      // A corrupt piece: never stored, the parent is dropped and reported as bad.
      if (!this.inflight.has(index)) ledger.clearArriving(index)
      this.report(new PieceFailed({ ...this.base, index, parentId: s.parent?.peerId ?? null, temporary: false, reason: `digest mismatch: got ${digest}, expected ${want}` }))
      if (s.id === ORIGIN) return this.fail(`origin content of piece ${index} does not match the task's digest`, true)
      this.failed.add(s.id)
      this.retire(s)
      return
    }
    this.writing.add(index)
    this.out.push({ _tag: "Write", source: s, index, bytes, digest, millis })
  }

  private onFetchFailed(s: Source, index: number, reason: string, temporary: boolean): void {
    if (!this.inflight.has(index)) this.ledger!.clearArriving(index)
    this.report(new PieceFailed({ ...this.base, index, parentId: s.parent?.peerId ?? null, temporary, reason }))
    s.failures++
    if (s.id === ORIGIN) {
      // `failures` counts failures since the origin last delivered a piece; fetches back off by it.
      const now = this.now()
      this.originDownSince ??= now
      if (now - this.originDownSince >= this.options.originOutageMillis) {
        return this.fail(`origin failing for ${now - this.originDownSince} ms (${s.failures} attempts), last: ${reason}`, true)
      }
      return
    }
    if (!temporary || s.failures >= this.options.parentFailureLimit) {
      this.failed.add(s.id)
      this.retire(s)
    }
  }
}

const EMPTY: Array<PeerCommand> = []
/** No picks (never written to). */
const NO_PICKS: Array<number> = []
const bySeq = (a: Source, b: Source): number => a.seq - b.seq
const EMPTY_SLOT: PeerCommand = { _tag: "Finish" }
const PROBE: PeerCommand = { _tag: "Probe" }
const FINISH: PeerCommand = { _tag: "Finish" }
