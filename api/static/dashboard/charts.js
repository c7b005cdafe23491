// Small SVG charts, drawn with the DOM (no library, no inline style: CSP allows neither).

const SVG_NS = "http://www.w3.org/2000/svg";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const WIDTH = 420;
const HEIGHT = 200;
const MARGIN = { top: 10, right: 12, bottom: 24, left: 70 };

function polyline(values, x, y, className) {
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  return svg("polyline", { points, class: className, fill: "none" });
}

// A line chart of ``values`` (one per period), with ``previous`` dashed behind it.
// ``label(i)`` names period i, ``format(v)`` a value; returns the <svg>.
export function lineChart({ title, values, previous, label, format }) {
  const all = previous ? values.concat(previous) : values;
  const top = Math.max(1, ...all.filter((v) => Number.isFinite(v)));
  const innerW = WIDTH - MARGIN.left - MARGIN.right;
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const step = values.length > 1 ? innerW / (values.length - 1) : 0;
  const x = (i) => MARGIN.left + (values.length > 1 ? i * step : innerW / 2);
  const y = (v) => MARGIN.top + innerH - (Math.max(0, v) / top) * innerH;

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": title,
    class: "line-chart",
  });
  chart.append(svg("title", {}, title));
  for (const fraction of [0, 0.5, 1]) {
    const at = y(top * fraction);
    chart.append(
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: at, y2: at, class: "grid" }),
      svg(
        "text",
        { x: MARGIN.left - 6, y: at + 4, class: "axis", "text-anchor": "end" },
        format(top * fraction),
      ),
    );
  }
  if (values.length > 0) {
    const last = values.length - 1;
    chart.append(
      svg("text", { x: x(0), y: HEIGHT - 8, class: "axis", "text-anchor": "start" }, label(0)),
      svg("text", { x: x(last), y: HEIGHT - 8, class: "axis", "text-anchor": "end" }, label(last)),
    );
  }
  if (previous && previous.length > 0) {
    chart.append(polyline(previous.slice(0, values.length), x, y, "line previous"));
  }
  chart.append(polyline(values, x, y, "line current"));
  const dots = svg("g", { class: "dots" });
  const radius = values.length > 60 ? 1.2 : 2.5;
  values.forEach((v, i) => {
    dots.append(
      svg("circle", { cx: x(i), cy: y(v), r: radius, class: "dot" }, svg("title", {}, `${label(i)}: ${format(v)}`)),
    );
  });
  chart.append(dots);
  return chart;
}

// A horizontal bar: ``share`` (0..1) solid, then ``pending`` (0..1) lighter after it.
export function bar(share, pending, text) {
  const clamp = (v) => Math.max(0, Math.min(1, v || 0));
  const solid = clamp(share);
  const light = Math.min(clamp(pending), 1 - solid);
  return svg(
    "svg",
    { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "bar", role: "img", "aria-label": text },
    svg("rect", { x: 0, y: 0, width: 100, height: 10, class: "bar-track" }),
    svg("rect", { x: 0, y: 0, width: (solid * 100).toFixed(2), height: 10, class: "bar-fill" }),
    svg("rect", {
      x: (solid * 100).toFixed(2),
      y: 0,
      width: (light * 100).toFixed(2),
      height: 10,
      class: "bar-pending",
    }),
  );
}

// The background of a retention cell: paler for low rates, deeper for high ones.
export function heat(rate) {
  const r = Math.max(0, Math.min(1, rate || 0));
  return { background: `hsl(212, 72%, ${Math.round(96 - r * 58)}%)`, dark: r > 0.45 };
}
