// A photo for a form: a chosen file, or a still from the webcam (which wins until
// another file is chosen).
import { setUpCamera } from "/console/camera.js";
import { t } from "/console/strings.js";

const $ = (id) => document.getElementById(id);

// `input` is the file input's id, `prefix` the webcam's elements (camera.js).
export function setUpPhotoInput(input, prefix, session) {
  const file = $(input);
  const preview = $(`${prefix}-preview`);
  const taken = $(`${prefix}-taken`);
  let still = null;

  function forgetStill() {
    still = null;
    if (preview.src) {
      URL.revokeObjectURL(preview.src);
    }
    preview.removeAttribute("src");
    preview.hidden = true;
    taken.textContent = "";
  }

  const camera = setUpCamera(prefix, session, (photo) => {
    forgetStill();
    still = photo;
    file.value = "";
    preview.src = URL.createObjectURL(photo);
    preview.hidden = false;
    taken.textContent = t("takenFromWebcam");
  });
  file.addEventListener("change", forgetStill);

  return {
    photo: () => still ?? file.files[0] ?? null,
    stopCamera: () => camera.stop(),
    reset() {
      camera.stop();
      forgetStill();
      file.value = "";
    },
  };
}
