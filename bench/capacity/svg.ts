/** Small line charts as SVG text, for the capacity model's figures in docs/. */

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color: string;
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Horizontal reference lines, such as the latency objective. */
  marks?: Array<{ y: number; label: string }>;
  yMax?: number;
  width?: number;
  height?: number;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** About five round tick values from 0 to at least `max`. */
export function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? `${v / 1000}k` : String(v));

export function lineChart(c: Chart): string {
  const width = c.width ?? 720;
  const height = c.height ?? 320;
  const left = 64, right = 16, top = 36, bottom = 64;
  const all = c.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const xMax = Math.max(...all.map(([x]) => x), 1);
  const xMin = Math.min(...all.map(([x]) => x), 0);
  const yTop = c.yMax ?? Math.max(...all.map(([, y]) => y), ...(c.marks ?? []).map((m) => m.y), 1);
  const yTicks = ticks(yTop);
  const yMax = yTicks.at(-1)!;
  const xTicks = ticks(xMax - xMin).map((v) => v + xMin);
  const w = width - left - right, h = height - top - bottom;
  const px = (x: number) => left + ((x - xMin) / (xTicks.at(-1)! - xMin || 1)) * w;
  const py = (y: number) => top + h - (Math.min(y, yMax) / yMax) * h;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(c.title)}</text>`,
  ];
  for (const v of yTicks) {
    out.push(`<line x1="${left}" x2="${left + w}" y1="${py(v)}" y2="${py(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${py(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const v of xTicks) {
    out.push(`<line x1="${px(v)}" x2="${px(v)}" y1="${top}" y2="${top + h}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px(v)}" y="${top + h + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${left + w / 2}" y="${height - 30}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  out.push(
    `<text transform="translate(16 ${top + h / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`,
  );
  for (const m of c.marks ?? []) {
    out.push(
      `<line x1="${left}" x2="${left + w}" y1="${py(m.y)}" y2="${
        py(m.y)
      }" stroke="#c00" stroke-dasharray="6 4"/>`,
    );
    out.push(
      `<text x="${left + w - 4}" y="${py(m.y) - 4}" text-anchor="end" fill="#c00">${esc(m.label)}</text>`,
    );
  }
  for (const s of c.series) {
    const d = s.points.filter(([, y]) => Number.isFinite(y))
      .map(([x, y], i) => `${i === 0 ? "M" : "L"}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join(" ");
    if (d) {
      out.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="5 3"' : ""
        }/>`,
      );
    }
  }
  c.series.forEach((s, i) => {
    const x = left + i * 180;
    const y = height - 10;
    out.push(
      `<line x1="${x}" x2="${x + 20}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="5 3"' : ""
      }/>`,
    );
    out.push(`<text x="${x + 26}" y="${y}">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
