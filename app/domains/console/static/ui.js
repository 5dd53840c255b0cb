// What every page builds with: element lookup, status lines, row buttons and the one
// confirmation dialog (index.html's #confirm-delete).
import { ApiError } from "/console/api.js";

export const $ = (id) => document.getElementById(id);

export function say(element, text, kind = "") {
  element.textContent = text;
  element.className = kind;
}

// An API error in the service's own words; anything else as the browser says it.
export function sayError(element, error) {
  say(element, error instanceof ApiError ? error.text : String(error), "error");
}

export function actionButton({ text, label, className = "", onClick }) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", () => onClick(button));
  return button;
}

// Ask first; `action` runs only on "delete". Focus returns to the button that asked.
export function confirmThen({ title, text, opener }, action) {
  const dialog = $("confirm-delete");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    async () => {
      opener.focus();
      if (dialog.returnValue === "delete") {
        await action();
      }
    },
    { once: true },
  );
  dialog.showModal();
}
