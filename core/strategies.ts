// The field's distribution strategies as configurations of the one core: a scheduler config, an
// evaluator, a parent-handout policy and peer options (the piece picker's knobs). Worlds pick one by
// name; none of them is a separate code path.
import type { PeerOptions } from "./peer/conductor.ts"
import { damselflyPieceLengthFor, pieceLengthFor } from "./piece-layout.ts"
import { defaultSchedulerConfig, type SchedulerConfig } from "./scheduler/config.ts"
import { damselflyEvaluator, dragonflyEvaluator, dragonflyLegacyEvaluator, type Evaluator } from "./scheduler/evaluator.ts"
import { completeHoldersOnly, dagTopK, noParents, type ParentHandout, scoredMesh, stripeForest, trackerList } from "./scheduler/handout.ts"

export const strategyNames = [
  "direct",
  "p2p",
  "dragonfly",
  "dragonfly-legacy",
  "kraken",
  "spegel",
  "bittorrent",
  "damselfly"
] as const
export type StrategyName = typeof strategyNames[number]

export interface StrategyDefinition {
  readonly name: StrategyName
  readonly description: string
  readonly config: SchedulerConfig
  readonly evaluator: Evaluator
  readonly handout: ParentHandout
  readonly peerOptions: Partial<PeerOptions>
  /** Whether seed peers take part (Kraken's origin cluster plays that role for `kraken`). */
  readonly seeds: boolean
  /** The strategy's piece length for content of this length (a task's id depends on it). */
  readonly pieceLength: (contentLength: number) => number
  /** Pieces a peer uploads at once (BitTorrent's unchoke slots); absent: the host's upload slots. */
  readonly uploadSlots?: number
}

/** A strategy's piece length: `override` when given, else its own rule (Dragonfly's unless it has one). */
export const strategyPieceLength = (strategy: StrategyName, contentLength: number, override?: number): number =>
  override !== undefined ? pieceLengthFor(contentLength, override) : strategies[strategy].pieceLength(contentLength)

const dragonfly: Omit<StrategyDefinition, "name" | "description"> = {
  config: defaultSchedulerConfig,
  evaluator: dragonflyEvaluator,
  handout: dagTopK(defaultSchedulerConfig.filterParentLimit, defaultSchedulerConfig.candidateParentLimit),
  peerOptions: {},
  seeds: true,
  pieceLength: pieceLengthFor
}

/** Everyone to the origin at once: the first fruitless round already sends a peer there. */
const originOnly: SchedulerConfig = { ...defaultSchedulerConfig, candidateParentLimit: 0, backToSourceCount: Infinity, retryBackToSourceLimit: 1 }

export const strategies: Readonly<Record<StrategyName, StrategyDefinition>> = {
  direct: {
    name: "direct",
    description: "every peer from the origin",
    config: originOnly,
    evaluator: dragonflyEvaluator,
    handout: noParents,
    peerOptions: {},
    seeds: false,
    pieceLength: pieceLengthFor
  },
  p2p: { name: "p2p", description: "Dragonfly's defaults (alias of dragonfly)", ...dragonfly },
  dragonfly: {
    name: "dragonfly",
    description: "Dragonfly: 0.6 load, 0.2 IDC, 0.1 location, 0.1 host type; 15 sampled, top 3 parents in a DAG",
    ...dragonfly
  },
  "dragonfly-legacy": {
    name: "dragonfly-legacy",
    description: "Dragonfly's earlier evaluator (finished pieces, upload success, free slots, host type, IDC, location)",
    ...dragonfly,
    evaluator: dragonflyLegacyEvaluator
  },
  kraken: {
    name: "kraken",
    description: "Kraken: tracker hands out up to 50 peers, complete first; 10 connections per blob, 3 requests per peer, rarest first",
    config: { ...defaultSchedulerConfig, candidateParentLimit: 10, handoutSample: 100 },
    evaluator: dragonflyEvaluator,
    handout: trackerList(50, true),
    // Agents re-announce to the tracker every few seconds and connect to the new peers.
    peerOptions: { concurrentPieces: 30, perParentPieces: 3, refreshParentsMillis: 3_000 },
    seeds: true,
    pieceLength: pieceLengthFor
  },
  spegel: {
    name: "spegel",
    description: "Spegel: only nodes holding the whole blob serve it, whole blob from one node, else the origin",
    config: { ...originOnly, candidateParentLimit: 1, handoutSample: Number.MAX_SAFE_INTEGER },
    evaluator: dragonflyEvaluator,
    handout: completeHoldersOnly(1),
    peerOptions: { concurrentPieces: 4, perParentPieces: 4, sequentialBias: true },
    seeds: false,
    pieceLength: pieceLengthFor
  },
  bittorrent: {
    name: "bittorrent",
    description: "BitTorrent as aria2 runs it: random peer lists from a tracker, 4 unchoked uploads per peer, each connection filled with the rarest pieces that peer holds, endgame",
    // A tracker's answer (50 peers, aria2's numwant); aria2 connects to up to 55 (--bt-max-peers).
    config: { ...defaultSchedulerConfig, candidateParentLimit: 55, handoutSample: 50 },
    evaluator: dragonflyEvaluator,
    handout: trackerList(50, false),
    // aria2 fills a connection with pieces until it has maxOutstandingRequest (6, doubling up to 256) 16 KiB
    // blocks missing: one 1 MiB piece (64 blocks) at a time per connection, pipelined, from every peer
    // that unchokes it (no cap over connections but --bt-max-peers).
    // At most 55 peers connected (--bt-max-peers): a re-announce adds new peers only up to that.
    peerOptions: { concurrentPieces: 55, perParentPieces: 1, endgame: true, refreshParentsMillis: 5_000, pickPerSource: true, maxParents: 55 },
    seeds: true,
    // A torrent's piece length is its creator's choice: a scenario names it (`file.pieceLengths`, the
    // swarm benchmark's `mktorrent -l 20` = 1 MiB); without one, Dragonfly's rule.
    pieceLength: pieceLengthFor,
    // aria2's choking (BtLeecherStateChoke/BtSeederStateChoke): 3 regular unchokes plus 1 optimistic.
    uploadSlots: 4
  },
  damselfly: {
    name: "damselfly",
    description: "Damselfly: stripe trees (SplitStream) per IDC and rack, chained across the WAN; the seed sends each piece once per root, every peer forwards one of 2 stripes to children in proportion to its uplink",
    // Short rounds: a flash crowd is answered as soon as the seed knows the length, not 50 ms later.
    // The seed in the origin's IDC (when the deployment names it): its fetch crosses no WAN link.
    config: { ...defaultSchedulerConfig, candidateParentLimit: 8, handoutSample: 40, retryIntervalMillis: 5, seedNearOrigin: true },
    evaluator: damselflyEvaluator,
    handout: stripeForest(2, 2),
    // One piece in flight per parent: a parent's children share its uplink, so a second request would
    // only halve the rate of the first and double the time each piece takes per hop.
    peerOptions: { concurrentPieces: 8, perParentPieces: 1, endgame: true, refreshParentsMillis: 1_000, firstRefreshMillis: 100, refreshBackoffMaxMillis: 8_000, originPieces: 2, stripeGracePieces: 12, remoteParentPieces: 6, parentRetryMillis: 20 },
    seeds: true,
    // Enough pieces to pipeline through the trees' depth (core/piece-layout.ts).
    pieceLength: damselflyPieceLengthFor
  }
}
