// Bandwidth savings per strategy: origin bytes saved against every peer fetching from the origin.
import type { HeadlessDocument } from "../render.ts"
import { type ResultRow, finite, groupLabel, strategyOrder } from "../results.ts"
import { groupedBars } from "./bars.ts"
import type { Chart } from "./frame.ts"

export const savingsChart = (doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>): Chart => {
  const groups = [...new Set(rows.map(groupLabel))]
  return groupedBars(doc, {
    id: "savings",
    title: "Origin bandwidth savings per strategy",
    subtitle: `1 − origin egress / (peers × file size); mean over ${rows.length} runs, whiskers min–max`,
    xLabel: groups.length > 1 ? "parameters" : "scenario",
    yLabel: "origin bytes saved (%)",
    categories: groups,
    strategies: strategyOrder(rows.map((r) => r.strategy)),
    samples: (c, s) => rows.filter((r) => r.strategy === s && groupLabel(r) === c).map((r) => r.savingsPercent).filter(finite),
    emptyText: "no results",
    format: (v) => `${v.toFixed(1)}%`
  })
}
