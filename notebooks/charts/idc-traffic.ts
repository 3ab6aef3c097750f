// Traffic between IDCs: bytes per run for each (source IDC → destination IDC) pair, per strategy,
// plus all cross-IDC bytes together against the minimum when the results carry one.
import type { HeadlessDocument } from "../render.ts"
import { type ResultRow, finite, strategyOrder } from "../results.ts"
import { groupedBars } from "./bars.ts"
import { byteUnit, type Chart } from "./frame.ts"

const CROSS = "all cross-IDC"

const crossBytes = (r: ResultRow): number | undefined => {
  if (finite(r.crossIdcBytes)) return r.crossIdcBytes
  if (r.trafficBetweenIdcs === undefined) return undefined
  return Object.entries(r.trafficBetweenIdcs).filter(([k]) => { const [a, b] = k.split("->"); return a !== b }).reduce((n, [, v]) => n + v, 0)
}

export const idcTrafficChart = (doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>): Chart => {
  const pairs = [...new Set(rows.flatMap((r) => Object.keys(r.trafficBetweenIdcs ?? {})))].sort()
  const hasCross = rows.some((r) => crossBytes(r) !== undefined)
  const categories = [...pairs.map((p) => p.replace("->", " → ")), ...(hasCross ? [CROSS] : [])]
  const sample = (r: ResultRow, c: string): number | undefined =>
    c === CROSS ? crossBytes(r) : r.trafficBetweenIdcs?.[c.replace(" → ", "->")] ?? (r.trafficBetweenIdcs !== undefined ? 0 : undefined)
  const all = rows.flatMap((r) => categories.map((c) => sample(r, c))).filter(finite)
  const mins = rows.map((r) => r.crossIdcMinimumBytes).filter(finite)
  const [div, unit] = byteUnit(Math.max(1, ...all, ...mins))
  const minimum = mins.length > 0 ? Math.min(...mins) : undefined
  return groupedBars(doc, {
    id: "idc-traffic",
    title: "Traffic between IDCs per strategy",
    subtitle: `bytes sent from the source IDC to the destination IDC (origin counted in its IDC); mean per run over ${rows.length} runs`,
    xLabel: "source IDC → destination IDC",
    yLabel: `bytes per run (${unit})`,
    categories,
    strategies: strategyOrder(rows.map((r) => r.strategy)),
    samples: (c, s) => rows.filter((r) => r.strategy === s).map((r) => sample(r, c)).filter(finite).map((v) => v / div),
    references: minimum !== undefined && hasCross ? [{ y: minimum / div, label: "cross-IDC minimum", category: CROSS }] : [],
    emptyText: "no trafficBetweenIdcs or crossIdcBytes in these results",
    notes: pairs.length === 0 ? ["The results have no trafficBetweenIdcs (run them through `damselfly sweep` or runMeasured)."] : []
  })
}
