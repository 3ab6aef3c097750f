// The domain: what is distributed (Task, Piece), who takes part (Host, Peer). Every type that crosses a
// process boundary is a Schema so both worlds decode it the same way.
import { Schema } from "effect"

export const Sha256Hex = Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/)).annotate({
  description: "a sha256 digest as 64 lowercase hex characters"
})
export type Sha256Hex = typeof Sha256Hex.Type

export const TaskId = Sha256Hex.annotate({ description: "a task id: 64 lowercase hex characters" })
export type TaskId = typeof TaskId.Type

export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
export const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** What a peer knows about the content: length and piece layout, and per-piece digests once known. */
export class Task extends Schema.Class<Task>("damselfly/Task")({
  id: TaskId,
  url: Schema.String,
  contentLength: NonNegativeInt,
  pieceLength: PositiveInt,
  /** Digest of piece i, or null while nobody has fetched it from the origin yet. */
  pieceDigests: Schema.Array(Schema.NullOr(Sha256Hex))
}) {}

export const Piece = Schema.Struct({
  index: NonNegativeInt,
  offset: NonNegativeInt,
  length: PositiveInt,
  digest: Schema.NullOr(Sha256Hex)
})
export type Piece = typeof Piece.Type

export const HostType = Schema.Literals(["normal", "seed"])
export type HostType = typeof HostType.Type

export class Host extends Schema.Class<Host>("damselfly/Host")({
  id: Schema.NonEmptyString,
  ip: Schema.String,
  /** Port of the upload server other peers fetch pieces from. */
  port: NonNegativeInt,
  idc: Schema.String,
  /** Dragonfly-style location, "country|province|city|zone": a shared prefix means nearby. */
  location: Schema.String,
  type: HostType,
  /** Capacities in bytes per second. */
  uploadBandwidth: PositiveInt,
  downloadBandwidth: PositiveInt,
  /** How many pieces this host uploads at once at most. */
  uploadSlots: PositiveInt
}) {}

export const PeerState = Schema.Literals([
  "pending",
  "received-normal",
  "running",
  "back-to-source",
  "succeeded",
  "failed",
  "leave"
])
export type PeerState = typeof PeerState.Type

/** A peer is one host taking part in one task. */
export const PeerId = Schema.NonEmptyString
export type PeerId = typeof PeerId.Type

/** A host takes part in a task as one peer, under a stable id, so it can re-register after a restart. */
export const peerIdOf = (hostId: string, taskId: TaskId): PeerId => `${hostId}/${taskId.slice(0, 16)}`

export const Peer = Schema.Struct({
  id: PeerId,
  taskId: TaskId,
  host: Host,
  state: PeerState
})
export type Peer = typeof Peer.Type
