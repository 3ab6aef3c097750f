// Sizes, rates and durations as operators write them in config files and flags: `512MiB`, `100MiB/s`,
// `6h`. Each parser answers undefined for anything it does not accept, so the caller can say which
// field was wrong and what was expected.

const SIZE = /^(\d+(?:\.\d+)?)\s*([kKMGTP]i?B?|[kKMGTP]B|B)?$/
const UNITS: Record<string, number> = {
  "": 1, B: 1,
  K: 1024, KI: 1024, KIB: 1024, KB: 1000,
  M: 1024 ** 2, MI: 1024 ** 2, MIB: 1024 ** 2, MB: 1000 ** 2,
  G: 1024 ** 3, GI: 1024 ** 3, GIB: 1024 ** 3, GB: 1000 ** 3,
  T: 1024 ** 4, TI: 1024 ** 4, TIB: 1024 ** 4, TB: 1000 ** 4,
  P: 1024 ** 5, PI: 1024 ** 5, PIB: 1024 ** 5, PB: 1000 ** 5
}

/** Bytes: a non-negative integer, or a number with a unit (`B`, `KB`=1000, `KiB`/`Ki`/`K`=1024, … up to `P`). */
export const parseBytes = (u: unknown): number | undefined => {
  if (typeof u === "number") return Number.isSafeInteger(u) && u >= 0 ? u : undefined
  if (typeof u !== "string") return undefined
  const m = SIZE.exec(u.trim())
  if (m === null) return undefined
  const unit = UNITS[(m[2] ?? "").toUpperCase()]
  if (unit === undefined) return undefined
  const bytes = Math.round(Number(m[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** Bytes per second, positive: `100MiB/s`, `100MiB`, `1e6` (a plain number is bytes/s). */
export const parseRate = (u: unknown): number | undefined => {
  const text = typeof u === "string" ? u.trim().replace(/\s*\/\s*s(ec)?$/i, "") : u
  const bytes = typeof text === "string" && /^\d+(\.\d+)?[eE]\d+$/.test(text) ? parseBytes(Number(text)) : parseBytes(text)
  return bytes !== undefined && bytes > 0 ? bytes : undefined
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }

/** Milliseconds, non-negative: `500ms`, `30s`, `5m`, `6h`, `1h30m`, `7d`, or a plain number of seconds. */
export const parseDuration = (u: unknown): number | undefined => {
  if (typeof u === "number") return Number.isFinite(u) && u >= 0 ? Math.round(u * 1000) : undefined
  if (typeof u !== "string") return undefined
  const text = u.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h|d))+$/.test(text)) return undefined
  let millis = 0
  for (const m of text.matchAll(DURATION_PART)) millis += Number(m[1]) * DURATION_UNITS[m[2]]
  return Math.round(millis)
}

/** A fraction in [0, 1], as a number or a numeric string (flags arrive as strings). */
export const parseFraction = (u: unknown): number | undefined => {
  const n = typeof u === "string" && /^\s*\d*\.?\d+\s*$/.test(u) ? Number(u) : u
  return typeof n === "number" && Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined
}

/** An integer within [min, max], as a number or a decimal string. */
export const parseInteger = (min: number, max: number) => (u: unknown): number | undefined => {
  const n = typeof u === "string" && /^\s*-?\d+\s*$/.test(u) ? Number(u) : u
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined
}

const KIB = 1024
/** A size for messages and progress lines: `12.5 MiB`. */
export const formatBytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let v = n
  let i = 0
  while (v >= KIB && i < units.length - 1) {
    v /= KIB
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`
}
