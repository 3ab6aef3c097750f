// Origin egress over time: cumulative bytes the origin has sent, one line per run, coloured by
// strategy. Without a series a run shows as one point (its total at its end).
import type { HeadlessDocument } from "../render.ts"
import * as d3 from "d3"
import { type ResultRow, finite, strategyOrder } from "../results.ts"
import { byteUnit, type Chart, emptyNote, frame, strategyColor } from "./frame.ts"

const endOf = (r: ResultRow): number | undefined =>
  finite(r.virtualSeconds) ? r.virtualSeconds : finite(r.completionSeconds.max) ? r.completionSeconds.max : undefined

export const originEgressChart = (doc: HeadlessDocument, rows: ReadonlyArray<ResultRow>): Chart => {
  const strategies = strategyOrder(rows.map((r) => r.strategy))
  const withSeries = rows.filter((r) => r.originEgressSeries !== undefined && r.originEgressSeries.length > 0)
  const totals = rows.filter((r) => r.originEgressSeries === undefined).flatMap((r) => {
    const t = endOf(r)
    return t === undefined ? [] : [{ r, t }]
  })
  const [div, unit] = byteUnit(Math.max(1, ...rows.map((r) => r.originEgressBytes)))
  const f = frame(doc, {
    title: "Origin egress over time",
    subtitle: `cumulative bytes sent by the origin, virtual time; one line per run (${rows.length} runs)` +
      (totals.length > 0 ? `; ${totals.length} runs without a series shown as their final total` : ""),
    xLabel: "virtual time (s)",
    yLabel: `origin egress (${unit})`
  })
  const xMax = d3.max([...withSeries.flatMap((r) => r.originEgressSeries!.map((p) => p[0])), ...totals.map((p) => p.t)]) ?? 1
  const yMax = d3.max(rows.map((r) => r.originEgressBytes / div)) ?? 1
  const x = d3.scaleLinear().domain([0, xMax > 0 ? xMax : 1]).nice().range([0, f.width])
  const y = d3.scaleLinear().domain([0, yMax > 0 ? yMax * 1.05 : 1]).nice().range([f.height, 0])
  f.axes(d3.axisBottom(x).ticks(8), d3.axisLeft(y).ticks(6))
  const line = d3.line<readonly [number, number]>().x((p) => x(p[0])).y((p) => y(p[1] / div)).curve(d3.curveStepAfter)
  for (const s of strategies) {
    for (const r of withSeries.filter((r) => r.strategy === s)) {
      f.plot.append("path").attr("class", "series").attr("data-series", s).attr("d", line(r.originEgressSeries!) ?? "")
        .attr("fill", "none").attr("stroke", strategyColor(s)).attr("stroke-width", 1.8).attr("stroke-opacity", 0.8)
    }
    for (const { r, t } of totals.filter((p) => p.r.strategy === s)) {
      f.plot.append("circle").attr("class", "series").attr("data-series", s).attr("cx", x(t)).attr("cy", y(r.originEgressBytes / div))
        .attr("r", 4).attr("fill", strategyColor(s))
    }
  }
  if (rows.length === 0) emptyNote(f, "no results")
  f.legend(strategies, "line")
  return {
    id: "origin-egress",
    title: "Origin egress over time",
    svg: f.serialize(),
    notes: totals.length > 0 ? ["Some results have no originEgressSeries; they show as one point at their end."] : []
  }
}
