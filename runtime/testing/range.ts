// The single Range form test origins serve ("bytes=a-b" or "bytes=a-"), shared by the in-process
// origin of the tests and the swarm benchmark's origin process.
export type RangeAnswer =
  | { readonly kind: "whole" }
  | { readonly kind: "part"; readonly start: number; readonly end: number }
  | { readonly kind: "unsatisfiable" }

export const rangeOf = (header: string | undefined, size: number): RangeAnswer => {
  const m = /^bytes=(\d+)-(\d*)$/.exec(header ?? "")
  if (m === null) return { kind: "whole" }
  const start = Number(m[1])
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)
  return start > end || start >= size ? { kind: "unsatisfiable" } : { kind: "part", start, end }
}

/** Writes the status line and headers for `range`; returns the byte span to send, or undefined if done. */
export const writeRangeHead = (
  res: import("node:http").ServerResponse,
  range: RangeAnswer,
  size: number
): { start: number; end: number } | undefined => {
  if (range.kind === "unsatisfiable") {
    res.writeHead(416, { "content-range": `bytes */${size}` }).end()
    return undefined
  }
  if (range.kind === "part") {
    res.writeHead(206, { "content-length": range.end - range.start + 1, "content-range": `bytes ${range.start}-${range.end}/${size}`, "accept-ranges": "bytes" })
    return { start: range.start, end: range.end }
  }
  res.writeHead(200, { "content-length": size, "accept-ranges": "bytes" })
  return { start: 0, end: size - 1 }
}
