// What a simulation run is about: hosts (by IDC), links, latencies, one file, arrivals, strategies.
// Scenario files are TS modules (default export) or YAML; both decode through this Schema, so a bad
// field names itself and what was expected.
import { Effect, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { extname, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import YAML from "yaml"
import { Fault } from "./faults.ts"
import { strategyNames } from "../core/strategies.ts"

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
  wanBytesPerSecond: Schema.optionalKey(BytesPerSecond)
})
export type Idc = typeof Idc.Type

export const Strategy = Schema.Literals(strategyNames)
export type Strategy = typeof Strategy.Type

export const Scenario = Schema.Struct({
  name: Schema.NonEmptyString,
  file: Schema.Struct({
    url: Schema.NonEmptyString,
    sizeBytes: PositiveInt,
    /** Defaults to Dragonfly's rule (core/piece-layout.ts). */
    pieceLength: Schema.optionalKey(PositiveInt)
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
  arrival: Schema.Struct({
    /** Peers arrive uniformly at random in [0, spreadSeconds]; 0 = a flash crowd at t=0. */
    spreadSeconds: NonNegative.pipe(withDefault(0))
  }).pipe(withDefault({})),
  strategies: Schema.Array(Strategy).pipe(withDefault(["direct", "p2p"])),
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
  return s
}

/** Loads a scenario from a .ts/.js module (default export) or a .yaml/.yml/.json file. */
export const loadScenario = async (path: string): Promise<Scenario> => {
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
  return decodeScenario(input, path)
}

// Units for scenario files.
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
/** Gigabits per second → bytes per second. */
export const gbit = (n: number): number => (n * 1e9) / 8
export const mbit = (n: number): number => (n * 1e6) / 8
