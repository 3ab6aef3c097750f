// How a scheduler hands out parents: the part of a strategy that decides the overlay. Dragonfly's
// is a DAG with top-K scored parents; trackers (Kraken, BitTorrent) hand out random peer lists that
// form a mesh; Spegel only points at peers that hold the whole blob. All of them see the same
// filtered candidates; the scheduler keeps the DAG only for policies that ask for it.
import type { Evaluator, HostLoad, PeerView } from "./evaluator.ts"

export interface HandoutContext {
  readonly child: PeerView
  /** The task's peers that pass the common filter (not itself, not its host, not blocklisted, active, not bad), in random order. */
  readonly eligible: ReadonlyArray<PeerView>
  readonly totalPieces: number
  readonly evaluator: Evaluator
  loadOf(hostId: string): HostLoad
  /** True when parent → child keeps the task's DAG acyclic. */
  canAddEdge(parentId: string, childId: string): boolean
}

export interface ParentHandout {
  readonly name: string
  /** Handed-out parents become DAG edges (and count against upload slots); mesh policies leave this false. */
  readonly dag: boolean
  select(ctx: HandoutContext): ReadonlyArray<PeerView>
  /**
   * A stripe overlay instead of a scored choice (core/scheduler/stripe-forest.ts): peers are dealt
   * into `count` stripes and each gets, per stripe, its parent in that stripe's tree of `fanout`.
   */
  readonly stripes?: { readonly count: number; readonly fanout: number }
}

/**
 * Damselfly's: stripe trees (see stripe-forest.ts). `select` is only the fallback for a peer the
 * forest cannot place (it never is, for a registered peer): the scored mesh.
 */
export const stripeForest = (count: number, fanout: number = count): ParentHandout => ({
  ...scoredMesh(count, fanout),
  name: "stripe-forest",
  stripes: { count, fanout }
})

/** Dragonfly: sample `sample` candidates, drop full hosts and cycle-making edges, score, keep the top `k`. */
export const dagTopK = (sample: number, k: number): ParentHandout => ({
  name: "dag-top-k",
  dag: true,
  select: (ctx) => {
    const scored: Array<{ p: PeerView; s: number }> = []
    for (const p of ctx.eligible.slice(0, sample)) {
      const load = ctx.loadOf(p.host.id)
      if (load.uploads >= p.host.uploadSlots) continue
      if (!ctx.canAddEdge(p.id, ctx.child.id)) continue
      scored.push({ p, s: ctx.evaluator.score(p, load, ctx.child, ctx.totalPieces) })
    }
    // Stable sort: ties keep the random order.
    scored.sort((a, b) => b.s - a.s)
    return scored.slice(0, k).map((x) => x.p)
  }
})

const isComplete = (p: PeerView, total: number) => p.state === "succeeded" || (total > 0 && p.finishedPieces >= total)

/**
 * A tracker's peer list: up to `limit` random peers; with `completeFirst` (Kraken), peers holding the
 * whole blob first, then seeders (Kraken's origin cluster), then the rest.
 */
export const trackerList = (limit: number, completeFirst: boolean): ParentHandout => ({
  name: completeFirst ? "tracker-complete-first" : "tracker-random",
  dag: false,
  select: (ctx) => {
    if (!completeFirst) return ctx.eligible.slice(0, limit)
    const rank = (p: PeerView) => (isComplete(p, ctx.totalPieces) ? 0 : p.host.type === "seed" ? 1 : 2)
    return [...ctx.eligible].sort((a, b) => rank(a) - rank(b)).slice(0, limit)
  }
})

/** Spegel: a node serves a blob only once it holds all of it; the whole blob comes from one such node. */
export const completeHoldersOnly = (k: number): ParentHandout => ({
  name: "complete-holders-only",
  dag: false,
  select: (ctx) => ctx.eligible.filter((p) => isComplete(p, ctx.totalPieces)).slice(0, k)
})

/** No parents at all: every peer goes to the origin. */
export const noParents: ParentHandout = { name: "none", dag: false, select: () => [] }

/**
 * Damselfly's own: a mesh (no DAG, so two peers can trade pieces both ways) of up to `k` parents,
 * ranked by the evaluator. A parent takes at most `fanout` × (its upload / the child's download)
 * children at once, so a seed that is still fetching feeds a few peers at full speed, which relay,
 * instead of splitting its uplink across everyone who wants the newest piece.
 */
export const scoredMesh = (k: number, fanout: number, seedChildren?: number): ParentHandout => ({
  name: "scored-mesh",
  dag: false,
  select: (ctx) => {
    const ranked = ctx.eligible
      .map((p) => ({ p, load: ctx.loadOf(p.host.id), s: ctx.evaluator.score(p, ctx.loadOf(p.host.id), ctx.child, ctx.totalPieces) }))
      .sort((a, b) => b.s - a.s)
    // With super-seeding a seed serves one child per stripe; more children would only queue at it.
    const cap = (p: PeerView) =>
      seedChildren !== undefined && p.host.type === "seed"
        ? seedChildren
        : Math.max(1, Math.round(fanout * p.host.uploadBandwidth / ctx.child.host.downloadBandwidth))
    const open = ranked.filter((x) => x.load.uploads < cap(x.p))
    // Everyone at their fan-out: better the least loaded than no parent (which would send the peer to the origin).
    const fallback = seedChildren === undefined ? ranked : ranked.filter((x) => x.p.host.type !== "seed")
    const chosen = open.length > 0 ? open : [...(fallback.length > 0 ? fallback : ranked)].sort((a, b) => a.load.uploads - b.load.uploads)
    return chosen.slice(0, k).map((x) => x.p)
  }
})
