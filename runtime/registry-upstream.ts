// Which registry a mirror request is for, and what it asks of it. Per request, in order: the
// `X-Dragonfly-Registry` header (a base URL, as Dragonfly's dfdaemon accepts it), containerd's `?ns=HOST`
// query parameter (sent when a hosts.toml names the mirror), then the configured default upstream.
// A `ns` host gets the scheme of the configured upstream with the same host, else https.

export const REGISTRY_HEADER = "x-dragonfly-registry"
export const DOCKER_HUB = "https://registry-1.docker.io"

/** One OCI distribution pull route: `/v2/`, `/v2/NAME/manifests/REF`, `/v2/NAME/blobs/DIGEST`, or another `/v2/…` path. */
export type DistributionRoute =
  | { readonly kind: "base" }
  | { readonly kind: "manifest"; readonly name: string; readonly reference: string }
  | { readonly kind: "blob"; readonly name: string; readonly digest: string }
  | { readonly kind: "other" }

// Repository names per the distribution spec: lowercase path components separated by `/`.
const NAME = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
const MANIFEST = new RegExp(`^/v2/(${NAME})/manifests/([A-Za-z0-9_][A-Za-z0-9._:+=-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$`)
const BLOB = new RegExp(`^/v2/(${NAME})/blobs/([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$`)
export const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/

export const routeOf = (pathname: string): DistributionRoute => {
  if (pathname === "/v2/" || pathname === "/v2") return { kind: "base" }
  const m = MANIFEST.exec(pathname)
  if (m !== null) return { kind: "manifest", name: m[1], reference: m[2] }
  const b = BLOB.exec(pathname)
  if (b !== null) return { kind: "blob", name: b[1], digest: b[2] }
  return { kind: "other" }
}

export class UpstreamChoiceError extends Error {}

const baseUrl = (raw: string, field: string): URL => {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UpstreamChoiceError(`${field}: expected an http(s) base URL such as https://registry.example.com, got ${JSON.stringify(raw)}`)
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username !== "" || u.password !== "" || u.search !== "" || u.hash !== "") {
    throw new UpstreamChoiceError(`${field}: expected an http(s) base URL without credentials, query or fragment, got ${JSON.stringify(raw)}`)
  }
  return new URL(`${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`)
}

/** Parses `--mirror-upstream` values; the first is the default upstream. */
export const parseUpstreams = (raw: ReadonlyArray<string>): ReadonlyArray<URL> => raw.map((r) => baseUrl(r, "--mirror-upstream"))

// Docker Hub's registry name as clients write it, and where its API lives.
const HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"])
const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/

/**
 * The upstream base URL for one request (no trailing slash). Throws UpstreamChoiceError naming the
 * header or parameter that is malformed.
 */
export const chooseUpstream = (
  headerValue: string | ReadonlyArray<string> | undefined,
  ns: string | null,
  configured: ReadonlyArray<URL>
): URL => {
  if (headerValue !== undefined) {
    const v = Array.isArray(headerValue) ? headerValue[0] : headerValue as string
    return baseUrl(v.trim(), "X-Dragonfly-Registry header")
  }
  if (ns !== null && ns !== "") {
    if (!HOST.test(ns)) throw new UpstreamChoiceError(`ns query parameter: expected a registry host such as registry.example.com:5000, got ${JSON.stringify(ns)}`)
    const same = configured.find((u) => u.host === ns || (HUB_ALIASES.has(ns) && HUB_ALIASES.has(u.hostname)))
    if (same !== undefined) return same
    return new URL(HUB_ALIASES.has(ns) ? DOCKER_HUB : `https://${ns}`)
  }
  return configured[0] ?? new URL(DOCKER_HUB)
}

/** The upstream URL for a request path (and its query, minus containerd's `ns`). */
export const upstreamUrlOf = (base: URL, pathname: string, search: URLSearchParams): URL => {
  const u = new URL(`${base.protocol}//${base.host}${base.pathname.replace(/\/+$/, "")}${pathname}`)
  for (const [k, v] of search) if (k !== "ns") u.searchParams.append(k, v)
  return u
}
