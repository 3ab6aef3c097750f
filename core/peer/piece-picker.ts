// Which pieces to fetch next, and from whom. Pure functions: the conductor owns the state, the
// picker only reads it, so its invariants are checked by property tests without any world.

export interface PickerView {
  readonly pieceCount: number
  /** Parents currently offering piece i (0 = nobody has it). */
  readonly availability: ArrayLike<number>
  /** True when we still need piece i and nobody is fetching it. */
  wanted(index: number): boolean
  /** Optional: nonzero where a piece is certainly not wanted (held), so a scan skips it without asking `wanted`. */
  readonly skip?: ArrayLike<number>
  /** Optional: only pieces where this is nonzero (what one source holds: BitTorrent picks per connection). */
  readonly holder?: ArrayLike<number>
  /**
   * Optional: the first `candidateCount` entries, in any order and without repeats, include every piece
   * with availability > 0 (a superset is fine). A few picks then look at these instead of every piece
   * (a peer mid-download is offered a handful of the pieces it lacks); the answer is the same.
   */
  readonly candidates?: ArrayLike<number>
  readonly candidateCount?: number
}

/**
 * Up to `max` pieces, rarest first among pieces some source holds; equally rare pieces are taken
 * from a random rotation (`offset`) so that peers sharing parents spread over different pieces.
 * With `sequential`, pieces go in index order instead (a reader is streaming the content).
 */
export const pickPieces = (view: PickerView, max: number, offset: number, sequential: boolean): Array<number> => {
  if (max <= 0 || view.pieceCount === 0) return []
  const n = view.pieceCount
  if (!sequential && max <= SMALL_PICK) return view.candidates === undefined ? rarestFew(view, max, offset) : rarestFewOf(view, max, offset)
  const candidates: Array<number> = []
  const holder = view.holder
  for (let k = 0; k < n; k++) {
    const i = sequential ? k : (k + offset) % n
    if (view.availability[i] > 0 && (holder === undefined || holder[i] !== 0) && view.wanted(i)) {
      if (sequential && candidates.length >= max) break
      candidates.push(i)
    }
  }
  if (sequential) return candidates.slice(0, max)
  // Stable sort keeps the random rotation as the tie-break.
  candidates.sort((a, b) => view.availability[a] - view.availability[b])
  return candidates.slice(0, max)
}

/** Up to this many picks are selected in one pass instead of sorting every candidate. */
const SMALL_PICK = 16

/**
 * The same answer as the stable sort above, for a few picks (a peer refilling its fetch slots after
 * each piece): one pass over the rotation keeping the `max` rarest seen so far, a later candidate
 * going after earlier ones of equal availability.
 */
const rarestFew = (view: PickerView, max: number, offset: number): Array<number> => {
  const n = view.pieceCount
  const availability = view.availability
  const skip = view.skip
  const holder = view.holder
  const out: Array<number> = []
  for (let k = 0; k < n; k++) {
    let i = k + offset
    if (i >= n) i -= n
    const a = availability[i]
    if (a <= 0 || (skip !== undefined && skip[i] !== 0) || (holder !== undefined && holder[i] === 0)) continue
    // Full, and no rarer than the last kept: it would sort after all of them.
    if (out.length === max && availability[out[max - 1]] <= a) continue
    if (!view.wanted(i)) continue
    let j = out.length === max ? max - 1 : out.length
    while (j > 0 && availability[out[j - 1]] > a) {
      out[j] = out[j - 1]
      j--
    }
    out[j] = i
  }
  return out
}

const positionScratch: Array<number> = []

/**
 * `rarestFew` over `view.candidates` (unordered): the rotation's order becomes an explicit tie-break,
 * a piece's position in the rotation, so the picks are the same as a scan of every piece.
 */
const rarestFewOf = (view: PickerView, max: number, offset: number): Array<number> => {
  const n = view.pieceCount
  const availability = view.availability
  const skip = view.skip
  const holder = view.holder
  const candidates = view.candidates!
  const count = view.candidateCount ?? candidates.length
  const out: Array<number> = []
  // Each kept piece's rotation position, beside `out` (only the first `out.length` are read, all
  // written by this call): scratch shared by every call, as a peer picks after every piece.
  const pos = positionScratch
  for (let c = 0; c < count; c++) {
    const i = candidates[c]
    const a = availability[i]
    if (a <= 0 || (skip !== undefined && skip[i] !== 0) || (holder !== undefined && holder[i] === 0)) continue
    const p = i >= offset ? i - offset : i - offset + n
    if (out.length === max) {
      const last = availability[out[max - 1]]
      if (last < a || (last === a && pos[max - 1] < p)) continue
    }
    if (!view.wanted(i)) continue
    let j = out.length === max ? max - 1 : out.length
    while (j > 0) {
      const b = availability[out[j - 1]]
      if (b < a || (b === a && pos[j - 1] < p)) break
      out[j] = out[j - 1]
      pos[j] = pos[j - 1]
      j--
    }
    out[j] = i
    pos[j] = p
  }
  return out
}

export interface SourceLoad {
  readonly id: string
  /** Upload capacity in bytes/s as the scheduler announced it. */
  readonly uploadBandwidth: number
  /** What this source actually delivered to us, bytes/s (a moving average), once measured. */
  readonly measuredRate?: number | undefined
  /** Our pieces in flight from this source. */
  readonly inflight: number
  /** Our cap on pieces in flight from this source. */
  readonly maxInflight: number
}

/**
 * Among the sources holding a piece, the one with the most spare bandwidth for us: what it delivers
 * (measured once we have fetched from it, else its announced capacity) divided by the pieces we would
 * then have in flight from it. A busy seed announces a wide uplink but delivers little; measuring
 * keeps children from queueing behind it. Returns undefined if all are full.
 */
export const chooseSource = <S extends SourceLoad>(holders: ReadonlyArray<S>, count = holders.length): S | undefined => {
  let best: S | undefined
  let bestShare = -1
  for (let k = 0; k < count; k++) {
    const s = holders[k]
    if (s.inflight >= s.maxInflight) continue
    const share = (s.measuredRate ?? s.uploadBandwidth) / (s.inflight + 1)
    if (share > bestShare) {
      best = s
      bestShare = share
    }
  }
  return best
}
