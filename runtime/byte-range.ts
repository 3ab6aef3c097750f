// The HTTP Range a client asks of served content (RFC 9110 §14): one byte range, in any of its three
// forms ("a-b", "a-", suffix "-n"), resolved against the content's size. Several ranges in one request
// are refused rather than answered with multipart/byteranges, which no Damselfly client needs.

/** Where a range request lands: the whole content, one span, or nothing (416). */
export type ResolvedRange =
  | { readonly _tag: "Whole" }
  | { readonly _tag: "Span"; readonly start: number; readonly end: number }
  | { readonly _tag: "Unsatisfiable" }
  | { readonly _tag: "Invalid"; readonly message: string }

/** A range as an in-process caller may give it: the header value, or inclusive offsets (end open = to the last byte). */
export type RangeRequest = string | { readonly start: number; readonly end?: number | undefined }

const SPEC = /^(\d*)-(\d*)$/

export const resolveRange = (range: RangeRequest | undefined, size: number): ResolvedRange => {
  if (range === undefined) return { _tag: "Whole" }
  if (typeof range !== "string") {
    const { start, end } = range
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
      return { _tag: "Invalid", message: `range: expected 0 <= start <= end, got ${JSON.stringify(range)}` }
    }
    if (start >= size) return { _tag: "Unsatisfiable" }
    return span(start, Math.min(end ?? size - 1, size - 1))
  }
  const header = range.trim()
  if (!header.startsWith("bytes=")) {
    return { _tag: "Invalid", message: `Range: expected "bytes=start-end", got ${JSON.stringify(header.slice(0, 100))}` }
  }
  const specs = header.slice("bytes=".length).split(",").map((s) => s.trim())
  if (specs.length > 1) {
    return { _tag: "Invalid", message: `Range: ${specs.length} ranges asked; only one range per request is supported` }
  }
  const m = SPEC.exec(specs[0])
  if (m === null || (m[1] === "" && m[2] === "")) {
    return { _tag: "Invalid", message: `Range: expected "bytes=start-end", "bytes=start-" or "bytes=-suffix", got ${JSON.stringify(header.slice(0, 100))}` }
  }
  if (m[1] === "") {
    // Suffix: the last n bytes (all of them when n exceeds the size); "-0" asks for nothing.
    const n = Number(m[2])
    if (n === 0 || size === 0) return { _tag: "Unsatisfiable" }
    return span(Math.max(0, size - n), size - 1)
  }
  const start = Number(m[1])
  const end = m[2] === "" ? size - 1 : Number(m[2])
  if (m[2] !== "" && end < start) return { _tag: "Invalid", message: `Range: end ${end} before start ${start}` }
  if (start >= size) return { _tag: "Unsatisfiable" }
  return span(start, Math.min(end, size - 1))
}

// A span that covers everything is still a 206 (the client asked for a range), as RFC 9110 allows.
const span = (start: number, end: number): ResolvedRange => ({ _tag: "Span", start, end })

export const contentRangeOf = (start: number, end: number, size: number) => `bytes ${start}-${end}/${size}`
