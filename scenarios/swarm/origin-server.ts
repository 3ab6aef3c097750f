// The swarm benchmark's origin: serves one file at /blob (HEAD, GET, single Range) from memory and
// counts the body bytes it sends; GET /stats answers {bytesSent, gets}, GET /log every body GET (range,
// when it arrived, when its last byte was handed to the kernel, the client's address). Runs inside the origin's
// namespace: node --import tsx scenarios/swarm/origin-server.ts FILE LISTEN PORT [WARMUP_BYTES]
import { readFileSync } from "node:fs"
import * as http from "node:http"
import { rangeOf, writeRangeHead } from "../../runtime/testing/range.ts"

const [file, listen, port, warmupArg] = process.argv.slice(2)
if (file === undefined || listen === undefined || port === undefined) {
  console.error("usage: origin-server.ts FILE LISTEN PORT")
  process.exit(2)
}
const content = readFileSync(file)
const size = content.length
const warmup = Math.min(size, Number(warmupArg ?? 0))
let sent = 0
let gets = 0
const requests: Array<{ start: number; end: number; from: string; arrivedAt: number; finishedAt: number }> = []

const server = http.createServer((req, res) => {
  if (req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ bytesSent: sent, gets }))
    return
  }
  if (req.url === "/log") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ requests }))
    return
  }
  // /warmup: the first WARMUP bytes (argv[5], 0 = none), another task for daemons to serve once before the timed run.
  const served = req.url === "/blob" ? content : req.url === "/warmup" && warmup > 0 ? content.subarray(0, warmup) : undefined
  if (served === undefined) {
    res.writeHead(404).end()
    return
  }
  const span = writeRangeHead(res, rangeOf(req.headers.range, served.length), served.length)
  if (span === undefined) return
  const { start, end } = span
  if (req.method === "HEAD") {
    res.end()
    return
  }
  gets++
  // Count what actually left: a client that hangs up early is not charged the whole body.
  const body = served.subarray(start, end + 1)
  const socket = res.socket
  const before = socket?.bytesWritten ?? 0
  const arrivedAt = Date.now()
  res.on("finish", () => requests.push({ start, end, from: req.socket.remoteAddress ?? "", arrivedAt, finishedAt: Date.now() }))
  res.on("close", () => {
    sent += Math.min(body.length, Math.max(0, (socket?.bytesWritten ?? before) - before))
  })
  res.end(body)
})
server.keepAliveTimeout = 60_000
server.listen(Number(port), listen, () => console.log(`origin listening on ${listen}:${port}, ${size} bytes`))
process.on("SIGTERM", () => process.exit(0))
