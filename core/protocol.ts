// The wire vocabulary. Three conversations: peer → scheduler (reports and requests for parents),
// scheduler → peer (what to do), peer ↔ peer (what a parent holds; a piece). Tagged unions so each
// world can route on `_tag`, and Schemas so every boundary decodes and names the field that is wrong.
import { Schema } from "effect"
import { Host, NonNegativeInt, PeerId, PositiveInt, Sha256Hex, Task, TaskId } from "./domain.ts"

// ---------------------------------------------------------------- peer → scheduler

export const PieceEntry = Schema.Struct({ index: NonNegativeInt, digest: Sha256Hex })
export type PieceEntry = typeof PieceEntry.Type

export class AnnounceHost extends Schema.TaggedClass<AnnounceHost>()("AnnounceHost", {
  host: Host
}) {}

export class RegisterPeer extends Schema.TaggedClass<RegisterPeer>()("RegisterPeer", {
  peerId: PeerId,
  taskId: TaskId,
  url: Schema.String,
  host: Host,
  /** Known when the peer probed the origin or imported the content itself. */
  contentLength: Schema.NullOr(NonNegativeInt),
  pieceLength: PositiveInt,
  /** Pieces already on disk (a restart, or a move to another scheduler). */
  finishedPieces: Schema.Array(NonNegativeInt),
  /** Only the task's metadata is wanted (a HEAD or stat), not a download. */
  metadataOnly: Schema.Boolean,
  /** Digests of the finished pieces, sent by a seed peer (which fetched them from the origin) when it re-registers. */
  pieceDigests: Schema.optionalKey(Schema.Array(PieceEntry))
}) {}

export class DownloadStarted extends Schema.TaggedClass<DownloadStarted>()("DownloadStarted", {
  peerId: PeerId,
  taskId: TaskId
}) {}

export class BackToSourceStarted extends Schema.TaggedClass<BackToSourceStarted>()("BackToSourceStarted", {
  peerId: PeerId,
  taskId: TaskId,
  contentLength: NonNegativeInt
}) {}

export class PieceFinished extends Schema.TaggedClass<PieceFinished>()("PieceFinished", {
  peerId: PeerId,
  taskId: TaskId,
  index: NonNegativeInt,
  /** null when the piece came from the origin. */
  parentId: Schema.NullOr(PeerId),
  digest: Sha256Hex,
  length: PositiveInt,
  costMillis: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
}) {}

export class PieceFailed extends Schema.TaggedClass<PieceFailed>()("PieceFailed", {
  peerId: PeerId,
  taskId: TaskId,
  index: NonNegativeInt,
  parentId: Schema.NullOr(PeerId),
  /** A temporary failure (timeout, busy) does not make the parent bad; a digest mismatch does. */
  temporary: Schema.Boolean,
  reason: Schema.String
}) {}

export class RescheduleParents extends Schema.TaggedClass<RescheduleParents>()("RescheduleParents", {
  peerId: PeerId,
  taskId: TaskId,
  blockedParents: Schema.Array(PeerId),
  reason: Schema.String,
  /** A periodic re-announce that wants more parents: one round, and never a verdict such as back-to-source. */
  refresh: Schema.optionalKey(Schema.Boolean)
}) {}

export class DownloadFinished extends Schema.TaggedClass<DownloadFinished>()("DownloadFinished", {
  peerId: PeerId,
  taskId: TaskId,
  contentLength: NonNegativeInt
}) {}

export class DownloadFailed extends Schema.TaggedClass<DownloadFailed>()("DownloadFailed", {
  peerId: PeerId,
  taskId: TaskId,
  reason: Schema.String
}) {}

export class LeavePeer extends Schema.TaggedClass<LeavePeer>()("LeavePeer", {
  peerId: PeerId,
  taskId: TaskId
}) {}

/** Messages that ask the scheduler something and wait for its answer. */
export const ScheduleRequest = Schema.Union([AnnounceHost, RegisterPeer, RescheduleParents])
export type ScheduleRequest = typeof ScheduleRequest.Type

/** Messages that only inform the scheduler. */
export const PeerReport = Schema.Union([
  DownloadStarted,
  BackToSourceStarted,
  PieceFinished,
  PieceFailed,
  DownloadFinished,
  DownloadFailed,
  LeavePeer
])
export type PeerReport = typeof PeerReport.Type

/** Several reports in one request (a daemon gathers its per-piece reports for a moment), in order. */
export const PeerReportBatch = Schema.Struct({ reports: Schema.Array(PeerReport) })
export type PeerReportBatch = typeof PeerReportBatch.Type

export const PeerToScheduler = Schema.Union([ScheduleRequest, PeerReport])
export type PeerToScheduler = typeof PeerToScheduler.Type

// ---------------------------------------------------------------- scheduler → peer

export const CandidateParent = Schema.Struct({
  peerId: PeerId,
  host: Host,
  /**
   * Stripe overlays (damselfly): the stripes this parent relays to the child. Piece i is in stripe
   * i mod `stripeCount`; the child takes it from that stripe's parent, and from another holder only
   * when that parent does not have it for a while.
   */
  stripes: Schema.optionalKey(Schema.Array(NonNegativeInt))
})
export type CandidateParent = typeof CandidateParent.Type

export class CandidateParents extends Schema.TaggedClass<CandidateParents>()("CandidateParents", {
  task: Task,
  parents: Schema.Array(CandidateParent),
  /** With a stripe overlay: how many stripes the pieces are dealt into (see CandidateParent.stripes). */
  stripeCount: Schema.optionalKey(PositiveInt)
}) {}

export class NeedBackToSource extends Schema.TaggedClass<NeedBackToSource>()("NeedBackToSource", {
  taskId: TaskId,
  reason: Schema.String
}) {}

export class EmptyTask extends Schema.TaggedClass<EmptyTask>()("EmptyTask", {
  taskId: TaskId
}) {}

export class MetadataOnly extends Schema.TaggedClass<MetadataOnly>()("MetadataOnly", {
  task: Task
}) {}

/** Rounds exhausted, or back-to-source not allowed: the peer decides what to do (usually fail). */
export class ScheduleFailed extends Schema.TaggedClass<ScheduleFailed>()("ScheduleFailed", {
  taskId: TaskId,
  reason: Schema.String
}) {}

/**
 * The answer to AnnounceHost. The epoch changes whenever a scheduler starts with empty state, which
 * tells a host to re-register the tasks it holds so the new scheduler rebuilds its view from peers.
 */
export class HostAnnounced extends Schema.TaggedClass<HostAnnounced>()("HostAnnounced", {
  epoch: Schema.String
}) {}

/** The scheduler does not know this peer (it restarted, or the task moved to it): register again. */
export class NeedRegister extends Schema.TaggedClass<NeedRegister>()("NeedRegister", {
  taskId: TaskId
}) {}

export const SchedulerToPeer = Schema.Union([
  CandidateParents,
  NeedBackToSource,
  EmptyTask,
  MetadataOnly,
  ScheduleFailed,
  HostAnnounced,
  NeedRegister
])
export type SchedulerToPeer = typeof SchedulerToPeer.Type

// ---------------------------------------------------------------- peer ↔ peer


/**
 * What a parent holds, as a delta: the pieces it gained after `since` (its ledger version), and the
 * pieces it is fetching right now. A child long-polls this, so pieces stream on while they arrive.
 */
export class PieceAvailability extends Schema.TaggedClass<PieceAvailability>()("PieceAvailability", {
  taskId: TaskId,
  version: NonNegativeInt,
  contentLength: Schema.NullOr(NonNegativeInt),
  pieceLength: PositiveInt,
  pieces: Schema.Array(PieceEntry),
  arriving: Schema.Array(NonNegativeInt),
  /** The parent holds every piece. */
  complete: Schema.Boolean
}) {}

export class PieceRequest extends Schema.TaggedClass<PieceRequest>()("PieceRequest", {
  taskId: TaskId,
  index: NonNegativeInt
}) {}

/** Header of a piece on the wire; the bytes follow it. */
export class PieceData extends Schema.TaggedClass<PieceData>()("PieceData", {
  taskId: TaskId,
  index: NonNegativeInt,
  digest: Sha256Hex,
  length: PositiveInt
}) {}

// ---------------------------------------------------------------- trusted construction

/**
 * A message built from fields its own process produced (a peer's per-piece report, a scheduler's task
 * description), without the constructor's Schema pass, which costs ~10× the object. The Schema still
 * guards every process boundary: runtime's HTTP layers decode what arrives, naming a bad field.
 * `test/sim-trusted-messages.test.ts` checks that what the simulator sends this way passes the Schema.
 */
export const trusted = <C extends abstract new (fields: never) => object>(
  Class: C & { readonly identifier: string; readonly fields: object },
  fields: Omit<InstanceType<C>, "_tag">
): InstanceType<C> => {
  const m = Object.create(Class.prototype) as { _tag?: string }
  // A tagged class's tag is its identifier, and comes first, as the constructor puts it.
  if ("_tag" in Class.fields) m._tag = Class.identifier
  return Object.assign(m, fields) as InstanceType<C>
}

/** Fills a PieceFinished's fields in the constructor's order (its prototype is PieceFinished's, below). */
function PieceFinishedFields(
  this: { -readonly [K in keyof PieceFinished]: PieceFinished[K] },
  peerId: string,
  taskId: string,
  index: number,
  parentId: string | null,
  digest: string,
  length: number,
  costMillis: number
) {
  this._tag = "PieceFinished"
  this.peerId = peerId
  this.taskId = taskId as PieceFinished["taskId"]
  this.index = index
  this.parentId = parentId
  this.digest = digest
  this.length = length
  this.costMillis = costMillis
}
PieceFinishedFields.prototype = PieceFinished.prototype

/**
 * `trusted(PieceFinished, …)` (one per piece per peer) as a constructor call: an object with a fixed
 * layout from the start, where Object.create and Object.assign cost ~5× as much. The same object: a
 * PieceFinished with the same fields in the same order.
 */
export const trustedPieceFinished = (
  peerId: string,
  taskId: string,
  index: number,
  parentId: string | null,
  digest: string,
  length: number,
  costMillis: number
): PieceFinished =>
  new (PieceFinishedFields as unknown as new(...args: Parameters<typeof trustedPieceFinished>) => PieceFinished)(
    peerId,
    taskId,
    index,
    parentId,
    digest,
    length,
    costMillis
  )
