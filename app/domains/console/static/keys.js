// API keys (admin keys bound to no collection): list, create (the secret shown once),
// revoke after a confirmation.
import { call } from "/console/api.js";
import { t } from "/console/strings.js";
import { $, actionButton, confirmThen, say, sayError } from "/console/ui.js";

const SCOPES = ["admin", "enroll", "delete", "read", "verify", "metrics"];

function when(text) {
  return text ? new Date(text).toLocaleString() : t("never");
}

function checkbox(name, value) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.name = name;
  box.value = value;
  label.append(box, document.createTextNode(value));
  return label;
}

function ticked(id) {
  return [...$(id).querySelectorAll("input:checked")].map((box) => box.value);
}

export function setUpKeys(session) {
  const may = () => session.may("admin") && session.who.collections === null;
  $("key-scopes").replaceChildren(...SCOPES.map((scope) => checkbox("scope", scope)));

  function row(key) {
    const status = key.revoked_at
      ? t("statusRevoked", { when: when(key.revoked_at) })
      : key.expires_at
        ? t("statusExpires", { when: when(key.expires_at) })
        : t("statusActive");
    const tr = document.createElement("tr");
    tr.dataset.prefix = key.prefix;
    for (const value of [
      key.prefix === session.who.prefix ? t("thisKey", { name: key.name }) : key.name,
      key.prefix,
      key.scopes.join(", "),
      key.collections === null ? "*" : key.collections.join(", "),
      when(key.last_used_at),
      status,
    ]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    const actions = document.createElement("td");
    if (!key.revoked_at) {
      actions.append(
        actionButton({
          text: t("revoke"),
          label: t("revokeLabel", key),
          onClick: (opener) => confirmRevoke(key, opener),
        }),
      );
    }
    tr.append(actions);
    return tr;
  }

  async function load() {
    try {
      const [keys, collections] = await Promise.all([
        call("GET", "/v1/keys"),
        call("GET", "/v1/collections"),
      ]);
      $("keys").replaceChildren(...keys.items.map(row));
      $("key-collections").replaceChildren(
        ...collections.items.map((item) => checkbox("collection", item.name)),
      );
    } catch (error) {
      sayError($("keys-status"), error);
    }
  }

  function confirmRevoke(key, opener) {
    confirmThen({ title: t("revokeTitle"), text: t("revokeText", key), opener }, async () => {
      try {
        await call("DELETE", `/v1/keys/${key.prefix}`);
        await load();
        say($("keys-status"), t("revoked", { name: key.name }), "success");
      } catch (error) {
        sayError($("keys-status"), error);
      }
    });
  }

  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("key-status");
    const scopes = ticked("key-scopes");
    if (scopes.length === 0) {
      say(status, t("chooseScope"), "error");
      return;
    }
    const collections = ticked("key-collections");
    const expires = $("key-expires").value;
    const body = {
      name: $("key-name").value.trim(),
      scopes,
      ...(collections.length ? { collections } : {}),
      ...(expires ? { expires_at: new Date(`${expires}T00:00:00`).toISOString() } : {}),
    };
    try {
      const made = await call("POST", "/v1/keys", { json: body });
      event.target.reset();
      $("secret").value = made.secret;
      $("secret-box").hidden = false;
      $("secret").focus();
      $("secret").select();
      await load();
      say(status, t("keyCreated", { name: made.key.name }), "success");
    } catch (error) {
      sayError(status, error);
    }
  });

  return {
    leave() {
      // the secret goes when the operator leaves the page
      $("secret").value = "";
      $("secret-box").hidden = true;
    },
    reset() {
      $("keys").replaceChildren();
      $("secret").value = "";
      $("secret-box").hidden = true;
      say($("keys-status"), "");
      say($("key-status"), "");
    },
    show() {
      $("keys-denied").hidden = may();
      $("keys-body").hidden = !may();
      if (may()) {
        load(); // the collections to bind to may have changed meanwhile
      }
    },
  };
}
