// How content is cut into pieces. Dragonfly's rule: about 500 pieces per task, a power of two in length,
// never below 4 MiB (per-piece overhead) nor above 64 MiB (latency to first byte from a parent).
// Damselfly's own rule (damselflyPieceLengthFor) goes down to 1.5 MiB: see there.
import type { Piece } from "./domain.ts"

export const MiB = 1024 * 1024
export const MIN_PIECE_LENGTH = 4 * MiB
export const MAX_PIECE_LENGTH = 64 * MiB
const TARGET_PIECE_COUNT = 500

/** The smallest power of two ≥ contentLength / target, within [min, max]. */
const powerOfTwoLength = (contentLength: number, target: number, min: number, max: number): number => {
  const wanted = Math.max(1, Math.ceil(contentLength / target))
  return Math.min(max, Math.max(min, 2 ** Math.ceil(Math.log2(wanted))))
}

const checkedOverride = (override: number): number => {
  if (!Number.isInteger(override) || override < 1) {
    throw new RangeError(`pieceLength: expected a positive integer, got ${override}`)
  }
  return override
}

export const pieceLengthFor = (contentLength: number, override?: number): number =>
  override !== undefined ? checkedOverride(override) : powerOfTwoLength(contentLength, TARGET_PIECE_COUNT, MIN_PIECE_LENGTH, MAX_PIECE_LENGTH)

/** Damselfly's floor. A piece is forwarded only once whole and verified, so each hop of a stripe tree
 *  costs one piece time and a tree d hops deep ends about d/M of the transfer after the seed (M pieces):
 *  with Dragonfly's 4 MiB floor a 128 MiB task has 32 pieces, and 16 hosts 4–5 hops deep end 1.34× the
 *  bound in the simulator (2 MiB: 1.20×, 1.5 MiB: 1.17×, 1 MiB: 1.15×). Lower costs more than it gains:
 *  each piece is an HTTP GET with one piece in flight per parent, an availability line and a report
 *  (~5–7 ms of daemon CPU per piece moved in the swarm benchmark, which is CPU-bound on its 2 cores): real
 *  16-host runs took a median 14.47 s at 1.5 MiB against 14.86 s at 2 MiB, and 1 MiB used a fifth more CPU
 *  for no gain (14.54 s, one run of five at 17.6 s). In the library (`damselfly library`, scale 1) 1.5 MiB
 *  against 2 MiB improves 11 of 17 cases (spegel-matrix 100MB-4layers-create 1.29× → 1.19×, dragonfly-v1
 *  1.10× → 1.08×) and worsens one (10MB-1layer-rolling 1.21× → 1.24×). Not a power of two: 1.5 MiB is a
 *  multiple of every page and block size that matters. Before the stripe grace ran from the stripe
 *  parent's last delivery (core/peer/machine.ts `mayServe`) small pieces were far worse in dragonfly-v1
 *  (1.5 MiB 1.63×): a fast seed shows its roots every piece at once, and the grace, counted in piece
 *  times, expired sooner. */
export const DAMSELFLY_MIN_PIECE_LENGTH = 1.5 * MiB

/** Damselfly's rule: Dragonfly's (about 500 pieces, a power of two, at most 64 MiB) with a 1.5 MiB floor,
 *  so never fewer pieces than Dragonfly's and up to 2.67 times as many below 1 GiB. */
export const damselflyPieceLengthFor = (contentLength: number, override?: number): number =>
  override !== undefined
    ? checkedOverride(override)
    : powerOfTwoLength(contentLength, TARGET_PIECE_COUNT, DAMSELFLY_MIN_PIECE_LENGTH, MAX_PIECE_LENGTH)

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
