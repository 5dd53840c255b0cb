// A line plot as inline SVG, made here (no chart library): labelled axes, linear or log,
// one curve (a 0 on a log axis drawn at its start) and one marked point with its label.
// The caller gives all text (strings.js).
// Styled by console.css classes only: the CSP allows no inline style.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 400;
const MARGIN = { left: 72, right: 24, top: 20, bottom: 58 };

let plots = 0; // ids for aria-labelledby, unique on the page

function node(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  if (text !== null) {
    element.textContent = text;
  }
  return element;
}

// [low, high] -> [from, to] pixels, linear or log10.
function scale([low, high], [from, to], log) {
  const f = log ? Math.log10 : (v) => v;
  const a = f(low);
  const span = f(high) - a || 1;
  return (value) => from + ((f(value) - a) / span) * (to - from);
}

function ticks([low, high], log) {
  if (log) {
    const out = [];
    for (let e = Math.ceil(Math.log10(low) - 1e-9); e <= Math.floor(Math.log10(high) + 1e-9); e++) {
      out.push(10 ** e);
    }
    return out;
  }
  // a step of 1, 2 or 5 times a power of ten, about five ticks
  const rough = (high - low) / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const out = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
    out.push(Number(value.toPrecision(12)));
  }
  return out;
}

function tickText(value, log) {
  if (log) {
    return value >= 0.01 ? String(value) : `1e${Math.round(Math.log10(value))}`;
  }
  return String(Number(value.toPrecision(3)));
}

// The smallest decade at or below the least positive value (a log axis' start).
export function decadeBelow(values, floor) {
  const positive = values.filter((v) => v > 0);
  const least = positive.length ? Math.min(...positive) : floor;
  return 10 ** Math.floor(Math.log10(Math.max(least, floor)));
}

// spec: {title, desc, x: {label, domain, log}, y: {...}, points: [[x, y]], mark: {x, y, label}}
export function linePlot(spec) {
  plots += 1;
  const id = `plot-${plots}`;
  const svg = node("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": `${id}-title ${id}-desc`,
    class: "plot",
  });
  svg.append(node("title", { id: `${id}-title` }, spec.title), node("desc", { id: `${id}-desc` }, spec.desc));
  const left = MARGIN.left;
  const right = WIDTH - MARGIN.right;
  const top = MARGIN.top;
  const bottom = HEIGHT - MARGIN.bottom;
  const sx = scale(spec.x.domain, [left, right], spec.x.log);
  const sy = scale(spec.y.domain, [bottom, top], spec.y.log);

  const grid = node("g", { class: "grid", "aria-hidden": "true" });
  for (const value of ticks(spec.x.domain, spec.x.log)) {
    const x = sx(value);
    grid.append(node("line", { x1: x, x2: x, y1: top, y2: bottom }));
    grid.append(node("text", { x, y: bottom + 20, "text-anchor": "middle" }, tickText(value, spec.x.log)));
  }
  for (const value of ticks(spec.y.domain, spec.y.log)) {
    const y = sy(value);
    grid.append(node("line", { x1: left, x2: right, y1: y, y2: y }));
    grid.append(node("text", { x: left - 8, y: y + 5, "text-anchor": "end" }, tickText(value, spec.y.log)));
  }
  svg.append(grid);
  svg.append(node("rect", { class: "frame", x: left, y: top, width: right - left, height: bottom - top }));
  svg.append(node("text", { class: "axis", x: (left + right) / 2, y: HEIGHT - 12, "text-anchor": "middle" }, spec.x.label));
  svg.append(
    node(
      "text",
      { class: "axis", x: 18, y: (top + bottom) / 2, "text-anchor": "middle", transform: `rotate(-90 18 ${(top + bottom) / 2})` },
      spec.y.label,
    ),
  );

  // a rate of 0 has no place on a log axis: it is drawn at the axis' start
  const px = (v) => sx(Math.min(Math.max(v, spec.x.domain[0]), spec.x.domain[1]));
  const py = (v) => sy(Math.min(Math.max(v, spec.y.domain[0]), spec.y.domain[1]));
  // below a log axis' start (and above 0) a point is left out
  const below = (v, axis) => axis.log && v > 0 && v < axis.domain[0];
  const drawn = spec.points.filter(([x, y]) => !below(x, spec.x) && !below(y, spec.y));
  const path = drawn.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
  svg.append(node("path", { class: "curve", d: path }));

  const mark = spec.mark;
  if (mark) {
    const x = Number(px(mark.x).toFixed(1)); // as the curve's vertices are written
    const y = Number(py(mark.y).toFixed(1));
    const group = node("g", { class: "mark" });
    group.append(node("line", { x1: x, x2: x, y1: y, y2: bottom }));
    group.append(node("line", { x1: left, x2: x, y1: y, y2: y }));
    group.append(node("circle", { cx: x, cy: y, r: 6 }));
    const anchor = x > (left + right) / 2 ? "end" : "start";
    const under = y < top + 30;
    group.append(
      node("text", { x: x + (anchor === "end" ? -10 : 10), y: under ? y + 22 : y - 12, "text-anchor": anchor }, mark.label),
    );
    svg.append(group);
  }
  return svg;
}
