// What a simulation run is about: hosts (by IDC, racks, NIC classes), links, latencies, one file or a
// multi-layer image, arrivals (flash crowd, uniform, Poisson, rolling update), departures, strategies.
// Scenario files are TS modules (default export) or YAML; both decode through this Schema, so a bad
// field names itself and what was expected. A file may also hold a family: an array of scenarios
// (cases), each with its own name.
import { Effect, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { extname, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import YAML from "yaml"
import { Fault } from "./faults.ts"
import { strategyNames, strategyPieceLength } from "../core/strategies.ts"

const withDefault = <S extends Schema.Top>(value: S["Encoded"]) =>
  (schema: S) => schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

const Positive = Schema.Number.check(Schema.isGreaterThan(0))
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const BytesPerSecond = Positive.annotate({ description: "bytes per second, > 0" })

export const HostClass = Schema.Struct({
  uploadBytesPerSecond: BytesPerSecond,
  downloadBytesPerSecond: BytesPerSecond,
  /** Children the scheduler may give one host at once. */
  uploadSlots: PositiveInt.pipe(withDefault(50))
})
export type HostClass = typeof HostClass.Type

/** A share of an IDC's peers with their own NICs: heterogeneous hosts. */
export const PeerClass = Schema.Struct({
  /** Relative share of the IDC's peers (weights need not sum to 1). */
  weight: Positive,
  uploadBytesPerSecond: BytesPerSecond,
  downloadBytesPerSecond: BytesPerSecond,
  uploadSlots: PositiveInt.pipe(withDefault(50))
})
export type PeerClass = typeof PeerClass.Type

export const Idc = Schema.Struct({
  name: Schema.NonEmptyString,
  /** Location prefix "country|province|idc"; hosts get "|rackN" appended. */
  location: Schema.NonEmptyString,
  peers: NonNegativeInt,
  seeds: NonNegativeInt.pipe(withDefault(0)),
  racks: PositiveInt.pipe(withDefault(1)),
  /**
   * Rack uplink oversubscription: a rack's uplink (and downlink) to the IDC fabric carries the sum of
   * its hosts' NIC rates divided by this. Absent: a non-blocking fabric (no rack links).
   */
  rackOversubscription: Schema.optionalKey(Positive),
  /** The IDC's link to other IDCs, each way (bytes/s). Absent: IDCs are joined without a bottleneck. */
  wanBytesPerSecond: Schema.optionalKey(BytesPerSecond),
  /**
   * Heterogeneous NICs: the IDC's peers split by weight into these classes (in host order, so each
   * class spreads over the racks). Absent: every peer is of the scenario's `peer` class.
   */
  peerClasses: Schema.optionalKey(Schema.Array(PeerClass).check(Schema.isMinLength(1)))
})
export type Idc = typeof Idc.Type

export const Strategy = Schema.Literals(strategyNames)
export type Strategy = typeof Strategy.Type

/** A piece length per strategy name, each optional. */
const PieceLengths = Schema.Struct(
  Object.fromEntries(strategyNames.map((n) => [n, Schema.optionalKey(PositiveInt)])) as Record<typeof strategyNames[number], Schema.optionalKey<typeof PositiveInt>>
)

export const Layer = Schema.Struct({
  sizeBytes: PositiveInt,
  /** Shown in results; defaults to "layer-N". */
  name: Schema.optionalKey(Schema.NonEmptyString)
})
export type Layer = typeof Layer.Type

/**
 * How peers arrive. "flash": all at t=0. "uniform": uniformly at random in [0, spreadSeconds].
 * "poisson": a Poisson process of `ratePerSecond` from t=0. "rolling": a rolling update in batches of
 * ceil(batchFraction·N) peers (scenario order); batch k+1 starts when every peer of batch k has
 * finished its pull, or `intervalSeconds` after batch k started if that comes first.
 */
export const Arrival = Schema.Struct({
  kind: Schema.Literals(["flash", "uniform", "poisson", "rolling"]).pipe(withDefault("uniform")),
  /** kind "uniform": arrivals spread over [0, spreadSeconds]; 0 = a flash crowd. */
  spreadSeconds: NonNegative.pipe(withDefault(0)),
  /** kind "poisson": mean arrivals per second. */
  ratePerSecond: Schema.optionalKey(Positive),
  /** kind "rolling": the share of peers in each batch, in (0, 1]. */
  batchFraction: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1))),
  /** kind "rolling": start the next batch after this long even if the current one has not finished. */
  intervalSeconds: Schema.optionalKey(Positive)
})
export type Arrival = typeof Arrival.Type

/** Published figures a scenario reproduces, shown beside the simulated ones. */
export const Reported = Schema.Struct({
  source: Schema.NonEmptyString,
  p50Seconds: Schema.optionalKey(NonNegative),
  p99Seconds: Schema.optionalKey(NonNegative),
  p999Seconds: Schema.optionalKey(NonNegative),
  maxSeconds: Schema.optionalKey(NonNegative),
  note: Schema.optionalKey(Schema.String)
})
export type Reported = typeof Reported.Type

export const Scenario = Schema.Struct({
  name: Schema.NonEmptyString,
  file: Schema.Struct({
    url: Schema.NonEmptyString,
    /** The whole file, or with `layers` the whole image (the sum of its layers). */
    sizeBytes: PositiveInt,
    /** Every strategy's piece length; absent: each strategy's own rule (core/strategies.ts), per blob. */
    pieceLength: Schema.optionalKey(PositiveInt),
    /** One strategy's piece length (before `pieceLength`): e.g. a torrent's, for `bittorrent`. */
    pieceLengths: Schema.optionalKey(PieceLengths),
    /**
     * A multi-layer image: a count (sizeBytes split evenly) or each layer's size (summing to
     * sizeBytes). Each layer is its own blob and task; a host pulls all of them at once and its pull
     * is complete when every layer is. Absent: one blob at `url`.
     */
    layers: Schema.optionalKey(Schema.Union([PositiveInt, Schema.Array(Layer).check(Schema.isMinLength(1))]))
  }),
  idcs: Schema.Array(Idc).check(Schema.isMinLength(1)),
  peer: HostClass,
  seed: HostClass,
  origin: Schema.Struct({ idc: Schema.NonEmptyString, uploadBytesPerSecond: BytesPerSecond }),
  /** Where the scheduler runs (control-message latency); defaults to the origin's IDC. */
  scheduler: Schema.optionalKey(Schema.Struct({ idc: Schema.NonEmptyString })),
  latency: Schema.Struct({
    intraIdcRttMs: NonNegative,
    interIdcRttMs: NonNegative
  }),
  arrival: Arrival.pipe(withDefault({})),
  /**
   * Peers leave (gracefully: LeavePeer for what they hold, then they serve nothing) this long after
   * their pull completes, or at `atSeconds` (pulled or not; one that never arrived never starts);
   * `fraction` of them (chosen from the seed), default all. A given host or IDC leaving at a given
   * time is also a `peer-leave` fault.
   */
  departure: Schema.optionalKey(Schema.Struct({
    afterCompletionSeconds: Schema.optionalKey(NonNegative),
    atSeconds: Schema.optionalKey(NonNegative),
    fraction: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)).pipe(withDefault(1))
  })),
  /** Strategies `damselfly sim` runs without --strategy; default: every strategy in core/strategies.ts. */
  strategies: Schema.Array(Strategy).pipe(withDefault([...strategyNames])),
  /** Published figures for this scenario (shown beside the results in the library table). */
  reported: Schema.optionalKey(Reported),
  peerOptions: Schema.Struct({
    concurrentPieces: Schema.optionalKey(PositiveInt),
    sequentialBias: Schema.optionalKey(Schema.Boolean),
    stallTimeoutMillis: Schema.optionalKey(Positive),
    disableBackToSource: Schema.optionalKey(Schema.Boolean)
  }).pipe(withDefault({})),
  /** What goes wrong, and when (sim/faults.ts). Present (even empty) = hosts keep presence with the scheduler. */
  faults: Schema.optionalKey(Schema.Array(Fault)),
  network: Schema.Struct({
    /**
     * How concurrent flows share links: "max-min" (progressive filling, re-solved locally around each
     * change; what TCP converges to, to first order) or "equal-share" (each flow gets an equal part of
     * its uplink and of its downlink; cheaper, wastes capacity a max-min allocation would use).
     */
    sharing: Schema.Literals(["max-min", "equal-share"]).pipe(withDefault("max-min"))
  }).pipe(withDefault({})),
  limits: Schema.Struct({
    /** A run that has not finished by then stops and reports the unfinished peers. */
    maxVirtualSeconds: Positive.pipe(withDefault(3600))
  }).pipe(withDefault({}))
})
export type Scenario = typeof Scenario.Type
export type ScenarioInput = typeof Scenario.Encoded

export class ScenarioError extends Error {
  override readonly name = "ScenarioError"
}

/** Decodes and cross-checks a scenario; throws ScenarioError naming the bad field. */
export const decodeScenario = (input: unknown, source = "scenario"): Scenario => {
  let s: Scenario
  try {
    s = Schema.decodeUnknownSync(Scenario)(input, { errors: "all", onExcessProperty: "error" })
  } catch (e) {
    throw new ScenarioError(`${source}: ${e instanceof Error ? e.message : String(e)}`)
  }
  const idcs = new Set(s.idcs.map((i) => i.name))
  if (idcs.size !== s.idcs.length) throw new ScenarioError(`${source}: idcs: names must be unique`)
  if (!idcs.has(s.origin.idc)) {
    throw new ScenarioError(`${source}: origin.idc: expected one of ${[...idcs].join(", ")}, got ${JSON.stringify(s.origin.idc)}`)
  }
  if (s.scheduler !== undefined && !idcs.has(s.scheduler.idc)) {
    throw new ScenarioError(`${source}: scheduler.idc: expected one of ${[...idcs].join(", ")}, got ${JSON.stringify(s.scheduler.idc)}`)
  }
  if (s.idcs.every((i) => i.peers === 0)) throw new ScenarioError(`${source}: idcs: expected at least one peer`)
  const layers = s.file.layers
  if (Array.isArray(layers)) {
    const sum = layers.reduce((n, l) => n + l.sizeBytes, 0)
    if (sum !== s.file.sizeBytes) {
      throw new ScenarioError(`${source}: file.layers: expected layer sizes summing to file.sizeBytes (${s.file.sizeBytes}), got ${sum}`)
    }
  } else if (typeof layers === "number" && layers > s.file.sizeBytes) {
    throw new ScenarioError(`${source}: file.layers: expected at most file.sizeBytes (${s.file.sizeBytes}) layers, got ${layers}`)
  }
  const a = s.arrival
  const misplaced = (field: string, kinds: string) => new ScenarioError(`${source}: arrival.${field}: only for kind ${kinds}, got kind ${JSON.stringify(a.kind)}`)
  if (a.kind === "poisson" && a.ratePerSecond === undefined) throw new ScenarioError(`${source}: arrival.ratePerSecond: expected a number > 0 for kind "poisson"`)
  if (a.kind === "rolling" && a.batchFraction === undefined) throw new ScenarioError(`${source}: arrival.batchFraction: expected a number in (0, 1] for kind "rolling"`)
  if (a.kind !== "poisson" && a.ratePerSecond !== undefined) throw misplaced("ratePerSecond", `"poisson"`)
  if (a.kind !== "rolling" && a.batchFraction !== undefined) throw misplaced("batchFraction", `"rolling"`)
  if (a.kind !== "rolling" && a.intervalSeconds !== undefined) throw misplaced("intervalSeconds", `"rolling"`)
  if (a.kind !== "uniform" && a.spreadSeconds !== 0) throw misplaced("spreadSeconds", `"uniform"`)
  const d = s.departure
  if (d !== undefined && (d.afterCompletionSeconds === undefined) === (d.atSeconds === undefined)) {
    throw new ScenarioError(`${source}: departure: expected exactly one of afterCompletionSeconds and atSeconds`)
  }
  return s
}

/** One blob a host pulls: the file itself, or one layer of an image. */
export interface Blob {
  readonly name: string
  readonly url: string
  readonly sizeBytes: number
}

/**
 * The blobs of a scenario's file. A plain file is one blob at its own URL (so its task id is the
 * file's); layer i of an image is at `${url}/layers/${i}`, an even split giving the last layer the
 * remainder.
 */
export const blobsOf = (file: Scenario["file"]): ReadonlyArray<Blob> => {
  const { layers, url, sizeBytes } = file
  if (layers === undefined) return [{ name: "file", url, sizeBytes }]
  const sizes = typeof layers === "number"
    ? Array.from({ length: layers }, (_, i) => i < layers - 1 ? Math.floor(sizeBytes / layers) : sizeBytes - Math.floor(sizeBytes / layers) * (layers - 1))
    : layers.map((l) => l.sizeBytes)
  return sizes.map((size, i) => ({
    name: (Array.isArray(layers) ? (layers as ReadonlyArray<Layer>)[i].name : undefined) ?? `layer-${i}`,
    url: `${url}/layers/${i}`,
    sizeBytes: size
  }))
}

const readScenarioInput = async (path: string): Promise<unknown> => {
  const ext = extname(path).toLowerCase()
  let input: unknown
  try {
    if (ext === ".yaml" || ext === ".yml") input = YAML.parse(await readFile(path, "utf8"))
    else if (ext === ".json") input = JSON.parse(await readFile(path, "utf8"))
    else if (ext === ".ts" || ext === ".js" || ext === ".mjs") input = (await import(pathToFileURL(resolve(path)).href)).default
    else throw new ScenarioError(`${path}: expected a .ts, .js, .yaml, .yml or .json scenario file`)
  } catch (e) {
    if (e instanceof ScenarioError) throw e
    throw new ScenarioError(`${path}: cannot read scenario: ${e instanceof Error ? e.message : String(e)}`)
  }
  return input
}

/**
 * Loads every case of a scenario file: a .ts/.js module (default export) or a .yaml/.yml/.json file
 * holding one scenario, or a family (an array of scenarios with distinct names).
 */
export const loadScenarios = async (path: string): Promise<ReadonlyArray<Scenario>> => {
  const input = await readScenarioInput(path)
  if (!Array.isArray(input)) return [decodeScenario(input, path)]
  if (input.length === 0) throw new ScenarioError(`${path}: expected a scenario or a non-empty array of scenarios, got []`)
  const cases = input.map((c, i) => decodeScenario(c, `${path}: [${i}]`))
  const seen = new Set<string>()
  cases.forEach((c, i) => {
    if (seen.has(c.name)) throw new ScenarioError(`${path}: [${i}].name: expected names unique in the family, got ${JSON.stringify(c.name)} twice`)
    seen.add(c.name)
  })
  return cases
}

/** Loads a file holding one scenario (a family must be narrowed with `loadScenarios`). */
export const loadScenario = async (path: string): Promise<Scenario> => {
  const cases = await loadScenarios(path)
  if (cases.length !== 1) {
    throw new ScenarioError(`${path}: expected one scenario, got a family of ${cases.length}: ${cases.map((c) => c.name).join(", ")}`)
  }
  return cases[0]
}

// Units for scenario files.
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
/** Gigabits per second → bytes per second. */
export const gbit = (n: number): number => (n * 1e9) / 8
export const mbit = (n: number): number => (n * 1e6) / 8
export const MB = 1e6
export const GB = 1e9

/** IDCs smaller than this are never scaled down; larger ones not below it. */
export const MIN_SCALED_PEERS = 10

/**
 * The scenario with each IDC's peers multiplied by `scale` (rounded, at least MIN_SCALED_PEERS or the
 * IDC's own count if smaller); seeds, NICs, the origin and the file stay. For quick library runs.
 */
export const scaleScenario = (s: Scenario, scale: number): Scenario => {
  if (scale === 1) return s
  if (!(scale > 0)) throw new ScenarioError(`scale: expected a number > 0, got ${scale}`)
  return {
    ...s,
    idcs: s.idcs.map((i) => ({ ...i, peers: i.peers === 0 ? 0 : Math.max(Math.min(i.peers, MIN_SCALED_PEERS), Math.round(i.peers * scale)) }))
  }
}

/** The piece length a strategy's run of this scenario cuts a blob of `sizeBytes` into: the scenario's
 *  for that strategy, else the scenario's for all, else the strategy's own rule. */
export const scenarioPieceLength = (scenario: Scenario, strategy: Strategy, sizeBytes: number): number =>
  strategyPieceLength(strategy, sizeBytes, scenario.file.pieceLengths?.[strategy] ?? scenario.file.pieceLength)
