// The webcam: a live picture with the face box from /v1/detect drawn over it (a key
// with the verify scope), and a still taken from it as a JPEG file for a form.
import { ApiError, call } from "/console/api.js";
import { t } from "/console/strings.js";

const DETECT_EVERY_MS = 700;
const $ = (id) => document.getElementById(id);

function still(video, type = "image/jpeg") {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, type, 0.92));
}

function drawBoxes(overlay, video, faces) {
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const context = overlay.getContext("2d");
  context.clearRect(0, 0, overlay.width, overlay.height);
  context.lineWidth = Math.max(2, Math.round(overlay.width / 150));
  context.strokeStyle = faces.length === 1 ? "#15803d" : "#e11d48";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
}

// `prefix` names the elements: PREFIX-camera (the panel), -video, -overlay,
// -camera-status, -camera-start, -camera-take, -camera-stop.
export function setUpCamera(prefix, session, onStill) {
  const panel = $(`${prefix}-camera`);
  const video = $(`${prefix}-video`);
  const overlay = $(`${prefix}-overlay`);
  const status = $(`${prefix}-camera-status`);
  let stream = null;
  let timer = null;

  function say(text, kind = "") {
    if (status.textContent === text) {
      return; // a live region repeats every change aloud
    }
    status.textContent = text;
    status.className = kind;
  }

  async function detectOnce() {
    if (!stream || !session.may("verify") || video.videoWidth === 0) {
      return;
    }
    const form = new FormData();
    form.set("image", await still(video), "frame.jpg");
    try {
      const { faces } = await call("POST", "/v1/detect", { form });
      if (!stream) {
        return;
      }
      drawBoxes(overlay, video, faces);
      if (faces.length === 0) {
        say(t("liveNoFace"), "error");
      } else if (faces.length > 1) {
        say(t("liveSeveral", { count: faces.length }), "error");
      } else {
        say(t("liveOneFace", { score: faces[0].detection_score.toFixed(4) }), "success");
      }
    } catch (error) {
      say(error instanceof ApiError ? error.text : String(error), "error");
    }
  }

  async function loop() {
    await detectOnce();
    if (stream) {
      timer = setTimeout(loop, DETECT_EVERY_MS);
    }
  }

  async function start() {
    if (stream) {
      return;
    }
    if (!window.isSecureContext || !navigator.mediaDevices) {
      // browsers give the webcam only to https:// pages (and http://localhost)
      say(t("cameraNeedsHttps"), "error");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      say(t("cameraRefused", { detail: error.message }), "error");
      return;
    }
    video.srcObject = stream;
    panel.hidden = false;
    await video.play();
    say(session.may("verify") ? t("liveLooking") : t("liveNoDetect"));
    loop();
  }

  function stop() {
    clearTimeout(timer);
    if (stream) {
      for (const track of stream.getTracks()) {
        track.stop();
      }
    }
    stream = null;
    video.srcObject = null;
    panel.hidden = true;
    say("");
  }

  $(`${prefix}-camera-start`).addEventListener("click", start);
  $(`${prefix}-camera-stop`).addEventListener("click", stop);
  $(`${prefix}-camera-take`).addEventListener("click", async () => {
    if (!stream) {
      return;
    }
    const blob = await still(video);
    onStill(new File([blob], "webcam.jpg", { type: "image/jpeg" }));
    stop();
  });
  return { stop };
}
