// Collections: separate galleries. Any key that may read lists those it may use; an
// admin key bound to no collection creates and deletes them.
import { call } from "/console/api.js";
import { t } from "/console/strings.js";
import { $, actionButton, confirmThen, say, sayError } from "/console/ui.js";


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
      actions.append(
        actionButton({
          text: t("delete"),
          label: t("collectionDeleteLabel", { name: item.name }),
          onClick: (opener) => confirmDelete(item, opener),
        }),
      );
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
      sayError($("collections-status"), error);
    }
  }

  function confirmDelete(item, opener) {
    const question = { title: t("collectionConfirmTitle"), text: t("collectionConfirm", item), opener };
    confirmThen(question, async () => {
      try {
        await call("DELETE", `/v1/collections/${encodeURIComponent(item.name)}`);
        await load();
        await changed();
        say($("collections-status"), t("collectionDeleted", { name: item.name }), "success");
      } catch (error) {
        sayError($("collections-status"), error);
      }
    });
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
      sayError(status, error);
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
