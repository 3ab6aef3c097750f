// A sweep grid: a base scenario (a path or inline), `vary` (dotted paths into the scenario, each with
// a list of values), strategies and seeds. Grid files are YAML/JSON or a TS module (default export);
// they decode through Schema, and every expanded scenario through the Scenario Schema, so a bad field
// names itself.
import { Schema } from "effect"
import { readFile } from "node:fs/promises"
import { dirname, extname, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import YAML from "yaml"
import { decodeScenario, loadScenario, type Scenario, ScenarioError, Strategy } from "./scenario.ts"

export const Grid = Schema.Struct({
  /** Shown in progress output; defaults to the base scenario's name. */
  name: Schema.optionalKey(Schema.NonEmptyString),
  /** A scenario file (relative to the grid file) or an inline scenario. */
  base: Schema.Union([Schema.NonEmptyString, Schema.Record(Schema.String, Schema.Unknown)]),
  /** Dotted path (array indices are numbers: "idcs.0.peers") → values to try. */
  vary: Schema.optionalKey(Schema.Record(Schema.NonEmptyString, Schema.Array(Schema.Unknown).check(Schema.isMinLength(1)))),
  /** Defaults to the base scenario's strategies. */
  strategies: Schema.optionalKey(Schema.Array(Strategy).check(Schema.isMinLength(1))),
  /** A list of seeds, or a count N meaning seeds 1..N. */
  seeds: Schema.Union([
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
    Schema.Array(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))).check(Schema.isMinLength(1))
  ])
})
export type Grid = typeof Grid.Type

export class GridError extends Error {
  override readonly name = "GridError"
}

export type Params = Readonly<Record<string, unknown>>

export interface Job {
  readonly key: string
  readonly params: Params
  readonly strategy: Strategy
  readonly seed: number
  readonly scenario: Scenario
}

export interface ExpandedGrid {
  readonly name: string
  readonly jobs: ReadonlyArray<Job>
}

/** Stable JSON: object keys sorted, so a key never depends on insertion order. */
export const stableStringify = (v: unknown): string =>
  JSON.stringify(v, (_k, x) =>
    x !== null && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
      : x)

/** The identity of one run in a results file. */
export const jobKey = (params: Params, strategy: string, seed: number): string => stableStringify({ params, seed, strategy })

export const decodeGrid = (input: unknown, source = "grid"): Grid => {
  try {
    return Schema.decodeUnknownSync(Grid)(input, { errors: "all", onExcessProperty: "error" })
  } catch (e) {
    throw new GridError(`${source}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** Sets `path` ("a.0.b") in a copy of `root`; objects on the way may be created, arrays must already hold the index. */
export const setPath = (root: unknown, path: string, value: unknown): unknown => {
  const parts = path.split(".")
  const copy = structuredClone(root) as Record<string, unknown>
  let node: unknown = copy
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    const at = parts.slice(0, i + 1).join(".")
    const last = i === parts.length - 1
    if (Array.isArray(node)) {
      const idx = Number(part)
      if (!Number.isInteger(idx) || idx < 0 || idx >= node.length) {
        throw new GridError(`vary.${path}: ${at}: expected an index below ${node.length}`)
      }
      if (last) node[idx] = value
      else node = node[idx]
    } else if (node !== null && typeof node === "object") {
      const obj = node as Record<string, unknown>
      if (last) obj[part] = value
      else node = obj[part] ??= {}
    } else {
      throw new GridError(`vary.${path}: ${parts.slice(0, i).join(".")} is not an object or array`)
    }
  }
  return copy
}

const cartesian = (entries: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]>): Array<Record<string, unknown>> =>
  entries.reduce<Array<Record<string, unknown>>>(
    (acc, [path, values]) => acc.flatMap((p) => values.map((v) => ({ ...p, [path]: v }))),
    [{}]
  )

/** Every (params, strategy, seed) of the grid, params outermost, seeds innermost. */
export const expandGrid = (grid: Grid, base: Scenario, source = "grid"): ExpandedGrid => {
  const points = cartesian(Object.entries(grid.vary ?? {}))
  const strategies = grid.strategies ?? base.strategies
  const seeds = typeof grid.seeds === "number" ? Array.from({ length: grid.seeds }, (_, i) => i + 1) : grid.seeds
  const jobs: Array<Job> = []
  for (const params of points) {
    let input: unknown = base
    for (const [path, value] of Object.entries(params)) input = setPath(input, path, value)
    let scenario: Scenario
    try {
      scenario = decodeScenario(input, `${source}: vary ${stableStringify(params)}`)
    } catch (e) {
      throw new GridError((e as Error).message)
    }
    for (const strategy of strategies) {
      for (const seed of seeds) jobs.push({ key: jobKey(params, strategy, seed), params, strategy, seed, scenario })
    }
  }
  return { name: grid.name ?? base.name, jobs }
}

const readGridInput = async (path: string): Promise<unknown> => {
  const ext = extname(path).toLowerCase()
  try {
    if (ext === ".yaml" || ext === ".yml") return YAML.parse(await readFile(path, "utf8"))
    if (ext === ".json") return JSON.parse(await readFile(path, "utf8"))
    if (ext === ".ts" || ext === ".js" || ext === ".mjs") return (await import(pathToFileURL(resolve(path)).href)).default
  } catch (e) {
    throw new GridError(`${path}: cannot read grid: ${e instanceof Error ? e.message : String(e)}`)
  }
  throw new GridError(`${path}: expected a .yaml, .yml, .json, .ts or .js grid file`)
}

/** Reads, validates and expands a grid file (or an already parsed grid object). */
export const loadGrid = async (pathOrInput: string | unknown, baseDir = process.cwd()): Promise<ExpandedGrid> => {
  const source = typeof pathOrInput === "string" ? pathOrInput : "grid"
  const grid = decodeGrid(typeof pathOrInput === "string" ? await readGridInput(pathOrInput) : pathOrInput, source)
  const dir = typeof pathOrInput === "string" ? dirname(resolve(pathOrInput)) : baseDir
  let base: Scenario
  try {
    base = typeof grid.base === "string" ? await loadScenario(resolve(dir, grid.base)) : decodeScenario(grid.base, `${source}: base`)
  } catch (e) {
    throw new GridError(e instanceof ScenarioError ? `${source}: base: ${e.message}` : String(e))
  }
  return expandGrid(grid, base, source)
}
