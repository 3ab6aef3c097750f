// What every chart shares: an SVG with a title, a plot area, labelled axes with units, a legend
// naming each series, one colour per strategy (stable across charts), byte units.
import * as d3 from "d3"
import { Strategy } from "../../sim/scenario.ts"
import type { HeadlessDocument } from "../render.ts"

export interface Chart {
  /** File stem of the PNG and anchor in the HTML. */
  readonly id: string
  readonly title: string
  /** Serialised <svg> element. */
  readonly svg: string
  /** Caveats shown under the chart (e.g. a field the results lack). */
  readonly notes: ReadonlyArray<string>
}

export const WIDTH = 860
export const HEIGHT = 460
const MARGIN = { top: 48, right: 170, bottom: 64, left: 78 }

/** A strategy's colour: by its place in the Strategy schema's list, so it is the same in every chart. */
export const strategyColor = (name: string): string => {
  const known: ReadonlyArray<string> = Strategy.literals
  const i = known.indexOf(name)
  const palette = d3.schemeTableau10
  if (i >= 0) return palette[i % palette.length]
  let h = 0
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return palette[h % palette.length]
}

// Elements are typed loosely: no DOM lib in this project (see HeadlessDocument).
type El = any
export type Sel = d3.Selection<El, unknown, null, undefined>

export interface Frame {
  readonly svg: Sel
  readonly plot: Sel
  readonly width: number
  readonly height: number
  /** Draws the axes (after the scales are known) with their labels. */
  axes(x: d3.Axis<d3.NumberValue> | d3.Axis<string>, y: d3.Axis<d3.NumberValue>): void
  /** The legend: one entry per series, drawn as a line or a filled box. */
  legend(series: ReadonlyArray<string>, kind: "line" | "box"): void
  serialize(): string
}

export const frame = (doc: HeadlessDocument, o: { title: string; subtitle?: string; xLabel: string; yLabel: string; xTickLines?: number }): Frame => {
  const bottom = MARGIN.bottom + 14 * Math.max(0, (o.xTickLines ?? 1) - 1)
  const width = WIDTH - MARGIN.left - MARGIN.right
  const height = HEIGHT - MARGIN.top - bottom
  const svg = d3.select(doc.body as El).append("svg")
    .attr("xmlns", "http://www.w3.org/2000/svg")
    .attr("width", WIDTH).attr("height", HEIGHT)
    .attr("viewBox", `0 0 ${WIDTH} ${HEIGHT}`)
    .attr("font-family", "sans-serif").attr("font-size", 12)
  svg.append("rect").attr("width", WIDTH).attr("height", HEIGHT).attr("fill", "white")
  svg.append("text").attr("class", "chart-title").attr("x", MARGIN.left).attr("y", 22)
    .attr("font-size", 16).attr("font-weight", "bold").text(o.title)
  if (o.subtitle !== undefined) {
    svg.append("text").attr("class", "chart-subtitle").attr("x", MARGIN.left).attr("y", 38).attr("fill", "#555").attr("font-size", 11)
      .text(o.subtitle.length > 118 ? `${o.subtitle.slice(0, 117)}…` : o.subtitle)
  }
  const plot = svg.append("g").attr("class", "plot").attr("transform", `translate(${MARGIN.left},${MARGIN.top})`)
  return {
    svg,
    plot,
    width,
    height,
    axes(x, y) {
      const gx = plot.append("g").attr("class", "x-axis").attr("transform", `translate(0,${height})`)
      ;(x as d3.Axis<d3.NumberValue>)(gx as Sel)
      // Long category labels: one line per " · " or ", " part.
      if ((o.xTickLines ?? 1) > 1) {
        gx.selectAll<El, string>(".tick text").each(function(d) {
          const t = d3.select(this).text("")
          String(d).split(/ · |, /).forEach((part, i) => t.append("tspan").attr("x", 0).attr("dy", i === 0 ? "0.71em" : "1.15em").text(part))
        })
      }
      const gy = plot.append("g").attr("class", "y-axis")
      y(gy as Sel)
      gy.selectAll(".tick line").clone().attr("x2", width).attr("stroke-opacity", 0.08)
      plot.append("text").attr("class", "axis-label x-label").attr("x", width / 2).attr("y", height + bottom - 20)
        .attr("text-anchor", "middle").attr("font-size", 13).text(o.xLabel)
      plot.append("text").attr("class", "axis-label y-label").attr("transform", `translate(${-58},${height / 2}) rotate(-90)`)
        .attr("text-anchor", "middle").attr("font-size", 13).text(o.yLabel)
    },
    legend(series, kind) {
      const g = plot.append("g").attr("class", "legend").attr("transform", `translate(${width + 20},0)`)
      g.append("text").attr("font-weight", "bold").attr("y", 0).text("strategy")
      series.forEach((s, i) => {
        const row = g.append("g").attr("class", "legend-item").attr("data-series", s).attr("transform", `translate(0,${18 + i * 20})`)
        if (kind === "line") row.append("line").attr("x1", 0).attr("x2", 22).attr("y1", -4).attr("y2", -4).attr("stroke", strategyColor(s)).attr("stroke-width", 3)
        else row.append("rect").attr("x", 0).attr("y", -12).attr("width", 16).attr("height", 12).attr("fill", strategyColor(s))
        row.append("text").attr("x", 28).attr("y", 0).text(s)
      })
    },
    serialize: () => (svg.node() as unknown as { outerHTML: string }).outerHTML
  }
}

/** A byte unit for values up to `max`: [divisor, "MiB"]. */
export const byteUnit = (max: number): readonly [number, string] => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let u = 0
  while (max >= 1024 ** (u + 1) && u < units.length - 1) u++
  return [1024 ** u, units[u]]
}

/** Draws a message in the middle of an empty plot (no data of that kind in the results). */
export const emptyNote = (f: Frame, text: string): void => {
  f.plot.append("text").attr("class", "empty").attr("x", f.width / 2).attr("y", f.height / 2)
    .attr("text-anchor", "middle").attr("fill", "#888").text(text)
}

export const mean = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0) / xs.length
