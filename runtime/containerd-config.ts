// `damselfly containerd-config`: containerd's registry host configuration (certs.d/<host>/hosts.toml,
// containerd ≥ 1.5 with `config_path` set) that sends pulls to the local Damselfly mirror first and to
// the registry itself when the mirror fails. containerd adds `?ns=<host>` to mirror requests, which is
// how the mirror knows the upstream.
import { randomUUID } from "node:crypto"
import { promises as fs } from "node:fs"
import * as path from "node:path"

export interface HostsFile {
  /** Directory name under certs.d: the registry host as image references spell it (`docker.io`, `reg.example:5000`). */
  readonly host: string
  /** The registry's API base URL (the fallback `server`). */
  readonly server: string
  readonly content: string
}

const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$/

const parseBase = (raw: string, field: string): URL => {
  let u: URL
  try {
    u = new URL(/^[a-z]+:\/\//i.test(raw) ? raw : `https://${raw}`)
  } catch {
    throw new Error(`${field}: expected a registry URL such as https://registry.example.com or a host, got ${JSON.stringify(raw)}`)
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || !HOST.test(u.host) || u.username !== "" || u.search !== "" || (u.pathname !== "/" && u.pathname !== "")) {
    throw new Error(`${field}: expected an http(s) registry base URL (scheme, host, optional port; no path, credentials or query), got ${JSON.stringify(raw)}`)
  }
  return u
}

// Docker Hub: images name it docker.io, its API lives at registry-1.docker.io.
const HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"])

/** TOML basic string. */
const str = (s: string) => JSON.stringify(s)

export const hostsFileFor = (registry: string, mirror: string): HostsFile => {
  const r = parseBase(registry, "--registry")
  const m = parseBase(mirror, "--mirror")
  const hub = HUB.has(r.hostname)
  const host = hub ? "docker.io" : r.host
  const server = hub ? "https://registry-1.docker.io" : `${r.protocol}//${r.host}`
  const mirrorBase = `${m.protocol}//${m.host}`
  const content = [
    "# Written by `damselfly containerd-config`: pulls go through the local Damselfly mirror first,",
    "# and to the registry itself (server) when the mirror fails.",
    `server = ${str(server)}`,
    "",
    `[host.${str(mirrorBase)}]`,
    `  capabilities = ["pull", "resolve"]`,
    ""
  ].join("\n")
  return { host, server, content }
}

/** Writes one hosts.toml per registry under `dir` (tmp file + rename), returns the paths written. */
export const writeContainerdConfig = async (o: { readonly registries: ReadonlyArray<string>; readonly mirror: string; readonly dir: string }) => {
  if (o.registries.length === 0) throw new Error("--registry: give at least one registry URL")
  if (!path.isAbsolute(o.dir)) throw new Error(`--dir: expected an absolute path, got ${JSON.stringify(o.dir)}`)
  const files = o.registries.map((r) => hostsFileFor(r, o.mirror))
  const written: Array<string> = []
  for (const f of files) {
    const dir = path.join(o.dir, f.host)
    await fs.mkdir(dir, { recursive: true })
    const target = path.join(dir, "hosts.toml")
    const tmp = `${target}.${randomUUID().slice(0, 8)}.tmp`
    await fs.writeFile(tmp, f.content)
    await fs.rename(tmp, target)
    written.push(target)
  }
  return written
}
