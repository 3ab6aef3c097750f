// Test and benchmark support: a ranged-HTTP origin that counts what it sends, free ports, and
// `damselfly` child processes that are always killed (even when a test fails half way).
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import * as http from "node:http"
import { rangeOf, writeRangeHead } from "./range.ts"
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

/**
 * How the origin misbehaves (HEAD is always answered truthfully, except in "error500"):
 * - "ok": every GET is served;
 * - "error500": every request gets a 500;
 * - "truncate": every GET announces the full length, sends half of it and drops the connection;
 * - "flaky-truncate": every other GET is truncated (a retry succeeds);
 * - "stall": every GET sends its headers and 64 KiB, then nothing, never closing.
 */
export type OriginMode = "ok" | "error500" | "truncate" | "flaky-truncate" | "stall"

export interface OriginOptions {
  readonly mode?: OriginMode
  /** Pace GET bodies at this rate (per response), so a test can act mid-download. */
  readonly bytesPerSecond?: number
}

export interface Origin {
  readonly url: string
  readonly file: string
  readonly size: number
  readonly sha256: string
  /** Body bytes sent so far (HEAD answers count nothing). */
  bytesSent(): number
  /** GET requests answered so far. */
  gets(): number
  /** Requests of any method received so far (a daemon's HEAD probe included). */
  requests(): number
  setMode(mode: OriginMode): void
  close(): Promise<void>
}

const CHUNK = 64 * 1024

/** Serves one random file at /blob with HEAD and single-range GET support, and optional faults. */
export const startOrigin = async (dir: string, size: number, options: OriginOptions = {}): Promise<Origin> => {
  const file = path.join(dir, "origin.bin")
  const content = randomBytes(size)
  await fs.writeFile(file, content)
  const sha256 = createHash("sha256").update(content).digest("hex")
  let sent = 0
  let gets = 0
  let requests = 0
  let mode: OriginMode = options.mode ?? "ok"
  const server = http.createServer((req, res) => {
    requests++
    if (req.url !== "/blob") {
      res.writeHead(404).end()
      return
    }
    if (mode === "error500") {
      res.writeHead(500, { "content-type": "text/plain" }).end("origin is broken")
      return
    }
    const span = writeRangeHead(res, rangeOf(req.headers.range, size), size)
    if (span === undefined) return
    const { start, end } = span
    if (req.method === "HEAD") {
      res.end()
      return
    }
    const body = content.subarray(start, end + 1)
    gets++
    const cut = mode === "truncate" || (mode === "flaky-truncate" && gets % 2 === 1)
      ? Math.floor(body.length / 2)
      : mode === "stall" ? Math.min(CHUNK, body.length - 1) : body.length
    // Paced (or cut) bodies go out chunk by chunk; the byte count is what was actually written.
    let offset = 0
    const pump = () => {
      if (res.destroyed) return
      const n = Math.min(CHUNK, cut - offset)
      if (n > 0) {
        res.write(body.subarray(offset, offset + n))
        offset += n
        sent += n
      }
      if (offset < cut) {
        const delay = options.bytesPerSecond === undefined ? 0 : (n * 1000) / options.bytesPerSecond
        setTimeout(pump, delay)
      } else if (cut === body.length) {
        res.end()
      } else if (mode !== "stall") {
        res.socket?.destroy()
      } // stall: leave the connection open and silent
    }
    if (options.bytesPerSecond === undefined && cut === body.length) {
      sent += body.length
      res.end(body)
    } else {
      pump()
    }
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/blob`,
    file,
    size,
    sha256,
    bytesSent: () => sent,
    gets: () => gets,
    requests: () => requests,
    setMode: (m) => {
      mode = m
    },
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

export const damselfly = (name: string, args: ReadonlyArray<string>, cwd?: string, env?: Record<string, string>): Proc => {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
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

/** A `damselfly` server process on its own loopback port. */
export interface Server {
  readonly name: string
  readonly port: number
  readonly url: string
  proc: Proc
}

/** A loopback URL nobody listens on: a daemon given it as its scheduler goes to the origin itself. */
export const noScheduler = async () => `http://127.0.0.1:${await freePort()}`

export interface DaemonStart {
  /** Data directory (default `<dir>/<name>`). */
  readonly data?: string
  readonly dir?: string
  /** Scheduler URL(s); none given: one nobody listens on. */
  readonly schedulers?: string | ReadonlyArray<string>
  /** `--host-id` (default: the name). */
  readonly hostId?: string
  readonly port?: number
  readonly seed?: boolean
  readonly args?: ReadonlyArray<string>
  readonly env?: Record<string, string>
}

/** Spawns `damselfly daemon` (not yet waited for: see `waitHealthy`, or `startDaemon`). */
export const spawnDaemon = async (name: string, o: DaemonStart): Promise<Server> => {
  if (o.data === undefined && o.dir === undefined) throw new Error(`daemon ${name}: give dir or data`)
  const port = o.port ?? await freePort()
  const schedulers = o.schedulers === undefined ? [await noScheduler()] : typeof o.schedulers === "string" ? [o.schedulers] : o.schedulers
  const args = [
    "daemon", ...(o.seed === true ? ["--seed"] : []), "--port", String(port), "--data", o.data ?? path.join(o.dir!, name),
    ...schedulers.flatMap((s) => ["--scheduler", s]), "--host-id", o.hostId ?? name, ...(o.args ?? [])
  ]
  return { name, port, url: `http://127.0.0.1:${port}`, proc: damselfly(name, args, undefined, o.env) }
}

/** A `damselfly daemon` on a free port, answering /healthy. */
export const startDaemon = async (name: string, o: DaemonStart & { readonly startMillis?: number }): Promise<Server> => {
  const d = await spawnDaemon(name, o)
  await waitHealthy(d.url, d.proc, o.startMillis)
  return d
}

/** Spawns `damselfly scheduler` on a free port (or `port`), not yet waited for. */
export const spawnScheduler = async (name = "scheduler", args: ReadonlyArray<string> = [], o: { readonly port?: number; readonly env?: Record<string, string> } = {}): Promise<Server> => {
  const port = o.port ?? await freePort()
  return { name, port, url: `http://127.0.0.1:${port}`, proc: damselfly(name, ["scheduler", "--port", String(port), ...args], undefined, o.env) }
}

/** A `damselfly scheduler` on a free port, answering /healthy. */
export const startScheduler = async (name = "scheduler", args: ReadonlyArray<string> = [], o: { readonly env?: Record<string, string>; readonly startMillis?: number } = {}): Promise<Server> => {
  const s = await spawnScheduler(name, args, o)
  await waitHealthy(s.url, s.proc, o.startMillis)
  return s
}

/** One HTTP request whose answer is parsed as JSON when it is JSON (else the text). */
export const httpJson = (
  url: string,
  o: { readonly method?: string; readonly body?: string; readonly timeoutMillis?: number } = {}
): Promise<{ status: number; body: any }> =>
  new Promise((resolve, reject) => {
    const timeout = o.timeoutMillis ?? 5_000
    const headers = o.body === undefined ? {} : { "content-type": "application/json" }
    const req = http.request(url, { method: o.method ?? "GET", headers, timeout, agent: false }, (res) => {
      let text = ""
      res.on("data", (c) => (text += c))
      res.on("end", () => {
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within ${timeout} ms`)))
    req.on("error", reject)
    req.end(o.body)
  })

export const getJson = (url: string, timeoutMillis = 5_000) => httpJson(url, { timeoutMillis })

export const postRaw = (url: string, body: string) => httpJson(url, { method: "POST", body, timeoutMillis: 300_000 })

/** Most bytes within any window of `millis`, over transfers `{ at (ms), bytes }` sorted by time. */
export const busiestWindow = (events: ReadonlyArray<{ readonly at: number; readonly bytes: number }>, millis: number) => {
  let best = 0
  let sum = 0
  let j = 0
  for (let i = 0; i < events.length; i++) {
    sum += events[i].bytes
    while (events[i].at - events[j].at >= millis) sum -= events[j++].bytes
    best = Math.max(best, sum)
  }
  return best
}

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

// Process start-up (tsx transpiles on the fly) can take tens of seconds when several start at once on a
// loaded 2-core machine; a process that exits is reported at once, so a long wait costs nothing when it works.
export const waitHealthy = (base: string, proc?: Proc, millis = 90_000) =>
  waitFor(`${base}/healthy`, async () => {
    if (proc !== undefined && proc.child.exitCode !== null) throw new Error(`${proc.name} exited: ${proc.stderr().slice(-2000)}`)
    return (await getJson(`${base}/healthy`)).status === 200
  }, millis)

/** A size-limited tmpfs at `dir` (needs root); returns how to unmount it, or the reason it cannot. */
export const mountTmpfs = (dir: string, sizeMiB: number): { ok: true; unmount: () => void } | { ok: false; reason: string } => {
  if (process.getuid?.() !== 0) return { ok: false, reason: "mounting a tmpfs needs root" }
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m`, "tmpfs", dir], { stdio: "pipe" })
  } catch (e) {
    return { ok: false, reason: `mount -t tmpfs failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}` }
  }
  return { ok: true, unmount: () => execFileSync("umount", ["-l", dir], { stdio: "pipe" }) }
}

export interface RawReply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

/**
 * One request with the path sent exactly as given (no URL normalisation, so `..` and `%2e%2e` reach
 * the server), for fuzzing and hardening tests.
 */
export const rawRequest = (
  base: string,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMillis?: number }
): Promise<RawReply> =>
  new Promise((resolve, reject) => {
    const u = new URL(base)
    const req = http.request({
      host: u.hostname,
      port: u.port,
      method: o.method ?? "GET",
      path: o.path,
      headers: o.headers,
      agent: false,
      timeout: o.timeoutMillis ?? 10_000
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`no answer to ${o.method ?? "GET"} ${o.path} within ${o.timeoutMillis ?? 10_000} ms`)))
    req.on("error", reject)
    req.end(o.body)
  })

/** A process that is still running and never reported an unhandled failure on stderr. */
export const assertSound = (p: Proc) => {
  if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} is not running: ${p.stderr().slice(-2000)}`)
  if (/unhandled/i.test(p.stderr())) throw new Error(`${p.name} logged an unhandled failure: ${p.stderr().match(/.*unhandled.*/i)?.[0]}`)
}
