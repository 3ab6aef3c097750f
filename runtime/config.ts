// Configuration of `damselfly daemon` and `damselfly scheduler`: a YAML file (`--config FILE`) and
// flags, described once per option below. The file is decoded with a Schema built from the same table
// (unknown keys refused), so a mistake is reported as `gc.highWatermark: expected a number between 0
// and 1, got "x"`; a flag is checked by the same parser and reported by its name. Flags override the
// file; what neither sets takes the default. deploy/config/*.yaml are annotated examples.
import { readFile } from "node:fs/promises"
import { Option, Schema, SchemaIssue } from "effect"
import { Flag } from "effect/cli"
import { parse as parseYaml } from "yaml"
import { controlSourceProblem } from "./control-access.ts"
import { ORIGIN_PATTERN_EXPECTED, originAllowProblem } from "./origin-allowlist.ts"
import { parseBytes, parseDuration, parseFraction, parseInteger, parseRate } from "./config-units.ts"
import type { DaemonOptions } from "./daemon.ts"
import { parseSchedulerList } from "./scheduler-ring.ts"
import { type StrategyName, strategyNames } from "../core/strategies.ts"
import type { SchedulerServerOptions } from "./scheduler-server.ts"
import { DEFAULT_GC } from "./storage-gc.ts"

export class ConfigError extends Error {}

/** One option: where it lives in the file, its flag, what it accepts. */
export interface OptionSpec {
  /** Dotted path in the YAML file, e.g. `gc.highWatermark`. */
  readonly path: string
  readonly flag: string
  readonly description: string
  /** What a valid value looks like, for messages: "a number between 0 and 1". */
  readonly expected: string
  readonly metavar?: string
  readonly kind?: "value" | "boolean" | "list"
  readonly parse: (u: unknown) => unknown
  /** For a list: which entry is wrong and why (`[2]: expected …`), when `parse` refuses the value. */
  readonly problemOf?: (u: unknown) => string | undefined
}

const str = (u: unknown) => (typeof u === "string" ? u : undefined)
const bool = (u: unknown) => (typeof u === "boolean" ? u : undefined)
const HTTP_URL = /^https?:\/\/[^\s,]+$/
/** A list of scheduler URLs: a YAML list, or one string with commas. */
const urlList = (u: unknown): ReadonlyArray<string> | undefined => {
  const items = typeof u === "string" ? u.split(",") : Array.isArray(u) ? u : undefined
  if (items === undefined || items.some((i) => typeof i !== "string")) return undefined
  const urls = (items as Array<string>).flatMap((i) => i.split(",")).map((i) => i.trim()).filter((i) => i !== "")
  return urls.every((i) => HTTP_URL.test(i)) ? urls : undefined
}

/** `--control-from` sources: addresses, CIDR blocks or `any`; a YAML list, or one string with commas. */
const controlSources = (u: unknown): ReadonlyArray<string> | undefined => {
  const items = typeof u === "string" ? u.split(",") : Array.isArray(u) ? u : undefined
  if (items === undefined || items.some((i) => typeof i !== "string")) return undefined
  const entries = (items as Array<string>).flatMap((i) => i.split(",")).map((i) => i.trim()).filter((i) => i !== "")
  return entries.length > 0 && entries.every((e) => controlSourceProblem(e) === undefined) ? entries : undefined
}

/** `--origin-allow` patterns (runtime/origin-allowlist.ts): a YAML list, or one string with commas. */
const originPatternItems = (u: unknown): ReadonlyArray<unknown> | undefined =>
  typeof u === "string" ? u.split(",").map((i) => i.trim()).filter((i) => i !== "") : Array.isArray(u) ? u : undefined
const originPatterns = (u: unknown): ReadonlyArray<string> | undefined => {
  const items = originPatternItems(u)
  return items !== undefined && items.length > 0 && originAllowProblem(items) === undefined ? (items as ReadonlyArray<string>) : undefined
}
const ORIGIN_ALLOW_EXPECTED = `a list of origin patterns (${ORIGIN_PATTERN_EXPECTED})`
const originAllowOption = (who: string): OptionSpec => ({
  path: "originAllow", flag: "origin-allow", kind: "list", metavar: "PATTERN", parse: originPatterns, expected: ORIGIN_ALLOW_EXPECTED,
  problemOf: (u) => {
    const items = originPatternItems(u)
    if (items === undefined) return undefined
    return items.length === 0 ? ": expected at least one pattern (leave the option out to allow every origin)" : originAllowProblem(items)
  },
  description: `${who} Patterns: https://host[:port][/path] (scheme, host and port must match; a path is a prefix), host[:port], *.example.com (any subdomain), or a CIDR block for hosts written as IP addresses. Repeat, or separate with commas; list your registries (and their token services) and file servers. Default: every origin`
})

/** Regular expressions: one string, or a YAML list of strings; each must compile. */
const regexList = (u: unknown): ReadonlyArray<string> | undefined => {
  const items = typeof u === "string" ? [u] : Array.isArray(u) ? u : undefined
  if (items === undefined || items.length === 0 || items.some((i) => typeof i !== "string")) return undefined
  try {
    for (const i of items as Array<string>) new RegExp(i)
  } catch {
    return undefined
  }
  return items as Array<string>
}

const port = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a port number between 1 and 65535", metavar: "PORT", parse: parseInteger(1, 65535) })
const text = (path: string, flag: string, description: string, metavar = "STRING"): OptionSpec =>
  ({ path, flag, description, expected: "a string", metavar, parse: str })
const count = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a positive integer", metavar: "N", parse: parseInteger(1, 1_000_000_000) })
const seconds = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a positive integer (seconds)", metavar: "SECONDS", parse: parseInteger(1, 1_000_000_000) })
const rate = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a rate in bytes per second, like 100MiB/s", metavar: "RATE", parse: parseRate })
const duration = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a duration like 500ms, 30s, 5m, 6h or 7d", metavar: "DURATION", parse: parseDuration })
const fraction = (path: string, flag: string, description: string): OptionSpec =>
  ({ path, flag, description, expected: "a number between 0 and 1", metavar: "FRACTION", parse: parseFraction })

const TOKEN_HELP = "Shared secret: requests must carry Authorization: Bearer TOKEN (except /healthy and /metrics); default $DAMSELFLY_TOKEN"
const SEED_TOKEN_HELP = "Secret only seed peers hold: the scheduler takes a host as a seed (or lets one change) only with it; a seed daemon sends it to schedulers in x-damselfly-seed-token next to --token; default $DAMSELFLY_SEED_TOKEN"
const CONTROL_TOKEN_HELP = "Secret that opens the local control routes (/v1/download, /v1/cache/*, /v1/object, /v1/downloads, the registry mirror and proxy) to callers on other hosts, in x-damselfly-control-token; without it only this host's clients (loopback or the daemon's own address) and --control-from sources may use them; default $DAMSELFLY_CONTROL_TOKEN"
const JOBS_TOKEN_HELP = "Operator secret for the preheat jobs API (POST/GET /api/v1/jobs), in x-damselfly-jobs-token; without it only callers on the scheduler's host (loopback or its own address) may use that API; default $DAMSELFLY_JOBS_TOKEN"
const MAX_CONNECTIONS_HELP = "Open connections at most (default 4096)"

const STRATEGY_OPTION: OptionSpec = {
  path: "strategy", flag: "strategy", metavar: "NAME", expected: `one of ${strategyNames.join(", ")}`,
  parse: (u: unknown) => (typeof u === "string" && (strategyNames as ReadonlyArray<string>).includes(u) ? u : undefined),
  description: `Distribution strategy (core/strategies.ts): ${strategyNames.join(", ")}; a daemon without it takes its schedulers' (default dragonfly)`
}

export const SCHEDULER_OPTIONS: ReadonlyArray<OptionSpec> = [
  STRATEGY_OPTION,
  text("originIdc", "origin-idc", "IDC the origin (registry or file server) is in: strategies that seed near the origin (damselfly) trigger a seed host there", "IDC"),
  port("port", "port", "HTTP port (default 8002)"),
  text("listen", "listen", "Address to listen on (default 127.0.0.1)", "ADDRESS"),
  text("token", "token", TOKEN_HELP, "TOKEN"),
  text("seedToken", "seed-token", SEED_TOKEN_HELP, "TOKEN"),
  count("maxConnections", "max-connections", MAX_CONNECTIONS_HELP),
  text("data", "data", "Directory for preheat jobs (SQLite) and the capability signing key; without it they do not survive a restart", "DIR"),
  text("blobAccessKey", "blob-access-key", "PEM Ed25519 private key signing private-blob capabilities and seed/preheat requests to daemons, shared by the schedulers (default: generated, kept in --data)", "FILE"),
  seconds("capabilityTtlSeconds", "capability-ttl", "Seconds a private-blob capability stays valid (default 3600)"),
  originAllowOption("Origins registrations and preheat jobs may name: other URLs are refused (403) before any seed is triggered or anything fetched."),
  text("jobsToken", "jobs-token", JOBS_TOKEN_HELP, "TOKEN"),
  {
    path: "verifyBlobAccess", flag: "verify-blob-access", kind: "boolean", expected: "true or false", parse: bool,
    description: "Repeat a daemon's authenticated HEAD before signing its private-blob capability (the cluster token alone then opens no private blob; adds a registry round trip to each first pull)"
  }
]

export const DEFAULT_SCHEDULER_URL = "http://127.0.0.1:8002"

export const DAEMON_OPTIONS: ReadonlyArray<OptionSpec> = [
  STRATEGY_OPTION,
  port("port", "port", "HTTP port, API and piece uploads (default 65001)"),
  text("listen", "listen", "Address to listen on (default 127.0.0.1)", "ADDRESS"),
  text("data", "data", "Directory for pieces and content (required)", "DIR"),
  {
    path: "schedulers", flag: "scheduler", kind: "list", metavar: "URL", parse: urlList,
    expected: "a list of http(s) URLs",
    description: `Scheduler base URL; repeat the flag or separate URLs with commas for several schedulers (tasks are placed by consistent hashing of the task id; default ${DEFAULT_SCHEDULER_URL})`
  },
  seconds("schedulerDownSeconds", "scheduler-down-seconds", "Seconds an unreachable scheduler is passed over (its tasks go to the next one on the ring) before it is tried again (default 10)"),
  { path: "seed", flag: "seed", kind: "boolean", expected: "true or false", parse: bool, description: "Run as a seed peer (fetches from the origin when triggered)" },
  text("hostId", "host-id", "Host id (default: hostname-port)", "ID"),
  text("idc", "idc", "IDC (data centre) of this host"),
  text("location", "location", "Location country|province|city|zone"),
  count("uploadSlots", "upload-slots", "Pieces uploaded at once (default 16); further requests queue"),
  count("concurrentPieces", "concurrent-pieces", "Pieces downloaded at once (default: core's, 8)"),
  {
    path: "prefetch", flag: "prefetch", kind: "boolean", expected: "true or false", parse: bool,
    description: "After a range request, download the whole task in the background (default); --no-prefetch stops once no reader needs it"
  },
  {
    path: "smallContentMax", flag: "small-content-max", metavar: "SIZE", parse: parseBytes, expected: "a size like 4MiB (0 = never)",
    description: "Content up to this size (origin's Content-Length) served via /v1/object is fetched straight from the origin, without the scheduler (default 4MiB)"
  },
  text("token", "token", TOKEN_HELP, "TOKEN"),
  text("seedToken", "seed-token", SEED_TOKEN_HELP, "TOKEN"),
  text("controlToken", "control-token", CONTROL_TOKEN_HELP, "TOKEN"),
  {
    path: "controlFrom", flag: "control-from", kind: "list", metavar: "ADDRESS", parse: controlSources,
    expected: "IP addresses or CIDR blocks (10.0.0.0/8), or \"any\"",
    description: "Sources besides this host that may use the local control routes without the control token: an address or CIDR block (repeat, or separate with commas; e.g. the node's IP for a pod behind a hostPort), or any (every source: only behind a gateway or in a test harness). Default: none"
  },
  originAllowOption("Origins this daemon fetches from, whoever asks (a scheduler's seed or preheat request, a local download, the object route, the mirror's blobs): other URLs are refused (403) before anything is fetched."),
  count("maxConnections", "max-connections", MAX_CONNECTIONS_HELP),
  count("uploadQueueMillis", "upload-queue-millis", "How long a piece request waits for an upload slot before 503 busy, in ms (default 15000)"),
  seconds("originTimeout", "origin-timeout", "Seconds of silence from the origin before a piece fails and is retried (default 30)"),
  seconds("originOutage", "origin-outage", "Seconds an origin may keep failing (retried with backoff) before a download fails (default 60)"),
  rate("limits.upload", "upload-limit", "Upload limit over all pieces served to other peers, e.g. 100MiB/s (default: none)"),
  rate("limits.upload", "upload-bandwidth", "Same as --upload-limit (bytes/s); also announced to the scheduler"),
  rate("limits.download", "download-limit", "Download limit over all pieces fetched from other peers, e.g. 200MiB/s (default: none)"),
  rate("limits.backToSource", "back-to-source-limit", "Limit over all ranges fetched from origins, e.g. 50MiB/s (default: none)"),
  { path: "keepCache", flag: "keep-cache", kind: "boolean", expected: "true or false", parse: bool, description: "Keep the piece store across restarts and resume from it (default); --no-keep-cache wipes it on start" },
  duration("gc.interval", "gc-interval", "How often storage GC runs (default 60s)"),
  duration("gc.ttl", "gc-ttl", "Evict tasks not used for this long; 0 never (default 6h)"),
  {
    path: "gc.quota", flag: "gc-quota", metavar: "SIZE", parse: parseBytes, expected: "a size like 512MiB or 20GiB",
    description: "Bytes the piece store may hold; the watermarks are fractions of it (default: no quota)"
  },
  fraction("gc.highWatermark", "gc-high-watermark", `Evict least recently used tasks when the store exceeds this fraction of the quota (default ${DEFAULT_GC.highWatermark})`),
  fraction("gc.lowWatermark", "gc-low-watermark", `… until it is back under this fraction (default ${DEFAULT_GC.lowWatermark})`),
  fraction("gc.diskHighWatermark", "gc-disk-high-watermark", `Evict least recently used tasks when the file system is fuller than this fraction; 1 disables (default ${DEFAULT_GC.diskHighWatermark})`),
  fraction("gc.diskLowWatermark", "gc-disk-low-watermark", `… until it is back under this fraction (default ${DEFAULT_GC.diskLowWatermark})`),
  // The registry front ends (runtime/registry-server.ts).
  port("mirror.port", "mirror-port", "Serve an OCI registry mirror on this port: blob GETs go P2P, the rest passes through (default: no mirror)"),
  {
    path: "mirror.upstreams", flag: "mirror-upstream", kind: "list", metavar: "URL", parse: urlList, expected: "a list of http(s) URLs",
    description: "Registry base URL the mirror pulls from when a request names none (X-Dragonfly-Registry header, ?ns=); repeat for several: the first is the default, the others give ?ns= hosts their scheme (default https://registry-1.docker.io)"
  },
  port("proxy.port", "proxy-port", "Serve a generic HTTP proxy on this port: URLs matching the rules go P2P, CONNECT tunnels (default: no proxy)"),
  {
    path: "proxy.rules", flag: "proxy-rule", metavar: "REGEX", parse: regexList, expected: "regular expressions (a YAML list, or one on the command line)",
    description: "Regular expression for URLs the proxy fetches P2P; several with | or a YAML list (default blobs/sha256.*)"
  }
]

// ---- the file ----

type Tree = { [key: string]: Tree | OptionSpec }

const treeOf = (specs: ReadonlyArray<OptionSpec>): Tree => {
  const root: Tree = {}
  for (const spec of specs) {
    const keys = spec.path.split(".")
    let node = root
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Tree
    node[keys[keys.length - 1]] ??= spec
  }
  return root
}

const isSpec = (x: Tree | OptionSpec): x is OptionSpec => typeof (x as OptionSpec).parse === "function"

/** The file's Schema: every key optional, unknown keys refused, each value checked by its option's parser. */
const schemaOf = (tree: Tree): Schema.Top => {
  const fields: Record<string, Schema.Top> = {}
  for (const [key, node] of Object.entries(tree)) {
    const leaf = isSpec(node)
      ? Schema.Unknown.check(Schema.makeFilter((u: unknown) => node.parse(u) !== undefined, { expected: node.expected }))
      : schemaOf(node)
    fields[key] = Schema.optionalKey(leaf)
  }
  return Schema.Struct(fields)
}

const describeValue = (u: unknown) => {
  const s = JSON.stringify(u)
  return s === undefined ? String(u) : s.length > 80 ? `${s.slice(0, 77)}...` : s
}

const valueAt = (root: unknown, path: ReadonlyArray<PropertyKey>) =>
  path.reduce<unknown>((v, k) => (typeof v === "object" && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined), root)

const nodeAt = (tree: Tree, path: ReadonlyArray<PropertyKey>): Tree | OptionSpec | undefined => {
  let node: Tree | OptionSpec | undefined = tree
  for (const k of path) node = node === undefined || isSpec(node) ? undefined : node[String(k)]
  return node
}

/** One line per problem: `gc.highWatermark: expected a number between 0 and 1, got "x"`. */
const explain = (tree: Tree, input: unknown, issue: SchemaIssue.Issue): Array<string> =>
  SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues.map(({ path, message }) => {
    const keys = (path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p)) as Array<PropertyKey>
    const where = keys.length === 0 ? "(top level)" : keys.map(String).join(".")
    const node = nodeAt(tree, keys)
    const got = describeValue(valueAt(input, keys))
    if (node === undefined) {
      const parent = nodeAt(tree, keys.slice(0, -1))
      const known = parent !== undefined && !isSpec(parent) ? Object.keys(parent).join(", ") : ""
      return `${where}: unknown option (expected one of: ${known})`
    }
    const detail = isSpec(node) ? node.problemOf?.(valueAt(input, keys)) : undefined
    if (detail !== undefined) return `${where}${detail}`
    if (isSpec(node)) return `${where}: expected ${node.expected}, got ${got}`
    return `${where}: expected a mapping of ${Object.keys(node).join(", ")}, got ${got} (${message})`
  })

export type OptionValues = ReadonlyMap<string, unknown>

/** Decodes a config file's text (YAML, JSON being YAML too) into option values by path. */
export const decodeConfig = (source: string, text: string, specs: ReadonlyArray<OptionSpec>): OptionValues => {
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (e) {
    throw new ConfigError(`${source}: not valid YAML: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`)
  }
  if (doc === null || doc === undefined) doc = {}
  const tree = treeOf(specs)
  const exit = Schema.decodeUnknownExit(schemaOf(tree) as Schema.Codec<unknown, unknown>)(doc, { onExcessProperty: "error", errors: "all" })
  if (exit._tag === "Failure") {
    const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
    const error = failure?._tag === "Fail" ? (failure.error as { issue?: SchemaIssue.Issue }) : undefined
    const lines = error?.issue === undefined ? [String(exit.cause)] : explain(tree, doc, error.issue)
    throw new ConfigError(lines.map((l) => `${source}: ${l}`).join("\n"))
  }
  const values = new Map<string, unknown>()
  for (const spec of specs) {
    const raw = valueAt(doc, spec.path.split("."))
    if (raw !== undefined && !values.has(spec.path)) values.set(spec.path, spec.parse(raw))
  }
  return values
}

export const loadConfigFile = async (file: string, specs: ReadonlyArray<OptionSpec>): Promise<OptionValues> => {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`--config: cannot read ${JSON.stringify(file)}: ${e.code ?? e.message}`)
  })
  return decodeConfig(file, text, specs)
}

// ---- flags ----

/** The flags of every option (each optional, so a flag given can be told from a default). */
export const flagsOf = (specs: ReadonlyArray<OptionSpec>) => {
  const flags: Record<string, Flag.Flag<Option.Option<string> | Option.Option<boolean> | ReadonlyArray<string>>> = {}
  for (const spec of specs) {
    if (spec.kind === "boolean") {
      flags[spec.flag] = Flag.Boolean(spec.flag).pipe(Flag.withDescription(spec.description), Flag.optional)
    } else if (spec.kind === "list") {
      flags[spec.flag] = Flag.String(spec.flag).pipe(Flag.withDescription(spec.description), Flag.withMetavar(spec.metavar ?? "VALUE"), Flag.atLeast(0))
    } else {
      flags[spec.flag] = Flag.String(spec.flag).pipe(Flag.withDescription(spec.description), Flag.withMetavar(spec.metavar ?? "VALUE"), Flag.optional)
    }
  }
  return flags
}

/** The values of the flags given, checked by the options' parsers and reported by flag name. */
export const flagValues = (specs: ReadonlyArray<OptionSpec>, given: Readonly<Record<string, unknown>>): OptionValues => {
  const values = new Map<string, unknown>()
  const problems: Array<string> = []
  for (const spec of specs) {
    const raw = given[spec.flag]
    let value: unknown
    if (Array.isArray(raw)) value = raw.length === 0 ? undefined : raw.join(",")
    else if (Option.isOption(raw)) value = Option.getOrUndefined(raw as Option.Option<unknown>)
    else value = raw
    if (value === undefined) continue
    const parsed = spec.parse(value)
    const detail = parsed === undefined ? spec.problemOf?.(value) : undefined
    if (detail !== undefined) problems.push(`--${spec.flag}${detail}`)
    else if (parsed === undefined) problems.push(`--${spec.flag}: expected ${spec.expected}, got ${describeValue(value)}`)
    else values.set(spec.path, parsed)
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"))
  return values
}

/** Flags over file: the file's values, then every flag given on top. */
export const mergeValues = (file: OptionValues, flags: OptionValues): OptionValues => new Map([...file, ...flags])

// ---- to the servers' options ----

const get = <T>(v: OptionValues, path: string): T | undefined => v.get(path) as T | undefined

export const schedulerOptionsFrom = (v: OptionValues): SchedulerServerOptions => ({
  strategy: get<StrategyName>(v, "strategy"),
  originIdc: get<string>(v, "originIdc"),
  port: get<number>(v, "port") ?? 8002,
  listen: get<string>(v, "listen") ?? "127.0.0.1",
  token: get<string>(v, "token"),
  seedToken: get<string>(v, "seedToken"),
  maxConnections: get<number>(v, "maxConnections"),
  data: get<string>(v, "data"),
  blobAccessKey: get<string>(v, "blobAccessKey"),
  capabilityTtlSeconds: get<number>(v, "capabilityTtlSeconds"),
  verifyBlobAccess: get<boolean>(v, "verifyBlobAccess") ?? false,
  originAllow: get<ReadonlyArray<string>>(v, "originAllow"),
  jobsToken: get<string>(v, "jobsToken")
})

export const daemonOptionsFrom = (v: OptionValues): Omit<DaemonOptions, "fault"> => {
  const data = get<string>(v, "data")
  if (data === undefined || data === "") throw new ConfigError("data: required: give --data DIR or `data:` in the config file")
  const gc = {
    intervalMillis: get<number>(v, "gc.interval") ?? DEFAULT_GC.intervalMillis,
    ttlMillis: ((t) => (t === 0 ? undefined : t))(get<number>(v, "gc.ttl") ?? DEFAULT_GC.ttlMillis),
    quotaBytes: get<number>(v, "gc.quota") ?? DEFAULT_GC.quotaBytes,
    highWatermark: get<number>(v, "gc.highWatermark") ?? DEFAULT_GC.highWatermark,
    lowWatermark: get<number>(v, "gc.lowWatermark") ?? DEFAULT_GC.lowWatermark,
    diskHighWatermark: ((d) => (d === 1 ? undefined : d))(get<number>(v, "gc.diskHighWatermark") ?? DEFAULT_GC.diskHighWatermark),
    diskLowWatermark: get<number>(v, "gc.diskLowWatermark") ?? DEFAULT_GC.diskLowWatermark
  }
  if (gc.intervalMillis < 10) throw new ConfigError(`gc.interval: expected at least 10ms, got ${gc.intervalMillis}ms`)
  if (gc.lowWatermark > gc.highWatermark) {
    throw new ConfigError(`gc.lowWatermark: expected at most gc.highWatermark (${gc.highWatermark}), got ${gc.lowWatermark}`)
  }
  if (gc.diskHighWatermark !== undefined && gc.diskLowWatermark !== undefined && gc.diskLowWatermark > gc.diskHighWatermark) {
    throw new ConfigError(`gc.diskLowWatermark: expected at most gc.diskHighWatermark (${gc.diskHighWatermark}), got ${gc.diskLowWatermark}`)
  }
  const seconds = (path: string) => ((s) => (s === undefined ? undefined : s * 1000))(get<number>(v, path))
  return {
    strategy: get<StrategyName>(v, "strategy"),
    port: get<number>(v, "port") ?? 65001,
    listen: get<string>(v, "listen") ?? "127.0.0.1",
    data,
    schedulers: parseSchedulerList(get<ReadonlyArray<string>>(v, "schedulers") ?? [DEFAULT_SCHEDULER_URL]),
    schedulerDownMillis: seconds("schedulerDownSeconds"),
    seed: get<boolean>(v, "seed") ?? false,
    hostId: get<string>(v, "hostId"),
    idc: get<string>(v, "idc") ?? "",
    location: get<string>(v, "location") ?? "",
    uploadBandwidth: get<number>(v, "limits.upload"),
    downloadLimit: get<number>(v, "limits.download"),
    backToSourceLimit: get<number>(v, "limits.backToSource"),
    keepCache: get<boolean>(v, "keepCache") ?? true,
    gc,
    uploadSlots: get<number>(v, "uploadSlots") ?? 16,
    concurrentPieces: get<number>(v, "concurrentPieces"),
    prefetch: get<boolean>(v, "prefetch") ?? true,
    smallContentMax: get<number>(v, "smallContentMax"),
    token: get<string>(v, "token"),
    seedToken: get<string>(v, "seedToken"),
    controlToken: get<string>(v, "controlToken"),
    controlFrom: get<ReadonlyArray<string>>(v, "controlFrom"),
    originAllow: get<ReadonlyArray<string>>(v, "originAllow"),
    maxConnections: get<number>(v, "maxConnections"),
    uploadQueueMillis: get<number>(v, "uploadQueueMillis"),
    originIdleMillis: seconds("originTimeout"),
    originOutageMillis: seconds("originOutage"),
    registry: {
      mirrorPort: get<number>(v, "mirror.port"),
      mirrorUpstreams: get<ReadonlyArray<string>>(v, "mirror.upstreams"),
      proxyPort: get<number>(v, "proxy.port"),
      proxyRules: get<ReadonlyArray<string>>(v, "proxy.rules")
    }
  }
}

/** File (if any), then flags, then defaults: what a command runs with. Throws ConfigError naming the field. */
export const resolveOptions = async <A>(
  configFile: string | undefined,
  specs: ReadonlyArray<OptionSpec>,
  given: Readonly<Record<string, unknown>>,
  build: (v: OptionValues) => A
): Promise<A> => {
  const file = configFile === undefined ? new Map<string, unknown>() : await loadConfigFile(configFile, specs)
  return build(mergeValues(file, flagValues(specs, given)))
}
