// Moving piece bytes: from a parent peer, or a byte range of the origin.
import { Context, type Effect } from "effect"
import type { Host, TaskId } from "../domain.ts"
import type { OriginFailed, TransferFailed } from "../errors.ts"
import type { PieceAvailability } from "../protocol.ts"

export interface ParentAddress {
  readonly peerId: string
  readonly host: Host
}

export interface OriginRequest {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
}

export class PieceTransfer extends Context.Service<PieceTransfer, {
  /** Long-poll: answers once the parent's ledger version exceeds `since` (at once if it already does). */
  availability(parent: ParentAddress, taskId: TaskId, since: number): Effect.Effect<PieceAvailability, TransferFailed>
  fetchPiece(parent: ParentAddress, taskId: TaskId, index: number): Effect.Effect<Uint8Array, TransferFailed>
}>()("damselfly/core/PieceTransfer") {}

export class Origin extends Context.Service<Origin, {
  /** The content length, from a HEAD (or a 0-byte range) request. */
  probe(request: OriginRequest): Effect.Effect<{ readonly contentLength: number }, OriginFailed>
  fetchRange(request: OriginRequest, offset: number, length: number): Effect.Effect<Uint8Array, OriginFailed>
}>()("damselfly/core/Origin") {}
