// `damselfly preheat IMAGE`: submit a preheat job to a scheduler and, with --wait, follow it to the
// end, printing each layer's progress.
import { authHeaders, JOBS_TOKEN_ENV, JOBS_TOKEN_HEADER, resolveToken } from "./auth.ts"
import { callPromise } from "./http-call.ts"

export interface PreheatCommand {
  readonly scheduler: string
  readonly url: string
  readonly type: "image" | "file"
  readonly platform?: string | undefined
  readonly scope?: string | undefined
  readonly username?: string | undefined
  readonly password?: string | undefined
  readonly ips?: ReadonlyArray<string> | undefined
  readonly count?: number | undefined
  readonly percentage?: number | undefined
  readonly token?: string | undefined
  /** The scheduler's operator secret for the jobs API (falls back to DAMSELFLY_JOBS_TOKEN). */
  readonly jobsToken?: string | undefined
  readonly wait: boolean
  readonly timeoutMillis?: number | undefined
}

export class PreheatFailed extends Error {}

const jobsHeaders = (flag: string | undefined): Record<string, string> => {
  const t = resolveToken(flag, JOBS_TOKEN_ENV)
  return t === undefined ? {} : { [JOBS_TOKEN_HEADER]: t }
}

const callScheduler = async (c: PreheatCommand, method: string, route: string, body?: unknown) => {
  const base = c.scheduler.replace(/\/+$/, "")
  const reply = await callPromise(`${base}${route}`, {
    method,
    headers: { ...authHeaders(resolveToken(c.token)), ...jobsHeaders(c.jobsToken), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMillis: 30_000
  }).catch((e: unknown) => {
    throw new PreheatFailed(`scheduler ${base}: ${e instanceof Error ? e.message : String(e)}`)
  })
  const text = reply.body.toString("utf8")
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  if (reply.status >= 300) throw new PreheatFailed(`scheduler ${base}: HTTP ${reply.status}: ${typeof json?.error === "string" ? json.error : text.slice(0, 300)}`)
  return json
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`

/** One line per layer: digest (or URL), bytes held over all chosen peers, state. */
export const progressLines = (job: any): Array<string> =>
  ((job?.result?.layers ?? []) as Array<any>).map((l) =>
    `  ${String(l.digest ?? l.url).slice(0, 19)}  ${mib(l.bytesDone)} / ${mib(l.bytesTotal)}  ${l.state}${l.peers.some((p: any) => p.error !== undefined) ? `  (${l.peers.find((p: any) => p.error !== undefined).error})` : ""}`)

export const preheat = async (c: PreheatCommand, log: (line: string) => void) => {
  const args = {
    type: c.type,
    url: c.url,
    ...(c.platform === undefined ? {} : { platform: c.platform }),
    ...(c.scope === undefined ? {} : { scope: c.scope }),
    ...(c.username === undefined ? {} : { username: c.username }),
    ...(c.password === undefined ? {} : { password: c.password }),
    ...(c.ips === undefined || c.ips.length === 0 ? {} : { ips: c.ips }),
    ...(c.count === undefined ? {} : { count: c.count }),
    ...(c.percentage === undefined ? {} : { percentage: c.percentage })
  }
  const created = await callScheduler(c, "POST", "/api/v1/jobs", { type: "preheat", args })
  log(`job ${created.id} ${created.state}`)
  if (!c.wait) return created
  const deadline = Date.now() + (c.timeoutMillis ?? 3_600_000)
  let last = ""
  while (true) {
    const job = await callScheduler(c, "GET", `/api/v1/jobs/${created.id}`)
    const lines = [`job ${job.id} ${job.state}`, ...progressLines(job)].join("\n")
    if (lines !== last) log(lines)
    last = lines
    if (job.state === "SUCCESS") return job
    if (job.state === "FAILURE") throw new PreheatFailed(`job ${job.id} failed: ${job.error ?? "unknown reason"}`)
    if (Date.now() > deadline) throw new PreheatFailed(`job ${job.id} still ${job.state} after ${Math.round((c.timeoutMillis ?? 3_600_000) / 1000)} s`)
    await new Promise((r) => setTimeout(r, 1_000))
  }
}
