// Test and benchmark support: a ranged-HTTP origin that counts what it sends, free ports, and
// `damselfly` child processes that are always killed (even when a test fails half way).
import { type ChildProcess, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const BIN = fileURLToPath(new URL("../bin/damselfly.mjs", import.meta.url))

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })

export const sha256File = async (file: string): Promise<string> => {
  const hash = createHash("sha256")
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest("hex")
}

export interface Origin {
  readonly url: string
  readonly file: string
  readonly size: number
  readonly sha256: string
  /** Body bytes sent so far (HEAD answers count nothing). */
  bytesSent(): number
  close(): Promise<void>
}

/** Serves one random file at /blob with HEAD and single-range GET support. */
export const startOrigin = async (dir: string, size: number): Promise<Origin> => {
  const file = path.join(dir, "origin.bin")
  const content = randomBytes(size)
  await fs.writeFile(file, content)
  const sha256 = createHash("sha256").update(content).digest("hex")
  let sent = 0
  const server = http.createServer((req, res) => {
    if (req.url !== "/blob") {
      res.writeHead(404).end()
      return
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "")
    let start = 0
    let end = size - 1
    if (m !== null) {
      start = Number(m[1])
      end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)
      if (start > end || start >= size) {
        res.writeHead(416, { "content-range": `bytes */${size}` }).end()
        return
      }
      res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${size}`, "accept-ranges": "bytes" })
    } else {
      res.writeHead(200, { "content-length": size, "accept-ranges": "bytes" })
    }
    if (req.method === "HEAD") {
      res.end()
      return
    }
    const body = content.subarray(start, end + 1)
    sent += body.length
    res.end(body)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/blob`,
    file,
    size,
    sha256,
    bytesSent: () => sent,
    close: () => new Promise((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  }
}

export interface Proc {
  readonly child: ChildProcess
  readonly name: string
  stdout(): string
  stderr(): string
  exited: Promise<number | null>
}

/** Every child spawned here, so `killAll` can clean up whatever a failing test left behind. */
const children = new Set<Proc>()

export const damselfly = (name: string, args: ReadonlyArray<string>, cwd?: string): Proc => {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  let err = ""
  child.stdout!.on("data", (c) => (out += c))
  child.stderr!.on("data", (c) => {
    err += c
    if (err.length > 2_000_000) err = err.slice(-1_000_000)
  })
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
  const proc: Proc = { child, name, stdout: () => out, stderr: () => err, exited }
  children.add(proc)
  void exited.then(() => children.delete(proc))
  return proc
}

export const killAll = async () => {
  const running = [...children]
  for (const p of running) p.child.kill("SIGTERM")
  await Promise.race([
    Promise.all(running.map((p) => p.exited)),
    new Promise((r) => setTimeout(r, 5_000))
  ])
  for (const p of running) if (p.child.exitCode === null) p.child.kill("SIGKILL")
}

export const getJson = (url: string, timeoutMillis = 5_000): Promise<{ status: number; body: any }> =>
  new Promise((resolve, reject) => {
    http.get(url, { timeout: timeoutMillis }, (res) => {
      let text = ""
      res.on("data", (c) => (text += c))
      res.on("end", () => {
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode ?? 0, body })
      })
    }).on("timeout", function(this: http.ClientRequest) {
      this.destroy(new Error(`no answer from ${url} within ${timeoutMillis} ms`))
    }).on("error", reject)
  })

export const postRaw = (url: string, body: string): Promise<{ status: number; body: any }> =>
  new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let text = ""
      res.on("data", (c) => (text += c))
      res.on("end", () => {
        let parsed: unknown = text
        try {
          parsed = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on("error", reject)
    req.end(body)
  })

/** Polls until `check` passes or the deadline; the last failure explains a timeout. */
export const waitFor = async (what: string, check: () => Promise<boolean>, millis = 30_000) => {
  const deadline = Date.now() + millis
  let last: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? "" : `: ${String(last)}`}`)
}

export const waitHealthy = (base: string, proc?: Proc) =>
  waitFor(`${base}/healthy`, async () => {
    if (proc !== undefined && proc.child.exitCode !== null) throw new Error(`${proc.name} exited: ${proc.stderr().slice(-2000)}`)
    return (await getJson(`${base}/healthy`)).status === 200
  })
