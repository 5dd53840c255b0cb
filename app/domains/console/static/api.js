// Calls to the service's API with the signed-in key. The key lives in sessionStorage
// (this tab only, gone when it closes) and travels only as the X-API-Key header.
import { t } from "/console/strings.js";

const KEY = "facesvc.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function keepKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }

  // What to tell the operator, from the error body {"error", "detail"}.
  get text() {
    switch (this.code) {
      case "no_face":
        return t("errorNoFace");
      case "multiple_faces":
        return t("errorMultipleFaces");
      case "invalid_image":
        return t("errorInvalidImage");
      case "image_too_large":
        return t("errorTooLarge");
      case "unauthorized":
        return t("errorUnauthorized", { detail: this.detail });
      case "forbidden":
        return t("errorForbidden", { detail: this.detail });
      case "conflict":
        return t("errorConflict", { detail: this.detail });
      case "not_found":
        return t("errorNotFound", { detail: this.detail });
      case "network":
        return t("errorNetwork");
      default:
        return t("errorOther", { status: this.status, detail: this.detail });
    }
  }
}

// One request; `form` is a FormData (multipart), `json` a value sent as JSON, `query`
// an object of parameters.
export async function call(method, path, { key = storedKey(), form, json, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    // an array is the parameter repeated (?result=known&result=match)
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") {
        url.searchParams.append(name, one);
      }
    }
  }
  let answer;
  try {
    answer = await fetch(url, {
      method,
      headers: {
        "X-API-Key": key ?? "",
        ...(json === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: json === undefined ? form : JSON.stringify(json),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "");
  }
  if (answer.status === 204) {
    return null;
  }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    throw new ApiError(answer.status, body.error ?? "error", body.detail ?? answer.statusText);
  }
  return body;
}
