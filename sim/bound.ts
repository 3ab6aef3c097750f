// Lower bounds on the slowest peer's completion time: what no strategy can beat, so results can say how
// far each one is from it. Pure arithmetic over rates; sim/run.ts feeds it the world's hosts and links.

/**
 * Kumar–Ross lower bound on the time for N peers to each receive F bytes: the origin must send one
 * copy, the slowest downlink must take one, and all uploaders together must send N copies.
 */
export const kumarRossBound = (
  sizeBytes: number,
  originUpload: number,
  downloads: ReadonlyArray<number>,
  uploads: ReadonlyArray<number>
): number => {
  const n = downloads.length
  if (n === 0) return 0
  const dMin = Math.min(...downloads)
  const sumU = uploads.reduce((a, b) => a + b, 0)
  return Math.max(sizeBytes / originUpload, sizeBytes / dMin, (n * sizeBytes) / (originUpload + sumU))
}

/** (F/u)·(1 + ⌊log2 N⌋/M): the best any piece-wise schedule can do with N peers and a server all at u. */
export const discreteOptimum = (sizeBytes: number, upload: number, peers: number, pieces: number): number =>
  (sizeBytes / upload) * (1 + Math.floor(Math.log2(Math.max(1, peers))) / Math.max(1, pieces))

export interface BoundIdc {
  readonly name: string
  /** Its WAN links' rate, each way (undefined: not a bottleneck). */
  readonly wanBytesPerSecond?: number | undefined
  /** Peers in it that must receive the content (and hold nothing at the start). */
  readonly peers: number
}

/**
 * The WAN term: every IDC with peers but without the origin must take at least one copy through its
 * WAN downlink (F / its WAN rate), and if there is any such IDC, one copy must leave the origin's IDC
 * through that IDC's WAN uplink (F / its WAN rate). 0 when no WAN link is in the way.
 */
export const wanBound = (sizeBytes: number, originIdc: string, idcs: ReadonlyArray<BoundIdc>): number => {
  let bound = 0
  let remote = false
  for (const idc of idcs) {
    if (idc.peers === 0 || idc.name === originIdc) continue
    remote = true
    if (idc.wanBytesPerSecond !== undefined) bound = Math.max(bound, sizeBytes / idc.wanBytesPerSecond)
  }
  const home = idcs.find((i) => i.name === originIdc)?.wanBytesPerSecond
  if (remote && home !== undefined) bound = Math.max(bound, sizeBytes / home)
  return bound
}

/**
 * The rack term: the origin sits outside every rack, so every oversubscribed rack with peers must take
 * at least one copy through its downlink (F / its rate). `rackDownlinks`: the rate of each such rack.
 */
export const rackBound = (sizeBytes: number, rackDownlinks: ReadonlyArray<number>): number =>
  rackDownlinks.reduce((b, rate) => Math.max(b, sizeBytes / rate), 0)

/** How many copies must cross between IDCs at least: one into each IDC that has peers and not the origin. */
export const crossIdcMinimumCopies = (originIdc: string, idcs: ReadonlyArray<BoundIdc>): number =>
  idcs.filter((i) => i.peers > 0 && i.name !== originIdc).length
