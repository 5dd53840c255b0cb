// The console's start: texts, sign-in, the page shown for the location's #hash.
import { ApiError, call, forgetKey, keepKey, storedKey } from "/console/api.js";
import { setUpCollections } from "/console/collections.js";
import { setUpGallery } from "/console/gallery.js";
import { setUpKeys } from "/console/keys.js";
import { setUpLog } from "/console/log.js";
import { setUpModel } from "/console/model.js";
import { t } from "/console/strings.js";
import { setUpTest } from "/console/test.js";
import { $, say } from "/console/ui.js";

const PAGES = ["gallery", "test", "log", "model", "collections", "keys"];
const SCOPE_TEXT = {
  admin: "scopeAdmin",
  enroll: "scopeEnroll",
  delete: "scopeDelete",
  read: "scopeRead",
  verify: "scopeVerify",
  metrics: "scopeMetrics",
};

// What the pages share: the signed-in key's answer of /v1/whoami and the collection.
export const session = {
  who: null,
  collection: "default",
  target: null, // the person the Test page verifies against, chosen in the gallery
  may(scope) {
    return Boolean(this.who?.allows.includes(scope));
  },
};

function fillTexts() {
  for (const element of document.querySelectorAll("[data-text]")) {
    element.textContent = t(element.dataset.text);
  }
  for (const element of document.querySelectorAll("[data-aria]")) {
    element.setAttribute("aria-label", t(element.dataset.aria));
  }
}

async function collections() {
  if (session.who.collections !== null) {
    return session.who.collections;
  }
  if (!session.may("read")) {
    return ["default"];
  }
  const answer = await call("GET", "/v1/collections");
  return answer.items.map((item) => item.name);
}

// The header's choice of collection: the one in use stays chosen while it exists.
async function fillCollections() {
  const names = await collections().catch(() => ["default"]);
  if (!names.includes(session.collection)) {
    session.collection = names.includes("default") ? "default" : names[0];
  }
  $("collection").replaceChildren(
    ...names.map((name) => new Option(name, name, false, name === session.collection)),
  );
}

async function showSignedIn(pages) {
  const who = session.who;
  $("who-text").textContent = t("signedInAs", { name: who.name, scopes: who.scopes.join(", ") });
  const allows = $("key-allows");
  allows.replaceChildren(
    ...who.allows.map((scope) => {
      const item = document.createElement("li");
      item.textContent = t(SCOPE_TEXT[scope] ?? scope);
      return item;
    }),
  );
  await fillCollections();
  $("page-signin").hidden = true;
  $("nav").hidden = $("who").hidden = $("key-card").hidden = false;
  for (const page of Object.values(pages)) {
    page.reset();
  }
  route(pages);
}

function showSignedOut(pages) {
  session.who = null;
  session.collection = "default";
  session.target = null;
  for (const page of Object.values(pages)) {
    page.reset();
  }
  for (const page of PAGES) {
    $(`page-${page}`).hidden = true;
  }
  $("nav").hidden = $("who").hidden = $("key-card").hidden = true;
  $("page-signin").hidden = false;
  $("signin-key").value = "";
  $("signin-key").focus();
}

function route(pages) {
  if (!session.who) {
    return;
  }
  const wanted = window.location.hash.slice(1);
  const current = PAGES.includes(wanted) ? wanted : "gallery";
  for (const page of PAGES) {
    $(`page-${page}`).hidden = page !== current;
    if (page !== current) {
      pages[page].leave(); // no webcam left running on a hidden page
    }
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === current) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  pages[current].show();
}

async function signIn(key, pages) {
  session.who = await call("GET", "/v1/whoami", { key });
  keepKey(key);
  await showSignedIn(pages);
}

function start() {
  fillTexts();
  const pages = {
    gallery: setUpGallery(session),
    test: setUpTest(session),
    log: setUpLog(session),
    model: setUpModel(session),
    collections: setUpCollections(session, fillCollections),
    keys: setUpKeys(session),
  };
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("signin-status");
    say(status, t("signingIn"));
    try {
      await signIn($("signin-key").value.trim(), pages);
      say(status, "");
    } catch (error) {
      const detail = error instanceof ApiError ? error.detail : String(error);
      say(status, t("badKey", { detail }), "error");
    }
  });
  $("sign-out").addEventListener("click", () => {
    forgetKey();
    showSignedOut(pages);
  });
  $("collection").addEventListener("change", (event) => {
    session.collection = event.target.value;
    for (const page of Object.values(pages)) {
      page.reset();
    }
    route(pages);
  });
  window.addEventListener("hashchange", () => {
    route(pages);
    $("main").focus();
  });
  const key = storedKey();
  if (key) {
    signIn(key, pages).catch(() => {
      forgetKey();
      showSignedOut(pages);
    });
  } else {
    showSignedOut(pages);
  }
}

start();
