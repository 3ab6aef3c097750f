// Completion-time CDF per strategy: the fraction of peers finished by each time since their arrival,
// pooled over the runs of a strategy. Without per-peer times a run contributes its p50/p99/max only.
import type { HeadlessDocument } from "../render.ts"
import * as d3 from "d3"
import { type ResultRow, finite, strategyOrder } from "../results.ts"
import { type Chart, emptyNote, frame, strategyColor } from "./frame.ts"

const runsLabel = (runs: ReadonlyArray<number>): string => {
  const lo = Math.min(...runs)
  const hi = Math.max(...runs)
  return `${lo === hi ? lo : `${lo}–${hi}`} runs per strategy`
}

export const completionCdfChart = (doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>): Chart => {
  const strategies = strategyOrder(rows.map((r) => r.strategy))
  let approximate = false
  const series = strategies.map((s) => {
    const mine = rows.filter((r) => r.strategy === s)
    const times = mine.flatMap((r) => {
      if (r.completionTimesSeconds !== undefined) return [...r.completionTimesSeconds]
      approximate = true
      const { p50, p99, max } = r.completionSeconds
      return [p50, p99, max].filter(finite)
    }).sort((a, b) => a - b)
    return { s, runs: mine.length, points: times.map((t, i) => [t, (i + 1) / times.length] as const) }
  })
  const f = frame(doc, {
    title: "Completion time CDF per strategy",
    subtitle: `seconds from a peer's arrival to its last verified piece; pooled over ${runsLabel(series.map((x) => x.runs))}` +
      (approximate ? "; approximate (p50/p99/max only)" : ""),
    xLabel: "completion time (s)",
    yLabel: "fraction of peers finished"
  })
  const xMax = d3.max(series.flatMap((x) => x.points.map((p) => p[0]))) ?? 1
  const x = d3.scaleLinear().domain([0, xMax > 0 ? xMax : 1]).nice().range([0, f.width])
  const y = d3.scaleLinear().domain([0, 1]).range([f.height, 0])
  f.axes(d3.axisBottom(x).ticks(8), d3.axisLeft(y).ticks(5).tickFormat(d3.format(".0%")))
  const line = d3.line<readonly [number, number]>().x((p) => x(p[0])).y((p) => y(p[1])).curve(d3.curveStepAfter)
  for (const { s, points } of series) {
    if (points.length === 0) continue
    const path = [[0, 0] as const, [points[0][0], 0] as const, ...points]
    f.plot.append("path").attr("class", "series").attr("data-series", s).attr("d", line(path) ?? "")
      .attr("fill", "none").attr("stroke", strategyColor(s)).attr("stroke-width", 2)
  }
  if (series.every((x) => x.points.length === 0)) emptyNote(f, "no finished peers")
  f.legend(strategies, "line")
  return {
    id: "completion-cdf",
    title: "Completion time CDF per strategy",
    svg: f.serialize(),
    notes: approximate ? ["Some results have no completionTimesSeconds; their CDF is drawn from p50/p99/max only."] : []
  }
}
