// Reading simulation results for reports: `damselfly sim --json` output (an array, or one object) or
// `damselfly sweep` JSONL (one row per line; the last row of a key wins; rows that threw are
// counted and left out). Rows decode through a lenient Schema: the fields every RunResult has are
// required, newer ones (per-peer times, egress series, IDC traffic, discrete optimum) are optional,
// and anything else is ignored, so older and newer results files both read.
import { Schema } from "effect"
import { readFile } from "node:fs/promises"
import { Strategy } from "../sim/scenario.ts"

// JSON writes NaN (e.g. no peer finished) as null.
const Num = Schema.NullOr(Schema.Number)

export const ResultRow = Schema.Struct({
  key: Schema.optionalKey(Schema.String),
  params: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown)),
  scenario: Schema.String,
  strategy: Schema.String,
  seed: Schema.Number,
  peers: Schema.Number,
  sizeBytes: Schema.Number,
  originEgressBytes: Schema.Number,
  savingsPercent: Num,
  completionSeconds: Schema.Struct({ p50: Num, p99: Num, max: Num }),
  boundSeconds: Num,
  maxOverBound: Num,
  virtualSeconds: Schema.optionalKey(Num),
  completionTimesSeconds: Schema.optionalKey(Schema.Array(Schema.Number)),
  originEgressSeries: Schema.optionalKey(Schema.Array(Schema.Tuple([Schema.Number, Schema.Number]))),
  trafficBetweenIdcs: Schema.optionalKey(Schema.Record(Schema.String, Schema.Number)),
  discreteOptimumSeconds: Schema.optionalKey(Num),
  crossIdcBytes: Schema.optionalKey(Num),
  crossIdcMinimumBytes: Schema.optionalKey(Num)
})
export type ResultRow = typeof ResultRow.Type

export interface Results {
  readonly rows: ReadonlyArray<ResultRow>
  /** Rows whose run threw (sweep `error` rows), by message. */
  readonly errors: ReadonlyArray<string>
  readonly source: string
}

export class ResultsError extends Error {
  override readonly name = "ResultsError"
}

const decodeRow = Schema.decodeUnknownSync(ResultRow)

/** Decodes parsed results (objects as written by `sim --json` or `sweep`). */
export const decodeResults = (items: ReadonlyArray<unknown>, source = "results"): Results => {
  const byKey = new Map<string, ResultRow | string>()
  items.forEach((item, i) => {
    const where = `${source}: row ${i + 1}`
    const key = typeof item === "object" && item !== null && typeof (item as { key?: unknown }).key === "string"
      ? (item as { key: string }).key
      : `#${i}`
    const error = typeof item === "object" && item !== null ? (item as { error?: unknown }).error : undefined
    if (error !== undefined) {
      if (!byKey.has(key) || typeof byKey.get(key) === "string") byKey.set(key, `${key}: ${String(error)}`)
      return
    }
    try {
      byKey.set(key, decodeRow(item, { errors: "all" }))
    } catch (e) {
      throw new ResultsError(`${where}: ${e instanceof Error ? e.message : String(e)}`)
    }
  })
  const rows: Array<ResultRow> = []
  const errors: Array<string> = []
  for (const v of byKey.values()) typeof v === "string" ? errors.push(v) : rows.push(v)
  return { rows, errors, source }
}

/** Reads a .json (array or object) or .jsonl results file; a partial last JSONL line is ignored. */
export const readResults = async (path: string): Promise<Results> => {
  let text: string
  try {
    text = await readFile(path, "utf8")
  } catch (e) {
    throw new ResultsError(`${path}: cannot read results: ${e instanceof Error ? e.message : String(e)}`)
  }
  let items: Array<unknown>
  if (path.endsWith(".jsonl") || path.endsWith(".ndjson")) {
    const lines = text.split("\n")
    if (!text.endsWith("\n")) lines.pop()
    items = []
    lines.forEach((line, i) => {
      if (line.trim() === "") return
      try {
        items.push(JSON.parse(line))
      } catch {
        throw new ResultsError(`${path}: line ${i + 1}: not JSON`)
      }
    })
  } else {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw new ResultsError(`${path}: not JSON: ${e instanceof Error ? e.message : String(e)}`)
    }
    items = Array.isArray(parsed) ? parsed : [parsed]
  }
  return decodeResults(items, path)
}

/** Strategies in the order the Scenario Schema lists them (read at run time), unknown names after. */
export const strategyOrder = (names: Iterable<string>): Array<string> => {
  const known: ReadonlyArray<string> = Strategy.literals
  const rank = (s: string) => (known.includes(s) ? known.indexOf(s) : known.length)
  return [...new Set(names)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
}

/** A run's parameter point: the sweep's params, or the scenario name for plain `sim` results. */
export const groupLabel = (r: ResultRow): string =>
  r.params !== undefined && Object.keys(r.params).length > 0
    ? Object.entries(r.params).map(([k, v]) => `${k}=${paramValue(k, v)}`).join(", ")
    : r.scenario

const paramValue = (key: string, v: unknown): string => {
  if (typeof v === "number" && /bytes$/i.test(key) && v >= 1024) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"]
    const u = Math.min(units.length - 1, Math.floor(Math.log(v) / Math.log(1024)))
    return `${Number((v / 1024 ** u).toFixed(1))} ${units[u]}`
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v)
}

export const finite = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x)
