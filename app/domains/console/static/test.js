// The test page: recognize a photo against the gallery; the decision, its figures, and
// the face box drawn on the photo.
import { ApiError, call } from "/console/api.js";
import { t } from "/console/strings.js";

const $ = (id) => document.getElementById(id);

function say(element, text, kind = "") {
  element.textContent = text;
  element.className = kind;
}

function number(value) {
  return value === null || value === undefined ? t("notShown") : value.toFixed(4);
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
}

function draw(image, face, known, label) {
  const canvas = $("probe-canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  URL.revokeObjectURL(image.src);
  if (!face) {
    return;
  }
  const [x1, y1, x2, y2] = face.box;
  const width = Math.max(2, Math.round(canvas.width / 120));
  const colour = known ? "#16a34a" : "#e11d48";
  context.lineWidth = width;
  context.strokeStyle = colour;
  context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  const size = Math.max(12, Math.round(canvas.width / 20));
  context.font = `600 ${size}px system-ui, sans-serif`;
  const textWidth = context.measureText(label).width;
  const top = Math.max(0, y1 - size - 2 * width);
  context.fillStyle = colour;
  context.fillRect(x1 - width / 2, top, textWidth + 2 * width, size + 2 * width);
  context.fillStyle = "#ffffff";
  context.fillText(label, x1 + width / 2, top + size);
}

function figures(rows) {
  const list = $("figures");
  list.replaceChildren();
  for (const [name, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = t(name);
    const detail = document.createElement("dd");
    detail.textContent = value;
    detail.dataset.figure = name;
    list.append(term, detail);
  }
}

export function setUpTest(session) {
  $("recognize-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("test-status");
    const file = $("probe-photo").files[0];
    if (!file) {
      say(status, t("chooseFile"), "error");
      return;
    }
    const form = new FormData();
    form.set("image", file);
    form.set("collection", session.collection);
    // with read, an unknown face's nearest distance too
    form.set("include_rejected", session.may("read") ? "true" : "false");
    const button = event.submitter;
    button.disabled = true;
    say(status, t("recognizing"));
    $("result").hidden = true;
    try {
      const answer = await call("POST", "/v1/recognize", { form });
      const found = answer.faces[0];
      const person = found.identity;
      const decision = $("decision");
      decision.textContent = person
        ? t("decisionKnown", { name: person.name })
        : t("decisionUnknown");
      decision.className = `decision ${person ? "known" : "unknown"}`;
      const nearest = found.distance ?? found.candidates[0]?.distance ?? null;
      figures([
        ["distance", number(nearest)],
        ["threshold", number(answer.threshold)],
        ["margin", number(found.margin)],
        ["detectionScore", number(found.face?.detection_score)],
        ["externalIdShort", person?.external_id ?? t("notShown")],
      ]);
      draw(await loadImage(file), found.face, Boolean(person), person ? person.name : "?");
      $("result").hidden = false;
      say(status, "");
    } catch (error) {
      say(status, error instanceof ApiError ? error.text : String(error), "error");
    } finally {
      button.disabled = false;
    }
  });

  return {
    reset() {
      $("result").hidden = true;
      say($("test-status"), "");
    },
    show() {
      $("test-denied").hidden = session.may("verify");
      $("recognize-form").hidden = !session.may("verify");
    },
  };
}
