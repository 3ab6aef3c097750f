// Scoring candidate parents. Replaceable: a strategy supplies its own Evaluator; the filter and the
// top-K handout around it stay the same.
import type { Host, PeerState } from "../domain.ts"

/** What the scheduler knows of a peer when it scores it as a parent. */
export interface PeerView {
  readonly id: string
  readonly host: Host
  readonly state: PeerState
  readonly finishedPieces: number
  readonly pieceCosts: ReadonlyArray<number>
  /** Pieces children fetched from this peer, and fetches from it that failed. */
  readonly uploadsOk?: number
  readonly uploadsFailed?: number
}

export interface HostLoad {
  /** Children currently assigned to any peer of this host. */
  readonly uploads: number
}

export interface Evaluator {
  readonly name: string
  /** Higher is better. */
  score(parent: PeerView, parentLoad: HostLoad, child: PeerView, totalPieces: number): number
  isBadParent(parent: PeerView): boolean
}

const LOCATION_DEPTH = 5

/** Shared leading elements of "a|b|c|d|e" locations, as a fraction of the maximum depth. */
export const locationAffinity = (a: string, b: string): number => {
  if (a === "" || b === "") return 0
  const xs = a.split("|")
  const ys = b.split("|")
  let n = 0
  while (n < Math.min(xs.length, ys.length, LOCATION_DEPTH) && xs[n] === ys[n]) n++
  return n / LOCATION_DEPTH
}

export const idcAffinity = (a: string, b: string): number => (a !== "" && a === b ? 1 : 0)

/** Seed peers first while they are fetching (they hold what nobody else has yet). */
export const hostTypeScore = (parent: PeerView): number => {
  if (parent.host.type === "seed") {
    return parent.state === "received-normal" || parent.state === "running" || parent.state === "back-to-source"
      ? 1
      : 0
  }
  return 0.5
}

/**
 * Dragonfly's bad-node rule: a failed or departed peer is bad; so is one whose last piece took far
 * longer than usual (20× the mean with few samples, mean + 3σ with enough for a normal fit).
 */
export const isBadParentByCost = (parent: PeerView): boolean => {
  if (parent.state === "failed" || parent.state === "leave" || parent.state === "pending") return true
  const costs = parent.pieceCosts
  if (costs.length < 2) return false
  const last = costs[costs.length - 1]
  const prior = costs.slice(0, -1)
  const mean = prior.reduce((a, b) => a + b, 0) / prior.length
  if (prior.length < 30) return last > 20 * mean
  const variance = prior.reduce((a, b) => a + (b - mean) ** 2, 0) / prior.length
  return last > mean + 3 * Math.sqrt(variance)
}

/**
 * Load quality as Dragonfly weighs it (peak bandwidth 0.5, bandwidth duration 0.3, concurrency 0.2),
 * from what a scheduler without host telemetry knows: the share of upload slots in use stands for
 * peak usage and for duration, and concurrency is 1/(1 + uploads).
 */
export const loadQuality = (host: Host, load: HostLoad): number => {
  const free = Math.max(0, 1 - load.uploads / host.uploadSlots)
  return 0.5 * free + 0.3 * free + 0.2 / (1 + load.uploads)
}

/** Dragonfly's current default: 0.6 load quality + 0.2 IDC + 0.1 location + 0.1 host type. */
export const dragonflyEvaluator: Evaluator = {
  name: "dragonfly",
  score: (parent, load, child) =>
    0.6 * loadQuality(parent.host, load) +
    0.2 * idcAffinity(parent.host.idc, child.host.idc) +
    0.1 * locationAffinity(parent.host.location, child.host.location) +
    0.1 * hostTypeScore(parent),
  isBadParent: isBadParentByCost
}

const fraction = (part: number, whole: number) => (whole > 0 ? Math.min(1, part / whole) : 0)

/**
 * Dragonfly's earlier evaluator: finished pieces 0.2, upload success 0.2, free upload slots 0.15,
 * host type 0.15, IDC 0.15, location 0.15.
 */
export const dragonflyLegacyEvaluator: Evaluator = {
  name: "dragonfly-legacy",
  score: (parent, load, child, totalPieces) => {
    const ok = parent.uploadsOk ?? 0
    const failed = parent.uploadsFailed ?? 0
    return (
      0.2 * fraction(parent.finishedPieces, totalPieces) +
      0.2 * (ok + failed === 0 ? 1 : ok / (ok + failed)) +
      0.15 * Math.max(0, 1 - load.uploads / parent.host.uploadSlots) +
      0.15 * hostTypeScore(parent) +
      0.15 * idcAffinity(parent.host.idc, child.host.idc) +
      0.15 * locationAffinity(parent.host.location, child.host.location)
    )
  },
  isBadParent: isBadParentByCost
}

/**
 * Damselfly's: what a child can expect to receive from a parent — its upload bandwidth shared among
 * the children it already serves, relative to the child's own download bandwidth — then topology
 * (same IDC, then same rack via the location prefix) and how far ahead the parent is.
 */
export const damselflyEvaluator: Evaluator = {
  name: "damselfly",
  score: (parent, load, child, totalPieces) => {
    const share = parent.host.uploadBandwidth / (load.uploads + 1)
    const ahead = parent.host.type === "seed" && parent.state !== "succeeded" ? 1 : fraction(parent.finishedPieces, totalPieces)
    return (
      0.4 * fraction(share, child.host.downloadBandwidth) +
      0.25 * idcAffinity(parent.host.idc, child.host.idc) +
      0.15 * locationAffinity(parent.host.location, child.host.location) +
      0.2 * ahead
    )
  },
  isBadParent: isBadParentByCost
}
