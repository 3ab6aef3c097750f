// How content is cut into pieces. Dragonfly's rule: about 500 pieces per task, a power of two in length,
// never below 4 MiB (per-piece overhead) nor above 64 MiB (latency to first byte from a parent).
import type { Piece } from "./domain.ts"

export const MiB = 1024 * 1024
export const MIN_PIECE_LENGTH = 4 * MiB
export const MAX_PIECE_LENGTH = 64 * MiB
const TARGET_PIECE_COUNT = 500

export const pieceLengthFor = (contentLength: number, override?: number): number => {
  if (override !== undefined) {
    if (!Number.isInteger(override) || override < 1) {
      throw new RangeError(`pieceLength: expected a positive integer, got ${override}`)
    }
    return override
  }
  const target = Math.max(1, Math.ceil(contentLength / TARGET_PIECE_COUNT))
  const pow2 = 2 ** Math.ceil(Math.log2(target))
  return Math.min(MAX_PIECE_LENGTH, Math.max(MIN_PIECE_LENGTH, pow2))
}

export const pieceCountOf = (contentLength: number, pieceLength: number): number =>
  contentLength === 0 ? 0 : Math.ceil(contentLength / pieceLength)

/** The length of piece `index` (only the last one may be short), without building a Piece. */
export const pieceLengthAt = (contentLength: number, pieceLength: number, index: number): number =>
  Math.min(pieceLength, contentLength - index * pieceLength)

export const pieceAt = (
  contentLength: number,
  pieceLength: number,
  index: number,
  digest: string | null = null
): Piece => {
  const offset = index * pieceLength
  return { index, offset, length: Math.min(pieceLength, contentLength - offset), digest }
}
