// The model card: what /v1/models says about the active model and its calibration, and
// the calibration's curves (GET /v1/models/{name}/calibration) as plots.
import { call } from "/console/api.js";
import { hideCurves, showCurves } from "/console/curves.js";
import { t } from "/console/strings.js";
import { $, say, sayError } from "/console/ui.js";

function rate(value) {
  // three significant digits: 0.0100000000000009 reads 0.01
  return value === null || value === undefined ? t("notShown") : String(Number(value.toPrecision(3)));
}

export function setUpModel(session) {
  async function load() {
    const status = $("model-status");
    say(status, "");
    try {
      const models = await call("GET", "/v1/models");
      const active = models.active;
      $("model-name").textContent = active.name;
      const rows = [
        ["modelVersion", active.version],
        ["modelEmbedding", String(active.embedding_size)],
        ["modelDistance", active.distance],
        ["modelNormalized", active.normalized ? t("yes") : t("no")],
        ["modelLicence", active.licence],
        ["modelCalibration", active.calibration_source],
        ["modelVerify", active.verify.default.toFixed(4)],
        ["modelVerifyRates", t("verifyRates", { far: rate(active.verify.far), tar: rate(active.verify.tar) })],
        ["modelIdentify", active.identify.default.toFixed(4)],
        [
          "modelIdentifyRates",
          t("identifyRates", {
            fpir: rate(active.identify.fpir),
            fnir: rate(active.identify.fnir),
            size: rate(active.identify.gallery_size),
          }),
        ],
        ["modelGalleryFaces", rate(active.gallery_faces)],
        [
          "modelScore",
          models.identify_score.cohort_tau === null || models.identify_score.cohort_tau === undefined
            ? models.identify_score.mode
            : `${models.identify_score.mode} (tau ${models.identify_score.cohort_tau.toFixed(4)})`,
        ],
        [
          "modelOthers",
          active.other_models?.length
            ? active.other_models.map((m) => `${m.name} ${m.version}: ${m.faces}`).join("; ")
            : t("no"),
        ],
      ];
      const stored = active.calibration;
      if (stored) {
        // a `facesvc calibrate` run stored in the database, in use
        rows.push(
          ["modelStored", t("storedLine", { id: stored.id, when: new Date(stored.created_at).toLocaleString() })],
          ["modelStoredSource", stored.source],
          ["modelFarInterval", t("interval", { low: rate(stored.far_interval[0]), high: rate(stored.far_interval[1]), target: rate(stored.far_target) })],
          ["modelTarInterval", t("intervalOnly", { low: rate(stored.tar_interval[0]), high: rate(stored.tar_interval[1]) })],
          ["modelFollows", stored.follow_gallery ? t("yes") : t("no")],
        );
        if (stored.held_out) {
          const held = stored.held_out;
          rows.push([
            "modelHeldOut",
            t("heldOutLine", { n: held.identities, far: rate(held.far), tar: rate(held.tar), fpir: rate(held.fpir), fnir: rate(held.fnir) }),
          ]);
        }
      }
      const list = $("model-figures");
      list.replaceChildren();
      for (const [name, value] of rows) {
        const term = document.createElement("dt");
        term.textContent = t(name);
        const detail = document.createElement("dd");
        detail.textContent = value ?? t("notShown");
        detail.dataset.figure = name;
        list.append(term, detail);
      }
      $("model-card").hidden = false;
      showCurves(await call("GET", `/v1/models/${encodeURIComponent(active.name)}/calibration`));
    } catch (error) {
      sayError(status, error);
    }
  }

  return {
    leave() {},
    reset() {
      $("model-card").hidden = true;
      hideCurves();
    },
    show() {
      $("model-denied").hidden = session.may("verify");
      if (session.may("verify") && $("model-card").hidden) {
        load();
      }
    },
  };
}
