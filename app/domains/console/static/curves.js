// The model page's plots: the stored calibration's ROC (FAR on a log axis, TAR) with the
// active 1:1 tau marked, and FPIR over tau at the 1:N tau's gallery size with that tau
// marked; each with its points as a table for those who cannot see the plot.
import { decadeBelow, linePlot } from "/console/plot.js";
import { t } from "/console/strings.js";
import { $ } from "/console/ui.js";

function rate(value) {
  return value === null || value === undefined ? t("notShown") : String(Number(value.toPrecision(3)));
}

function table(headers, rows) {
  const element = document.createElement("table");
  element.className = "people points";
  const head = element.createTHead().insertRow();
  for (const text of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    head.append(th);
  }
  const body = element.createTBody();
  for (const values of rows) {
    const tr = body.insertRow();
    for (const value of values) {
      tr.insertCell().textContent = value;
    }
  }
  return element;
}

function figure(id, svg, caption, headers, rows) {
  const holder = $(id);
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = t("curvePoints", { n: rows.length });
  details.append(summary, table(headers, rows));
  const text = document.createElement("figcaption");
  text.textContent = caption;
  holder.replaceChildren(svg, text, details);
  holder.hidden = false;
}

function roc(curve) {
  const verify = curve.verify;
  const points = curve.roc.points;
  const low = decadeBelow(points.map((p) => p.far), 1e-7);
  const label = t("rocMark", { tau: verify.tau.toFixed(4), far: rate(verify.far), tar: rate(verify.tar) });
  const svg = linePlot({
    title: t("rocTitle"),
    desc: t("rocDesc", {
      genuine: curve.roc.genuine_pairs,
      impostor: curve.roc.impostor_pairs,
      mark: label,
    }),
    x: { label: t("rocX"), domain: [low, 1], log: true },
    y: { label: t("rocY"), domain: [0, 1], log: false },
    points: points.map((p) => [p.far, p.tar]),
    mark: { x: verify.far, y: verify.tar, label },
  });
  const rows = points.map((p) => [p.tau.toFixed(4), rate(p.far), rate(p.tar)]);
  figure("roc-figure", svg, t("rocCaption", { mark: label }), [t("threshold"), t("colFar"), t("colTar")], rows);
}

function fpir(curve) {
  const identify = curve.identify;
  const model = curve.fpir_curve;
  const points = model.points;
  const mark = points.find((p) => p.tau === identify.tau);
  const label = t("fpirMark", { tau: identify.tau.toFixed(4), fpir: rate(mark?.fpir), fnir: rate(mark?.fnir) });
  const svg = linePlot({
    title: t("fpirTitle", { size: model.gallery_size }),
    desc: t("fpirDesc", { size: model.gallery_size, model: model.gallery_model, mark: label }),
    x: { label: t("fpirX"), domain: [0, points[points.length - 1].tau], log: false },
    y: { label: t("fpirY"), domain: [decadeBelow(points.map((p) => p.fpir), 1e-6), 1], log: true },
    points: points.map((p) => [p.tau, p.fpir]),
    mark: mark ? { x: mark.tau, y: mark.fpir, label } : null,
  });
  const caption = t(identify.follow_gallery ? "fpirCaptionFollows" : "fpirCaptionFixed", {
    mark: label,
    size: model.gallery_size,
  });
  const rows = points.map((p) => [p.tau.toFixed(4), rate(p.fpir), rate(p.fnir)]);
  figure("fpir-figure", svg, caption, [t("threshold"), t("colFpir"), t("colFnir")], rows);
}

// `curve`: the answer of GET /v1/models/{name}/calibration.
export function showCurves(curve) {
  $("roc-figure").hidden = true;
  $("fpir-figure").hidden = true;
  let note = "curvesStored";
  if (curve.stored === null) {
    note = "curvesBuiltIn";
  } else if (curve.roc === null) {
    note = "curvesNoRoc";
  }
  $("curves-note").textContent = t(note, { id: curve.stored?.id });
  if (curve.roc !== null) {
    roc(curve);
  }
  if (curve.fpir_curve !== null) {
    fpir(curve);
  }
  $("curves").hidden = false;
}

export function hideCurves() {
  $("curves").hidden = true;
}
