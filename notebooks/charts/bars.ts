// Grouped bars shared by the bar charts: categories along x, one bar per strategy in each, the bar
// at the mean of its samples (runs) with a min–max whisker when there are several.
import type { HeadlessDocument } from "../render.ts"
import * as d3 from "d3"
import { type Chart, emptyNote, frame, mean, strategyColor } from "./frame.ts"

export interface GroupedBars {
  readonly id: string
  readonly title: string
  readonly subtitle?: string
  readonly xLabel: string
  readonly yLabel: string
  readonly categories: ReadonlyArray<string>
  readonly strategies: ReadonlyArray<string>
  /** Samples (one per run) for a bar; empty = no bar. */
  readonly samples: (category: string, strategy: string) => ReadonlyArray<number>
  /** Horizontal reference lines, across the plot or over one category. */
  readonly references?: ReadonlyArray<{ readonly y: number; readonly label: string; readonly category?: string }>
  readonly emptyText: string
  readonly notes?: ReadonlyArray<string>
  readonly format?: (v: number) => string
}

export const groupedBars = (doc: HeadlessDocument, o: GroupedBars): Chart => {
  const f = frame(doc, { ...o, xTickLines: Math.max(1, ...o.categories.map((c) => c.split(/ · |, /).length)) })
  const bars = o.categories.flatMap((c) =>
    o.strategies.map((s) => ({ c, s, xs: o.samples(c, s).filter(Number.isFinite) })).filter((b) => b.xs.length > 0))
  const refs = o.references ?? []
  const top = Math.max(0, ...bars.flatMap((b) => b.xs), ...refs.map((r) => r.y))
  const bottom = Math.min(0, ...bars.flatMap((b) => b.xs))
  const x = d3.scaleBand<string>().domain(o.categories).range([0, f.width]).paddingInner(0.2).paddingOuter(0.1)
  const inner = d3.scaleBand<string>().domain(o.strategies).range([0, x.bandwidth()]).padding(0.08)
  const y = d3.scaleLinear().domain([bottom, top === 0 ? 1 : top * 1.08]).nice().range([f.height, 0])
  f.axes(d3.axisBottom(x), d3.axisLeft(y).ticks(6))
  const fmt = o.format ?? d3.format(".3~g")
  for (const b of bars) {
    const m = mean(b.xs)
    const x0 = (x(b.c) ?? 0) + (inner(b.s) ?? 0)
    const g = f.plot.append("g").attr("class", "bar").attr("data-series", b.s).attr("data-category", b.c)
    g.append("rect").attr("x", x0).attr("width", inner.bandwidth())
      .attr("y", Math.min(y(m), y(0))).attr("height", Math.abs(y(0) - y(m))).attr("fill", strategyColor(b.s))
    if (b.xs.length > 1) {
      const cx = x0 + inner.bandwidth() / 2
      const [lo, hi] = d3.extent(b.xs) as [number, number]
      g.append("line").attr("x1", cx).attr("x2", cx).attr("y1", y(lo)).attr("y2", y(hi)).attr("stroke", "#333")
      for (const v of [lo, hi]) g.append("line").attr("x1", cx - 4).attr("x2", cx + 4).attr("y1", y(v)).attr("y2", y(v)).attr("stroke", "#333")
    }
    if (inner.bandwidth() >= 24) {
      g.append("text").attr("x", x0 + inner.bandwidth() / 2).attr("y", Math.min(y(m), y(0)) - 4)
        .attr("text-anchor", "middle").attr("font-size", 10).attr("fill", "#333").text(fmt(m))
    }
  }
  for (const r of refs) {
    const [x1, x2] = r.category !== undefined && x(r.category) !== undefined
      ? [x(r.category)!, x(r.category)! + x.bandwidth()]
      : [0, f.width]
    f.plot.append("line").attr("class", "reference").attr("x1", x1).attr("x2", x2).attr("y1", y(r.y)).attr("y2", y(r.y))
      .attr("stroke", "#000").attr("stroke-dasharray", "5,4")
    f.plot.append("text").attr("x", x2 - 2).attr("y", y(r.y) - 4).attr("text-anchor", "end").attr("font-size", 10).text(r.label)
  }
  if (bars.length === 0) emptyNote(f, o.emptyText)
  f.legend(o.strategies, "box")
  return { id: o.id, title: o.title, svg: f.serialize(), notes: o.notes ?? [] }
}
