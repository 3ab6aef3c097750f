// An image reference and the registry URLs it leads to. Two spellings are accepted: the URL form
// Dragonfly's preheat takes (`http(s)://host/v2/<repo>/manifests/<tag|digest>`) and the familiar
// `[host[:port]/]repo[:tag][@digest]` (Docker Hub and `library/` when no host is given; plain HTTP for
// localhost and loopback registries, as Docker treats them). Pure: no I/O.

export interface ImageReference {
  readonly scheme: "http" | "https"
  /** host[:port] as written in URLs. */
  readonly registry: string
  readonly repository: string
  /** A tag, or a digest "sha256:<hex>". */
  readonly reference: string
}

export class InvalidReference extends Error {
  readonly _tag = "InvalidReference"
}

const DOCKER_HUB = "registry-1.docker.io"
/** The distribution spec's repository name grammar: lowercase path components separated by `/`. */
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/
const TAG = /^[\w][\w.-]{0,127}$/
export const DIGEST = /^sha256:[0-9a-f]{64}$/

const isLoopback = (host: string) => {
  const name = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "")
  return name === "localhost" || name === "::1" || /^127\./.test(name)
}

const checked = (r: ImageReference, input: string): ImageReference => {
  if (!REPOSITORY.test(r.repository)) throw new InvalidReference(`url: repository ${JSON.stringify(r.repository)} in ${JSON.stringify(input)} is not a valid repository name`)
  if (!TAG.test(r.reference) && !DIGEST.test(r.reference)) {
    throw new InvalidReference(`url: ${JSON.stringify(r.reference)} in ${JSON.stringify(input)} is neither a tag nor a sha256 digest`)
  }
  return r
}

/** Parses either spelling; throws InvalidReference naming what is wrong. */
export const parseImageReference = (input: string): ImageReference => {
  const text = input.trim()
  const url = /^(https?):\/\/([^/]+)\/v2\/(.+)\/manifests\/([^/]+)$/.exec(text)
  if (url !== null) return checked({ scheme: url[1] as "http" | "https", registry: url[2], repository: url[3], reference: decodeURIComponent(url[4]) }, input)
  if (/^[a-z]+:\/\//i.test(text)) {
    throw new InvalidReference(`url: expected http(s)://HOST/v2/REPOSITORY/manifests/TAG or HOST/REPOSITORY:TAG, got ${JSON.stringify(input)}`)
  }
  let rest = text
  let digest: string | undefined
  const at = rest.indexOf("@")
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
  }
  const slash = rest.indexOf("/")
  const first = slash < 0 ? "" : rest.slice(0, slash)
  // The first component is a registry host when it looks like one (a dot, a port, or localhost).
  const hasHost = slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost")
  const registry = hasHost ? first : DOCKER_HUB
  let path = hasHost ? rest.slice(slash + 1) : rest
  let tag: string | undefined
  const colon = path.lastIndexOf(":")
  if (colon >= 0) {
    tag = path.slice(colon + 1)
    path = path.slice(0, colon)
  }
  if (!hasHost && !path.includes("/")) path = `library/${path}`
  return checked({
    scheme: isLoopback(registry) ? "http" : "https",
    registry,
    repository: path,
    reference: digest ?? tag ?? "latest"
  }, input)
}

export const registryBase = (r: ImageReference) => `${r.scheme}://${r.registry}/v2`

export const manifestUrl = (r: ImageReference, reference = r.reference) =>
  `${registryBase(r)}/${r.repository}/manifests/${reference}`

/** The URL a blob is fetched from: what the registry mirror and preheat both download. */
export const blobUrl = (r: ImageReference, digest: string) => `${registryBase(r)}/${r.repository}/blobs/${digest}`

export const formatReference = (r: ImageReference) =>
  `${r.registry}/${r.repository}${DIGEST.test(r.reference) ? "@" : ":"}${r.reference}`
