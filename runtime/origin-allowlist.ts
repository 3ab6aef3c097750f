// Which origins the cluster may fetch (`--origin-allow`). Every peer holds the cluster token, so without
// a list any holder can make a seed (through a registration) or the scheduler and its chosen peers
// (through a preheat job) fetch any URL from inside the cluster: a cloud metadata address, an internal
// admin service. With a list, the scheduler refuses registrations and preheat jobs for other origins, and
// a daemon refuses to fetch them, whoever asks (a compromised scheduler key alone is then not enough).
//
// A pattern is one of:
//   https://host[:port][/path]   scheme, host and port (the scheme's default when omitted) must be the
//                                URL's; a path is a prefix of the URL's path, cut at a `/`
//   https://*.example.com[...]   the same, for any host under example.com (not example.com itself)
//   host[:port], *.example.com   http or https; any port unless one is given
//   10.0.0.0/8, fd00::/8         hosts written as an IP address in the block (names are not resolved)
// Patterns are matched against the parsed URL (WHATWG URL: host lower-cased, IPv4 forms normalised, dot
// segments removed), never as text: `https://good.com.evil.net` and `https://good.com@evil.net` are not
// `https://good.com`. An unset list allows everything (what Damselfly did before the list existed).
import { BlockList, isIP } from "node:net"
import { addAddressOrBlock, familyOf } from "./control-access.ts"

type HostRule =
  | { readonly kind: "exact"; readonly host: string }
  | { readonly kind: "suffix"; readonly suffix: string }
  | { readonly kind: "block"; readonly block: BlockList }

export interface OriginPattern {
  readonly text: string
  /** undefined: http and https. */
  readonly scheme: "http:" | "https:" | undefined
  readonly host: HostRule
  /** undefined: any port. */
  readonly port: number | undefined
  /** undefined: any path; else a prefix of the path, ending in `/` or cut at one. */
  readonly path: string | undefined
}

export const ORIGIN_PATTERN_EXPECTED =
  "a URL prefix https://host[:port][/path], a host[:port], *.domain (any subdomain) or a CIDR block like 10.0.0.0/8"

const DEFAULT_PORT: Record<string, number> = { "http:": 80, "https:": 443 }

/** Host names compare without a trailing dot (`good.com.` is `good.com` to DNS). */
const canonicalHost = (hostname: string) => {
  const h = hostname.toLowerCase()
  return h.endsWith(".") ? h.slice(0, -1) : h
}

/** `[::1]` → `::1`: a URL's hostname brackets IPv6. */
const unbracket = (hostname: string) => (hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname)

const URL_PATTERN = /^(https?):\/\/(\*\.)?([^/?#@\s*]+)(\/[^?#\s*]*)?$/i
const HOST_PATTERN = /^(\*\.)?([^/?#@\s*:[\]]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/

/** The pattern parsed, or why it is not one. */
export const parseOriginPattern = (text: string): OriginPattern | string => {
  const bad = `expected ${ORIGIN_PATTERN_EXPECTED}, got ${JSON.stringify(text)}`
  if (typeof text !== "string" || text === "" || text.length > 2048) return bad
  // A CIDR block (or a bare address, taken as /32 or /128).
  if (text.indexOf("/") > 0 && !text.includes("://")) {
    const block = new BlockList()
    if (!addAddressOrBlock(block, text)) return bad
    return { text, scheme: undefined, host: { kind: "block", block }, port: undefined, path: undefined }
  }
  let scheme: "http:" | "https:" | undefined
  let wildcard: boolean
  let hostPort: string
  let path: string | undefined
  let port: number | undefined
  const u = URL_PATTERN.exec(text)
  if (u !== null) {
    scheme = `${u[1].toLowerCase()}:` as "http:" | "https:"
    wildcard = u[2] !== undefined
    hostPort = u[3]
    path = u[4] === undefined || u[4] === "/" ? undefined : u[4]
  } else {
    const h = HOST_PATTERN.exec(text)
    if (h === null) return bad
    wildcard = h[1] !== undefined
    hostPort = h[2]
    if (h[3] !== undefined) port = Number(h[3])
  }
  // The WHATWG parser normalises the host as it will normalise the URLs matched against it.
  let parsed: URL
  try {
    parsed = new URL(`${scheme ?? "http:"}//${hostPort}${path ?? "/"}`)
  } catch {
    return bad
  }
  if (parsed.username !== "" || parsed.password !== "" || parsed.hostname === "") return bad
  if (scheme !== undefined) port = parsed.port === "" ? DEFAULT_PORT[scheme] : Number(parsed.port)
  if (port !== undefined && (port < 1 || port > 65535)) return bad
  const host = canonicalHost(parsed.hostname)
  if (wildcard && (isIP(unbracket(host)) !== 0 || !host.includes("."))) {
    return `${JSON.stringify(text)}: *. needs a domain with at least two labels (*.example.com), not an address or a top-level domain`
  }
  return {
    text,
    scheme,
    host: wildcard ? { kind: "suffix", suffix: `.${host}` } : { kind: "exact", host },
    port,
    path: path === undefined ? undefined : parsed.pathname
  }
}

const pathMatches = (prefix: string, pathname: string) =>
  prefix.endsWith("/") ? pathname.startsWith(prefix) : pathname === prefix || pathname.startsWith(`${prefix}/`)

const hostMatches = (rule: HostRule, hostname: string) => {
  switch (rule.kind) {
    case "exact":
      return hostname === rule.host
    case "suffix":
      return hostname.length > rule.suffix.length && hostname.endsWith(rule.suffix)
    case "block": {
      const address = unbracket(hostname)
      const family = familyOf(address)
      return family !== undefined && rule.block.check(address, family)
    }
  }
}

export const patternMatches = (p: OriginPattern, url: URL): boolean => {
  if (url.protocol !== "http:" && url.protocol !== "https:") return false
  if (p.scheme !== undefined && url.protocol !== p.scheme) return false
  const port = url.port === "" ? DEFAULT_PORT[url.protocol] : Number(url.port)
  if (p.port !== undefined && port !== p.port) return false
  if (!hostMatches(p.host, canonicalHost(url.hostname))) return false
  return p.path === undefined || pathMatches(p.path, url.pathname)
}

/** The origin of a URL for messages (`http://169.254.169.254`), or the text itself when it is no URL. */
export const originOf = (url: string): string => {
  try {
    return new URL(url).origin
  } catch {
    return JSON.stringify(url.slice(0, 200))
  }
}

export interface OriginAllowlist {
  /** false: no list was given, everything is allowed. */
  readonly configured: boolean
  readonly patterns: ReadonlyArray<OriginPattern>
  allows(url: string): boolean
  /**
   * Why `url` may not be fetched here (`field: origin http://x is not allowed by this scheduler's
   * --origin-allow (…)`), or undefined when it may.
   */
  problem(field: string, url: string): string | undefined
}

/** Why the list is not a list of patterns (naming the entry: `[2]: expected …`), or undefined. */
export const originAllowProblem = (entries: ReadonlyArray<unknown>): string | undefined => {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (typeof e !== "string") return `[${i}]: expected a string (${ORIGIN_PATTERN_EXPECTED}), got ${JSON.stringify(e)}`
    const p = parseOriginPattern(e)
    if (typeof p === "string") return `[${i}]: ${p}`
  }
  return undefined
}

/** The list of `entries`; undefined (or none) allows every origin. Throws on a malformed pattern. */
export const makeOriginAllowlist = (entries: ReadonlyArray<string> | undefined, who: string): OriginAllowlist => {
  const patterns = (entries ?? []).map((e, i) => {
    const p = parseOriginPattern(e)
    if (typeof p === "string") throw new Error(`originAllow[${i}]: ${p}`)
    return p
  })
  const configured = entries !== undefined && entries.length > 0
  const allows = (url: string) => {
    if (!configured) return true
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return false
    }
    return patterns.some((p) => patternMatches(p, parsed))
  }
  const shown = patterns.length > 4 ? `${patterns.slice(0, 4).map((p) => p.text).join(", ")}, …` : patterns.map((p) => p.text).join(", ")
  return {
    configured,
    patterns,
    allows,
    problem: (field, url) => allows(url) ? undefined : `${field}: origin ${originOf(url)} is not allowed by ${who}'s --origin-allow (${shown})`
  }
}

/** Allows everything: no `--origin-allow`. */
export const ALLOW_ALL: OriginAllowlist = makeOriginAllowlist(undefined, "")
