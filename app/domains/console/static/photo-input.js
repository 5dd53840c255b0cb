// A photo for a form: a chosen file, or a still from the webcam (which wins until
// another file is chosen).
import { setUpCamera } from "/console/camera.js";
import { t } from "/console/strings.js";
import { $, say } from "/console/ui.js";

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

  const photo = () => still ?? file.files[0] ?? null;
  return {
    photo,
    // A form with the photo as `image`; null (and the reason on `status`) without one.
    form(status) {
      const chosen = photo();
      if (!chosen) {
        say(status, t("chooseFile"), "error");
        return null;
      }
      const form = new FormData();
      form.set("image", chosen);
      return form;
    },
    stopCamera: () => camera.stop(),
    reset() {
      camera.stop();
      forgetStill();
      file.value = "";
    },
  };
}
