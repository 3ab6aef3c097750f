// A run's fingerprint: every meaningful event as one text line folded into an incremental sha256.
// Lines hold only virtual time and simulation-local names (host ids, piece indices, flow numbers),
// never wall-clock time, object identity or Effect fiber ids, so the same (scenario, seed) gives the
// same hash in any process.
import { createHash, type Hash } from "node:crypto"

/** Bytes gathered before they are fed to the hash (sha256 is chunk-agnostic: same digest, cheaper). */
const CHUNK = 1 << 20

/**
 * Writes `${x.toFixed(3)} ` into `out` as ASCII and returns its length, without toFixed's exact decimal
 * conversion and a string per instant (millions in a large run). toFixed rounds the exact value of x·1000
 * to an integer, ties up. Its floating-point product y is that value correctly rounded, and a tie n + 1/2
 * is itself a double (y < 2^40), so y lies on the same side of every tie as the exact product, or on the
 * tie: away from a tie (with a margin of twice the product's rounding error) rounding y gives the same
 * integer. On or near a tie, or outside [0, 2^40/1000), toFixed itself.
 */
export const fixed3 = (x: number, out: Uint8Array): number => {
  const y = x * 1000
  if (y >= 0 && y < 1099511627776) {
    const floor = Math.floor(y)
    const frac = y - floor
    const slack = y * 2.3e-16 + 1e-300
    if (Math.abs(frac - 0.5) > slack) {
      const n = frac > 0.5 ? floor + 1 : floor
      const whole = Math.floor(n / 1000)
      const part = n - whole * 1000
      let digits = 1
      for (let w = whole; w >= 10; w = Math.floor(w / 10)) digits++
      let at = digits
      let w = whole
      do {
        const q = Math.floor(w / 10)
        out[--at] = 48 + (w - q * 10)
        w = q
      } while (w > 0)
      at = digits
      out[at++] = 46
      out[at++] = 48 + Math.floor(part / 100)
      out[at++] = 48 + (Math.floor(part / 10) % 10)
      out[at++] = 48 + (part % 10)
      out[at++] = 32
      return at
    }
  }
  const text = `${x.toFixed(3)} `
  for (let k = 0; k < text.length; k++) out[k] = text.charCodeAt(k)
  return text.length
}

export class Trace {
  private hash: Hash = createHash("sha256")
  private digest: string | undefined
  lines = 0
  /** Optional sink for debugging (e.g. print the first lines of two runs that disagree). */
  constructor(private readonly sink?: (line: string) => void) {}

  /**
   * Lines not yet fed to the hash, as UTF-8 bytes (what `hash.update(string)` would hash): written
   * straight into one buffer, not concatenated into a string that is flattened and encoded later (a
   * large run records ~10 M lines).
   */
  private buffer: Buffer = Buffer.allocUnsafe(CHUNK)
  private used = 0

  /** The last time formatted, and its text as bytes (`time.toFixed(3)` and a space): lines often share their instant. */
  private lastTime = NaN
  private timeBytes = new Uint8Array(32)
  private timeLength = 0

  record(timeMillis: number, line: string): void {
    this.begin(timeMillis, line.length).text(line).end()
  }

  /**
   * A line written in parts (`text`, `int`), then `end()`: what `record` does with the same text
   * joined, without building the line as a string first (a flow's start and end, a report, a store:
   * millions of lines). `most` bounds the UTF-16 length of the parts to come.
   */
  begin(timeMillis: number, most: number): this {
    // Microsecond resolution is below any latency in a scenario; fixed formatting keeps it stable.
    if (timeMillis !== this.lastTime) {
      this.lastTime = timeMillis
      this.timeLength = fixed3(timeMillis, this.timeBytes)
    }
    // At most 3 UTF-8 bytes per UTF-16 unit, and the newline.
    const bound = this.timeLength + most * 3 + 1
    if (this.used + bound > this.buffer.length) {
      this.flush()
      if (bound > this.buffer.length) this.buffer = Buffer.allocUnsafe(bound)
    }
    this.lineStart = this.used
    const b = this.buffer
    const time = this.timeBytes
    let at = this.used
    for (let k = 0; k < this.timeLength; k++) b[at++] = time[k]
    this.used = at
    return this
  }

  text(s: string): this {
    const n = s.length
    // A short ASCII string byte by byte: cheaper than a call into Buffer's UTF-8 encoder per part.
    if (n <= 64) {
      const b = this.buffer
      let at = this.used
      for (let k = 0; k < n; k++) {
        const c = s.charCodeAt(k)
        if (c >= 0x80) return this.encoded(s)
        b[at++] = c
      }
      this.used = at
      return this
    }
    return this.encoded(s)
  }

  /** `s` through the UTF-8 encoder (over any bytes `text` wrote of it). */
  private encoded(s: string): this {
    this.used += this.buffer.write(s, this.used)
    return this
  }

  /** `String(n)` for a non-negative safe integer, digit by digit; anything else as `String(n)`. */
  int(n: number): this {
    // Most are small (piece indices, flow numbers, piece lengths): int32 arithmetic, which the
    // compiler turns into multiplications instead of floating-point divisions.
    if ((n | 0) === n && n >= 0) {
      const b = this.buffer
      const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10
      let at = this.used + digits
      this.used = at
      let x = n
      do {
        const q = (x / 10) | 0
        b[--at] = 48 + x - q * 10
        x = q
      } while (x > 0)
      return this
    }
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) return this.text(String(n))
    const b = this.buffer
    let digits = 1
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
    let at = this.used + digits
    this.used = at
    let x = n
    do {
      const q = Math.floor(x / 10)
      b[--at] = 48 + (x - q * 10)
      x = q
    } while (x > 0)
    return this
  }

  end(): void {
    this.buffer[this.used++] = 10
    this.lines++
    if (this.sink !== undefined) this.sink(this.buffer.toString("utf8", this.lineStart, this.used))
  }

  /** Where the line being written starts in `buffer` (for the sink). */
  private lineStart = 0

  private flush(): void {
    if (this.used > 0) this.hash.update(this.buffer.subarray(0, this.used))
    this.used = 0
  }

  /** The final hash; the trace is closed afterwards. */
  finish(): string {
    if (this.digest === undefined) {
      this.flush()
      this.digest = this.hash.digest("hex")
    }
    return this.digest
  }
}
