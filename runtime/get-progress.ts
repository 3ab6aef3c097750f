// What `damselfly get` shows on stderr while it downloads: a cli-progress bar (bytes, rate, ETA and
// the share from peers vs the origin) fed by the daemon's progress, and one summary line at the end.
// On a TTY by default; `--progress` forces it (on a pipe cli-progress prints a plain line now and
// then), `--no-progress` silences it.
import cliProgress from "cli-progress"
import { formatBytes } from "./config-units.ts"
import type { ProgressView } from "./progress.ts"

export interface ProgressDisplay {
  readonly update: (view: ProgressView) => void
  /** Stops the bar and prints the summary line. */
  readonly finish: (summary: { contentLength: number; bytesFromPeers: number; bytesFromOrigin: number; via: string }) => void
  /** Stops the bar without a summary (the download failed). */
  readonly abort: () => void
}

const percent = (part: number, whole: number) => (whole > 0 ? Math.round((100 * part) / whole) : 0)

/** The summary line: `32.0 MiB in 4.1 s (7.8 MiB/s), 100% from peers, 0% from the origin`. */
export const summaryLine = (s: { contentLength: number; bytesFromPeers: number; bytesFromOrigin: number; via: string }, seconds: number) => {
  const fetched = s.bytesFromPeers + s.bytesFromOrigin
  const rate = seconds > 0 ? `${formatBytes(Math.round(s.contentLength / seconds))}/s` : "-"
  const share = s.via === "origin"
    ? "straight from the origin (no daemon)"
    : fetched === 0
    ? "all from the local cache"
    : `${percent(s.bytesFromPeers, fetched)}% from peers, ${percent(s.bytesFromOrigin, fetched)}% from the origin`
  return `${formatBytes(s.contentLength)} in ${seconds.toFixed(1)} s (${rate}), ${share}`
}

export const progressDisplay = (stream: NodeJS.WriteStream, label: string): ProgressDisplay => {
  const started = Date.now()
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${label} [{bar}] {percentage}% | {done}/{size} | {rate} | ETA {eta_formatted} | peers {peers}% origin {origin}%`,
    barCompleteChar: "=",
    barIncompleteChar: " ",
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 2_000,
    etaBuffer: 20,
    fps: 5
  })
  let startedBar = false
  const payload = (v: ProgressView) => {
    const fetched = v.bytesFromPeers + v.bytesFromOrigin
    const seconds = Math.max(v.elapsedSeconds, 0.001)
    return {
      done: formatBytes(v.completedBytes),
      size: v.contentLength === null ? "?" : formatBytes(v.contentLength),
      rate: `${formatBytes(Math.round(fetched / seconds))}/s`,
      peers: percent(v.bytesFromPeers, fetched),
      origin: percent(v.bytesFromOrigin, fetched)
    }
  }
  return {
    update: (v) => {
      if (v.contentLength === null) return
      if (!startedBar) {
        bar.start(v.contentLength, v.completedBytes, payload(v))
        startedBar = true
      } else {
        bar.update(v.completedBytes, payload(v))
      }
    },
    finish: (s) => {
      if (startedBar) {
        bar.update(s.contentLength)
        bar.stop()
      }
      stream.write(`${label}: ${summaryLine(s, (Date.now() - started) / 1000)}\n`)
    },
    abort: () => {
      if (startedBar) bar.stop()
    }
  }
}
