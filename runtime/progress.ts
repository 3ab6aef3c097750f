// Live progress of the downloads under way on a daemon, for `GET /v1/downloads` (which `damselfly get`
// polls to draw its bar) and for the piece-duration metrics. Bytes are counted as pieces arrive, by
// source, through wrappers around the PieceTransfer and Origin a download uses.
import { Effect } from "effect"
import { Origin, PieceTransfer } from "../core/services/piece-transfer.ts"
import type { PieceLedger } from "../core/piece-ledger.ts"

export interface Progress {
  readonly taskId: string
  readonly url: string
  readonly pieceLength: number
  readonly startedAt: number
  bytesFromPeers: number
  bytesFromOrigin: number
  /** Every piece this download fetched, in the order they arrived (`GET /v1/downloads/{taskId}/pieces`). */
  readonly pieces: Array<PieceRecord>
}

/** One piece fetched: from which source, when asked and when its bytes were in (ms since the epoch). */
export interface PieceRecord {
  readonly index: number
  /** The parent's host id, or "origin". */
  readonly from: string
  readonly startedAt: number
  readonly endedAt: number
}

/** What `GET /v1/downloads` answers for one download. */
export interface ProgressView {
  readonly taskId: string
  readonly url: string
  readonly pieceLength: number
  /** Unknown (null) until the task's length is known (the first answer from a scheduler or the origin). */
  readonly contentLength: number | null
  readonly pieces: number | null
  readonly piecesHeld: number
  /** Bytes of verified pieces held (resumed ones included). */
  readonly completedBytes: number
  readonly bytesFromPeers: number
  readonly bytesFromOrigin: number
  readonly elapsedSeconds: number
}

export const viewOf = (p: Progress, ledger: PieceLedger | undefined, now = Date.now()): ProgressView => {
  const held = ledger?.held() ?? []
  const completedBytes = ledger === undefined
    ? 0
    : held.reduce((sum, i) => sum + Math.min(ledger.pieceLength, ledger.contentLength - i * ledger.pieceLength), 0)
  return {
    taskId: p.taskId,
    url: p.url,
    pieceLength: p.pieceLength,
    contentLength: ledger?.contentLength ?? null,
    pieces: ledger?.pieceCount ?? null,
    piecesHeld: held.length,
    completedBytes,
    bytesFromPeers: p.bytesFromPeers,
    bytesFromOrigin: p.bytesFromOrigin,
    elapsedSeconds: (now - p.startedAt) / 1000
  }
}

export type PieceTimer = (type: "peer" | "origin", seconds: number) => void

/** Counts each piece fetched from a parent into `progress` and times it. */
export const meterPieceTransfer = (inner: PieceTransfer["Service"], progress: Progress, time: PieceTimer): PieceTransfer["Service"] =>
  PieceTransfer.of({
    availability: inner.availability,
    fetchPiece: (parent, taskId, index) =>
      Effect.suspend(() => {
        const started = performance.now()
        const startedAt = Date.now()
        return Effect.tap(inner.fetchPiece(parent, taskId, index), (bytes) =>
          Effect.sync(() => {
            progress.bytesFromPeers += bytes.length
            progress.pieces.push({ index, from: parent.host.id, startedAt, endedAt: Date.now() })
            time("peer", (performance.now() - started) / 1000)
          }))
      })
  })

/** Counts each range fetched from the origin into `progress` and times it. */
export const meterOrigin = (inner: Origin["Service"], progress: Progress, time: PieceTimer): Origin["Service"] =>
  Origin.of({
    probe: inner.probe,
    fetchRange: (request, offset, length) =>
      Effect.suspend(() => {
        const started = performance.now()
        const startedAt = Date.now()
        return Effect.tap(inner.fetchRange(request, offset, length), (bytes) =>
          Effect.sync(() => {
            progress.bytesFromOrigin += bytes.length
            progress.pieces.push({ index: Math.floor(offset / progress.pieceLength), from: "origin", startedAt, endedAt: Date.now() })
            time("origin", (performance.now() - started) / 1000)
          }))
      })
  })
