// PLACEHOLDER signature — the implementation is being written now.
import { Effect } from "effect"
import type { Host, TaskId } from "../domain.ts"
import { DownloadError } from "../errors.ts"
import type { PieceStore } from "../services/piece-store.ts"
import type { Origin, PieceTransfer } from "../services/piece-transfer.ts"
import type { SchedulerChannel } from "../services/scheduler-channel.ts"
import type { Sha256 } from "../services/sha256.ts"

export interface DownloadRequest {
  readonly url: string
  readonly taskId: TaskId
  readonly pieceLength: number
  readonly peerId: string
  readonly host: Host
  readonly headers: Readonly<Record<string, string>>
}

export interface PeerOptions {
  /** Piece downloads in flight at once, over all parents. */
  readonly concurrentPieces: number
  /** Prefer low piece indices (streaming to a reader) over pure rarest-first. */
  readonly sequentialBias: boolean
  /** No progress for this long → ask the scheduler for other parents. */
  readonly stallTimeoutMillis: number
  readonly disableBackToSource: boolean
}

export const defaultPeerOptions: PeerOptions = {
  concurrentPieces: 4,
  sequentialBias: false,
  stallTimeoutMillis: 10_000,
  disableBackToSource: false
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

export const downloadTask = (
  _request: DownloadRequest,
  _options: PeerOptions = defaultPeerOptions
): Effect.Effect<DownloadResult, DownloadError, PeerServices> =>
  Effect.fail(new DownloadError({ message: "not implemented yet" }))
