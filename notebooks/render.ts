// Headless rendering: d3 draws into a linkedom document (no browser), the SVG is serialised as text,
// and resvg turns it into a PNG with a real font so the labels show.
import { Resvg } from "@resvg/resvg-js"
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { parseHTML } from "linkedom"

/**
 * A fresh linkedom document for d3 to draw into. Typed loosely on purpose: the project compiles
 * without the DOM lib (core/ must not see browser globals), so charts only need its body.
 */
export interface HeadlessDocument {
  readonly body: object
}

export const makeDocument = (): HeadlessDocument =>
  parseHTML("<!doctype html><html><head></head><body></body></html>").document as unknown as HeadlessDocument

export interface FontChoice {
  readonly file: string
  readonly family: string
}

const CANDIDATES: ReadonlyArray<FontChoice> = [
  { file: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", family: "DejaVu Sans" },
  { file: "/usr/share/fonts/dejavu/DejaVuSans.ttf", family: "DejaVu Sans" },
  { file: "/usr/share/fonts/TTF/DejaVuSans.ttf", family: "DejaVu Sans" },
  { file: "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", family: "Liberation Sans" },
  { file: "/System/Library/Fonts/Supplemental/Arial.ttf", family: "Arial" },
  { file: "C:\\Windows\\Fonts\\arial.ttf", family: "Arial" }
]

let cachedFont: FontChoice | null | undefined

/** A sans-serif font file for resvg: a known path, else whatever fontconfig matches; null if none. */
export const findFont = (): FontChoice | null => {
  if (cachedFont !== undefined) return cachedFont
  cachedFont = CANDIDATES.find((c) => existsSync(c.file)) ?? null
  if (cachedFont === null) {
    try {
      const [file, family] = execFileSync("fc-match", ["-f", "%{file}\n%{family[0]}", "sans-serif"], { encoding: "utf8" }).split("\n")
      if (file !== undefined && existsSync(file)) cachedFont = { file, family: family ?? "sans-serif" }
    } catch {
      // no fontconfig
    }
  }
  return cachedFont
}

/** Renders SVG text to PNG bytes at `scale` (text needs a font: see findFont). */
export const svgToPng = (svg: string, scale = 2): Buffer => {
  const font = findFont()
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: font === null
      ? { loadSystemFonts: true }
      : { loadSystemFonts: false, fontFiles: [font.file], defaultFontFamily: font.family, sansSerifFamily: font.family }
  })
  return resvg.render().asPng()
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
