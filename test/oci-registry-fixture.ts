// Real registry fixtures for the preheat and blob-access tests: Debian's docker-registry (the CNCF
// distribution registry) on a loopback port with its own storage and access log, optionally behind
// htpasswd; images built with umoci (random layer content) and pushed with skopeo; a multi-arch index
// assembled by hand and PUT through the registry API.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import { createHash, createPrivateKey, randomBytes, sign } from "node:crypto"
import { promises as fs, readFileSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { freePort, waitFor } from "../runtime/testing/harness.ts"

export interface Registry {
  /** host:port */
  readonly host: string
  readonly logFile: string
  /** Blob requests in the registry's own access log. */
  blobRequests(): Array<{ method: string; repo: string; digest: string; status: number; bytes: number }>
  close(): Promise<void>
}

export interface Credentials {
  readonly username: string
  readonly password: string
}

const ACCESS = /"(GET|HEAD) \/v2\/(\S+)\/blobs\/(sha256:[0-9a-f]{64}) HTTP\/[\d.]+" (\d{3}) (\d+)/

/** The registry's token auth: a realm (token server) whose ES256 JWTs carry the certificate in `x5c`. */
export interface TokenAuth {
  readonly realm: string
  readonly service: string
  readonly issuer: string
  readonly certFile: string
}

export const startRegistry = async (dir: string, auth?: Credentials, token?: TokenAuth): Promise<Registry> => {
  await fs.mkdir(dir, { recursive: true })
  const port = await freePort()
  const logFile = path.join(dir, "registry.log")
  let authBlock = ""
  if (token !== undefined) {
    authBlock = `auth:\n  token:\n    realm: ${token.realm}\n    service: ${token.service}\n    issuer: ${token.issuer}\n    rootcertbundle: ${token.certFile}\n`
  } else if (auth !== undefined) {
    const file = path.join(dir, "htpasswd")
    await fs.writeFile(file, execFileSync("htpasswd", ["-Bbn", auth.username, auth.password]))
    authBlock = `auth:\n  htpasswd:\n    realm: damselfly-test\n    path: ${file}\n`
  }
  const config = path.join(dir, "config.yml")
  await fs.writeFile(config, `version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${path.join(dir, "storage")}
  delete:
    enabled: true
${authBlock}http:
  addr: 127.0.0.1:${port}
`)
  const out = await fs.open(logFile, "w")
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: ["ignore", out.fd, out.fd] })
  const exited = new Promise<void>((r) => child.on("exit", () => r()))
  await waitFor(`docker-registry on ${port}`, () => new Promise((resolve) => {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${readFileSync(logFile, "utf8").slice(-1000)}`)
    const req = http.get(`http://127.0.0.1:${port}/v2/`, (res) => {
      res.resume()
      resolve(res.statusCode === 200 || res.statusCode === 401)
    })
    req.on("error", () => resolve(false))
  }), 20_000)
  return {
    host: `127.0.0.1:${port}`,
    logFile,
    blobRequests: () => readFileSync(logFile, "utf8").split("\n").flatMap((line) => {
      const m = ACCESS.exec(line)
      return m === null ? [] : [{ method: m[1], repo: m[2], digest: m[3], status: Number(m[4]), bytes: Number(m[5]) }]
    }),
    close: async () => {
      child.kill("SIGTERM")
      await exited
      await out.close()
    }
  }
}

export interface BuiltImage {
  readonly layout: string
  readonly tag: string
}

/** An OCI layout with one layer per entry of `layerBytes` (random, so incompressible and unique). */
export const buildImage = (dir: string, tag: string, layerBytes: ReadonlyArray<number>, arch = "amd64"): BuiltImage => {
  const layout = path.join(dir, `layout-${tag}`)
  const run = (...args: Array<string>) => execFileSync("umoci", args, { stdio: "pipe" })
  run("init", "--layout", layout)
  run("new", "--image", `${layout}:${tag}`)
  run("config", "--image", `${layout}:${tag}`, "--architecture", arch, "--os", "linux")
  layerBytes.forEach((bytes, i) => {
    const bundle = path.join(dir, `bundle-${tag}-${i}`)
    run("unpack", "--rootless", "--image", `${layout}:${tag}`, bundle)
    execFileSync("sh", ["-c", `head -c ${bytes} /dev/urandom > ${bundle}/rootfs/layer-${i}.bin`])
    run("repack", "--image", `${layout}:${tag}`, bundle)
  })
  return { layout, tag }
}

/** Asynchronous: a token server in this process must keep answering while skopeo pushes. */
export const pushImage = (image: BuiltImage, registry: string, repo: string, tag: string, creds?: Credentials) =>
  new Promise<void>((resolve, reject) => {
    execFile("skopeo", [
      "copy", "--dest-tls-verify=false", ...(creds === undefined ? [] : ["--dest-creds", `${creds.username}:${creds.password}`]),
      `oci:${image.layout}:${image.tag}`, `docker://${registry}/${repo}:${tag}`
    ], (e, _out, err) => e === null ? resolve() : reject(new Error(`skopeo copy to ${registry}/${repo}:${tag}: ${err}`)))
  })

const request = (url: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer; auth?: Credentials | undefined }) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers }
    if (o.auth !== undefined) headers.authorization = `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString("base64")}`
    const req = http.request(url, { method: o.method ?? "GET", headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("error", reject)
    req.end(o.body)
  })

export interface Manifest {
  readonly digest: string
  readonly size: number
  readonly json: { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> }
}

export const getManifest = async (registry: string, repo: string, tag: string, auth?: Credentials): Promise<Manifest> => {
  const r = await request(`http://${registry}/v2/${repo}/manifests/${tag}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" }, auth })
  if (r.status !== 200) throw new Error(`manifest ${repo}:${tag}: HTTP ${r.status}`)
  return { digest: `sha256:${createHash("sha256").update(r.body).digest("hex")}`, size: r.body.length, json: JSON.parse(r.body.toString("utf8")) }
}

/** PUTs an OCI index of the given platform manifests (already in the repository) under `tag`. */
export const pushIndex = async (registry: string, repo: string, tag: string, entries: ReadonlyArray<{ manifest: Manifest; arch: string }>) => {
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: entries.map((e) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: e.manifest.digest,
      size: e.manifest.size,
      platform: { architecture: e.arch, os: "linux" }
    }))
  }
  const body = Buffer.from(JSON.stringify(index))
  const r = await request(`http://${registry}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { "content-type": "application/vnd.oci.image.index.v1+json" }, body })
  if (r.status !== 201) throw new Error(`PUT index: HTTP ${r.status}: ${r.body.toString("utf8")}`)
  return `sha256:${createHash("sha256").update(body).digest("hex")}`
}

/** A TCP relay that paces what the upstream sends (a slow link to the registry), for tests that act mid-job. */
export const startSlowRelay = async (upstreamPort: number, bytesPerSecond: number) => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, "127.0.0.1")
    sockets.add(client).add(upstream)
    client.pipe(upstream)
    upstream.on("data", (chunk: Buffer) => {
      upstream.pause()
      let offset = 0
      const step = () => {
        if (client.destroyed) return
        const n = Math.min(16 * 1024, chunk.length - offset)
        client.write(chunk.subarray(offset, offset + n))
        offset += n
        if (offset < chunk.length) setTimeout(step, (n * 1000) / bytesPerSecond)
        else setTimeout(() => upstream.resume(), (n * 1000) / bytesPerSecond)
      }
      step()
    })
    upstream.on("end", () => client.end())
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    upstream.on("error", close)
    client.on("error", close)
    client.on("close", close)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  return {
    host: `127.0.0.1:${port}`,
    // Keep-alive clients would hold the server open: cut them.
    close: () => new Promise<void>((r) => {
      server.close(() => r())
      for (const s of sockets) s.destroy()
    })
  }
}

export const randomTag = () => randomBytes(4).toString("hex")

/**
 * A token server for the registry's Bearer flow (the distribution token spec): `GET /token?service&scope`
 * with Basic credentials answers an ES256 JWT granting the asked actions (none for wrong or missing
 * credentials, so the registry then refuses). Counts the tokens it issued.
 */
export const startTokenServer = async (dir: string, creds: Credentials) => {
  await fs.mkdir(dir, { recursive: true })
  const keyFile = path.join(dir, "token-key.pem")
  const certFile = path.join(dir, "token-cert.pem")
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", keyFile, "-out", certFile, "-days", "2", "-nodes", "-subj", "/CN=damselfly-test-token"], { stdio: "pipe" })
  const key = createPrivateKey(readFileSync(keyFile))
  const der = readFileSync(certFile, "utf8").replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")
  const service = "damselfly-test-registry"
  const issuer = "damselfly-test-issuer"
  let issued = 0
  const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url")
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://local")
    const expected = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`
    const granted = req.headers.authorization === expected
    const access = granted
      ? url.searchParams.getAll("scope").map((scope) => {
        const [type, name, actions] = scope.split(":")
        return { type, name, actions: actions.split(",") }
      })
      : []
    const now = Math.floor(Date.now() / 1000)
    const header = b64({ alg: "ES256", typ: "JWT", x5c: [der] })
    const claims = b64({ iss: issuer, sub: granted ? creds.username : "", aud: url.searchParams.get("service") ?? service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access })
    const signature = sign("sha256", Buffer.from(`${header}.${claims}`), { key, dsaEncoding: "ieee-p1363" }).toString("base64url")
    const token = `${header}.${claims}.${signature}`
    issued++
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }))
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  const auth: TokenAuth = { realm: `http://127.0.0.1:${port}/token`, service, issuer, certFile }
  return {
    auth,
    issued: () => issued,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  }
}
