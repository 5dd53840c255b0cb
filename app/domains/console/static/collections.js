// Collections: separate galleries. Any key that may read lists those it may use; an
// admin key bound to no collection creates and deletes them.
import { ApiError, call } from "/console/api.js";
import { t } from "/console/strings.js";

const $ = (id) => document.getElementById(id);

function say(element, text, kind = "") {
  element.textContent = text;
  element.className = kind;
}

export function setUpCollections(session, changed) {
  let loaded = false;
  const mayChange = () => session.may("admin") && session.who.collections === null;

  function row(item) {
    const tr = document.createElement("tr");
    for (const value of [item.name, item.description ?? "", item.identities, item.faces]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.append(td);
    }
    const actions = document.createElement("td");
    if (mayChange() && item.name !== "default") {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = t("delete");
      remove.setAttribute("aria-label", t("collectionDeleteLabel", { name: item.name }));
      remove.addEventListener("click", () => confirmDelete(item, remove));
      actions.append(remove);
    }
    tr.append(actions);
    return tr;
  }

  async function load() {
    try {
      const answer = await call("GET", "/v1/collections");
      $("collections").replaceChildren(...answer.items.map(row));
      loaded = true;
    } catch (error) {
      say($("collections-status"), error instanceof ApiError ? error.text : String(error), "error");
    }
  }

  function confirmDelete(item, opener) {
    const dialog = $("confirm-delete");
    $("confirm-title").textContent = t("collectionConfirmTitle");
    $("confirm-text").textContent = t("collectionConfirm", item);
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      async () => {
        opener.focus();
        if (dialog.returnValue !== "delete") {
          return;
        }
        try {
          await call("DELETE", `/v1/collections/${encodeURIComponent(item.name)}`);
          await load();
          await changed();
          say($("collections-status"), t("collectionDeleted", { name: item.name }), "success");
        } catch (error) {
          say($("collections-status"), error instanceof ApiError ? error.text : String(error), "error");
        }
      },
      { once: true },
    );
    dialog.showModal();
  }

  $("collection-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("collection-status");
    const name = $("collection-name").value.trim();
    const description = $("collection-description").value.trim();
    try {
      await call("POST", "/v1/collections", {
        json: { name, ...(description ? { description } : {}) },
      });
      event.target.reset();
      await load();
      await changed();
      say(status, t("created", { name }), "success");
    } catch (error) {
      say(status, error instanceof ApiError ? error.text : String(error), "error");
    }
  });

  return {
    leave() {},
    reset() {
      loaded = false;
      $("collections").replaceChildren();
      say($("collections-status"), "");
      say($("collection-status"), "");
    },
    show() {
      $("collections-denied").hidden = session.may("read");
      $("collections-table").hidden = !session.may("read");
      $("collection-form").hidden = !mayChange();
      if (session.may("read") && !loaded) {
        load();
      }
    },
  };
}
