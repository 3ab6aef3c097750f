// How far each strategy is from the best possible: slowest peer's completion over the Kumar–Ross
// bound, and over the discrete optimum when the results carry one.
import type { HeadlessDocument } from "../render.ts"
import { type ResultRow, finite, groupLabel, strategyOrder } from "../results.ts"
import { groupedBars } from "./bars.ts"
import type { Chart } from "./frame.ts"

const KR = "vs Kumar–Ross bound"
const OPT = "vs discrete optimum"

export const boundRatioChart = (doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>): Chart => {
  const groups = [...new Set(rows.map(groupLabel))]
  const hasOpt = rows.some((r) => finite(r.discreteOptimumSeconds))
  const measures = hasOpt ? [KR, OPT] : [KR]
  const categories = groups.length > 1 ? measures.flatMap((m) => groups.map((g) => `${m} · ${g}`)) : measures
  const ratio = (r: ResultRow, m: string): number | undefined => {
    const max = r.completionSeconds.max
    const den = m === KR ? r.boundSeconds : r.discreteOptimumSeconds
    return finite(max) && finite(den) && den > 0 ? max / den : undefined
  }
  return groupedBars(doc, {
    id: "bound-ratio",
    title: "Slowest completion relative to the bound, per strategy",
    subtitle: `1 = optimal; mean over runs, whiskers min–max${hasOpt ? "" : "; no discreteOptimumSeconds in these results"}`,
    xLabel: groups.length > 1 ? "bound · parameters" : "bound",
    yLabel: "completion max / bound (×)",
    categories,
    strategies: strategyOrder(rows.map((r) => r.strategy)),
    samples: (c, s) =>
      rows
        .filter((r) => r.strategy === s && (groups.length <= 1 || c.endsWith(` · ${groupLabel(r)}`)))
        .map((r) => ratio(r, c.startsWith(OPT) ? OPT : KR))
        .filter(finite),
    references: [{ y: 1, label: "bound" }],
    emptyText: "no finished runs",
    notes: hasOpt ? [] : ["The results have no discreteOptimumSeconds; only the Kumar–Ross ratio is shown."],
    format: (v) => `${v.toFixed(2)}×`
  })
}
