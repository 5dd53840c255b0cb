// The test page: recognize a photo against the gallery, or verify it against one
// claimed person; the decision, its figures, and the face box drawn on the photo.
import { call } from "/console/api.js";
import { setUpPhotoInput } from "/console/photo-input.js";
import { t } from "/console/strings.js";
import { $, say, sayError } from "/console/ui.js";

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

function draw(image, face, good, label) {
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
  const colour = good ? "#15803d" : "#e11d48";
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

function decide(good, text) {
  const decision = $("decision");
  decision.textContent = text;
  decision.className = `decision ${good ? "known" : "unknown"}`;
}

async function recognize(form, session) {
  // with read, an unknown face's nearest distance too
  form.set("include_rejected", session.may("read") ? "true" : "false");
  const answer = await call("POST", "/v1/recognize", { form });
  const found = answer.faces[0];
  const person = found.identity;
  decide(Boolean(person), person ? t("decisionKnown", { name: person.name }) : t("decisionUnknown"));
  const nearest = found.distance ?? found.candidates[0]?.distance ?? null;
  figures([
    ["distance", number(nearest)],
    // with cohort scoring the threshold and margin are on the cohort score's scale
    ...(found.cohort_score === null || found.cohort_score === undefined
      ? []
      : [["cohortScore", number(found.cohort_score)]]),
    ["threshold", number(answer.threshold)],
    ["margin", number(found.margin)],
    ["detectionScore", number(found.face?.detection_score)],
    ["externalIdShort", person?.external_id ?? t("notShown")],
  ]);
  return { face: found.face, good: Boolean(person), label: person ? person.name : "?" };
}

// `claim`: {external_id} typed, or {identity_id, name} chosen in the gallery
async function verify(form, claim) {
  if (claim.identity_id) {
    form.set("identity_id", claim.identity_id);
  } else {
    form.set("external_id", claim.external_id);
  }
  form.set("largest_face", "true");
  const answer = await call("POST", "/v1/verify", { form });
  const shown = claim.name ?? claim.external_id;
  const name = answer.identity?.name ?? shown;
  decide(answer.match, answer.match ? t("decisionMatch", { name }) : t("decisionNoMatch", { id: shown }));
  figures([
    ["distance", number(answer.distance)],
    ["threshold", number(answer.threshold)],
    ["detectionScore", number(answer.face?.detection_score)],
    ["externalIdShort", answer.identity?.external_id ?? claim.external_id ?? t("notShown")],
  ]);
  return { face: answer.face, good: answer.match, label: answer.match ? name : "✗" };
}

export function setUpTest(session) {
  const photos = setUpPhotoInput("probe-photo", "probe", session);
  function showTarget() {
    const target = session.target;
    $("probe-target").hidden = !target;
    $("probe-target-text").textContent = target ? t("verifyingAgainst", { name: target.name }) : "";
    $("probe-claim").disabled = Boolean(target);
    const verifying = Boolean(target) || $("probe-claim").value.trim() !== "";
    $("probe-submit").textContent = verifying ? t("verify") : t("recognize");
  }
  $("probe-claim").addEventListener("input", showTarget);
  $("probe-target-clear").addEventListener("click", () => {
    session.target = null;
    showTarget();
    $("probe-claim").focus();
  });
  $("recognize-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("test-status");
    const form = photos.form(status);
    if (!form) {
      return;
    }
    form.set("collection", session.collection);
    const typed = $("probe-claim").value.trim();
    const target = session.target;
    const claim = target
      ? { identity_id: target.id, name: target.name }
      : typed
        ? { external_id: typed }
        : null;
    const button = $("probe-submit");
    button.disabled = true;
    say(status, t("recognizing"));
    $("result").hidden = true;
    try {
      const shown = claim ? await verify(form, claim) : await recognize(form, session);
      draw(await loadImage(form.get("image")), shown.face, shown.good, shown.label);
      $("result").hidden = false;
      say(status, "");
    } catch (error) {
      sayError(status, error);
    } finally {
      button.disabled = false;
    }
  });

  return {
    leave: () => photos.stopCamera(),
    reset() {
      session.target = null;
      $("result").hidden = true;
      photos.reset();
      say($("test-status"), "");
    },
    show() {
      showTarget();
      $("test-denied").hidden = session.may("verify");
      $("recognize-form").hidden = !session.may("verify");
    },
  };
}
