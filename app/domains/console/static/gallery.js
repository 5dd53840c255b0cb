// The gallery page: list (paged, find by part of the name or by external id), enroll from
// a file, edit, delete (only for a key whose scopes allow deleting).
import { call } from "/console/api.js";
import { setUpPhotoInput } from "/console/photo-input.js";
import { t } from "/console/strings.js";
import { $, actionButton, confirmThen, say, sayError } from "/console/ui.js";

const PAGE_SIZE = 20;

export function setUpGallery(session) {
  // cursors[i] is the cursor of page i (null: the first)
  let cursors = [null];
  let next = null;
  let externalId = "";
  let name = "";
  let loaded = false;
  const photos = setUpPhotoInput("enroll-photo", "enroll", session);

  function row(person) {
    const tr = document.createElement("tr");
    tr.dataset.id = person.id;
    for (const text of [
      person.name,
      person.external_id ?? "",
      new Date(person.created_at).toLocaleString(),
    ]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const actions = document.createElement("td");
    if (session.may("verify")) {
      actions.append(
        actionButton({
          text: t("testPerson"),
          label: t("testPersonLabel", { name: person.name }),
          className: "edit",
          onClick: () => {
            session.target = { id: person.id, name: person.name };
            window.location.hash = "#test";
          },
        }),
      );
    }
    if (session.may("enroll")) {
      actions.append(
        actionButton({
          text: t("edit"),
          label: t("editLabel", { name: person.name }),
          className: "edit",
          onClick: (opener) => openEdit(person, opener),
        }),
      );
    }
    // enroll does not delete: that is the delete scope (the API refuses it anyway)
    if (session.may("delete")) {
      actions.append(
        actionButton({
          text: t("delete"),
          label: t("deleteLabel", { name: person.name }),
          className: "delete",
          onClick: (opener) => confirmDelete(person, opener),
        }),
      );
    }
    tr.append(actions);
    return tr;
  }

  async function load() {
    const status = $("gallery-status");
    say(status, "");
    try {
      const page = await call("GET", "/v1/identities", {
        query: {
          cursor: cursors.at(-1),
          limit: PAGE_SIZE,
          external_id: externalId,
          name,
          collection: session.collection,
        },
      });
      next = page.next_cursor;
      $("people").replaceChildren(...page.items.map(row));
      const empty = $("gallery-empty");
      empty.hidden = page.items.length > 0;
      empty.textContent = emptyText();
      $("page-info").textContent = t("pageInfo", {
        page: cursors.length,
        count: page.items.length,
      });
      $("next-page").disabled = next === null;
      $("first-page").disabled = cursors.length === 1;
      loaded = true;
    } catch (error) {
      sayError(status, error);
    }
  }

  function emptyText() {
    if (name && externalId) {
      return t("nobodyMatches");
    }
    if (name) {
      return t("nobodyNamed", { name });
    }
    return externalId ? t("nobodyFound", { id: externalId }) : t("noPeople");
  }

  let editing = null; // the person in the edit dialog, and the button that opened it

  async function openEdit(person, opener) {
    editing = { person, opener };
    $("edit-name").value = person.name;
    $("edit-metadata").value = JSON.stringify(person.metadata ?? {}, null, 2);
    $("edit-photo").value = "";
    $("edit-faces").textContent = "";
    $("edit-face-list").replaceChildren();
    say($("edit-status"), "");
    $("edit-person").showModal();
    await showFaces(person);
  }

  function faceItem(person, face) {
    const item = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = t("faceLine", {
      id: face.id,
      score: face.detection_score?.toFixed(4) ?? t("notShown"),
      when: new Date(face.created_at).toLocaleString(),
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = t("removeFace");
    remove.setAttribute("aria-label", t("removeFaceLabel", { id: face.id }));
    remove.addEventListener("click", async () => {
      // a second question in the dialog: the browser's own, keyboard-friendly
      if (!window.confirm(t("removeFaceConfirm", { id: face.id, name: person.name }))) {
        return;
      }
      try {
        await call("DELETE", `/v1/identities/${person.id}/faces/${face.id}`, {
          query: { collection: session.collection },
        });
        await showFaces(person);
        say($("edit-status"), t("faceRemoved", { id: face.id }), "success");
      } catch (error) {
        sayError($("edit-status"), error);
      }
    });
    if (session.may("delete")) {
      item.append(text, remove);
    } else {
      item.append(text);
    }
    return item;
  }

  async function showFaces(person) {
    try {
      const detail = await call("GET", `/v1/identities/${person.id}`, {
        query: { collection: session.collection },
      });
      $("edit-faces").textContent = t("facesEnrolled", { count: detail.faces.length });
      $("edit-face-list").replaceChildren(...detail.faces.map((face) => faceItem(person, face)));
    } catch (error) {
      sayError($("edit-status"), error);
    }
  }

  function closeEdit() {
    $("edit-person").close();
    editing?.opener.focus();
    editing = null;
  }

  $("edit-cancel").addEventListener("click", closeEdit);
  $("edit-form").addEventListener("input", () => say($("edit-status"), ""));
  $("edit-person").addEventListener("cancel", (event) => {
    event.preventDefault();
    closeEdit();
  });
  $("edit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("edit-status");
    let metadata;
    try {
      metadata = JSON.parse($("edit-metadata").value || "{}");
    } catch {
      metadata = null;
    }
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      say(status, t("badMetadata"), "error");
      return;
    }
    const { person } = editing;
    const query = { collection: session.collection };
    const button = $("edit-save");
    button.disabled = true;
    say(status, t("saving"));
    try {
      const saved = await call("PATCH", `/v1/identities/${person.id}`, {
        json: { name: $("edit-name").value.trim(), metadata },
        query,
      });
      let done = t("saved", { name: saved.name });
      const file = $("edit-photo").files[0];
      if (file) {
        const form = new FormData();
        form.set("image", file);
        form.set("collection", session.collection);
        const added = await call("POST", `/v1/identities/${person.id}/faces`, { form });
        const score = added.face.detection_score;
        done = t("savedWithFace", { name: saved.name, score: score?.toFixed(4) ?? t("notShown") });
      }
      closeEdit();
      await load();
      say($("gallery-status"), done, "success");
    } catch (error) {
      sayError(status, error);
    } finally {
      button.disabled = false;
    }
  });

  function confirmDelete(person, opener) {
    const question = {
      title: t("confirmTitle"),
      text: t("confirmText", { name: person.name }),
      opener,
    };
    confirmThen(question, async () => {
      const status = $("gallery-status");
      try {
        await call("DELETE", `/v1/identities/${person.id}`, {
          query: { collection: session.collection },
        });
        await load();
        say(status, t("deleted", { name: person.name }), "success");
      } catch (error) {
        sayError(status, error);
      }
    });
  }

  $("find-form").addEventListener("submit", (event) => {
    event.preventDefault();
    externalId = $("find-id").value.trim();
    name = $("find-name").value.trim();
    cursors = [null];
    load();
  });
  $("show-all").addEventListener("click", () => {
    $("find-id").value = externalId = "";
    $("find-name").value = name = "";
    cursors = [null];
    load();
  });
  $("next-page").addEventListener("click", () => {
    if (next !== null) {
      cursors.push(next);
      load();
    }
  });
  $("first-page").addEventListener("click", () => {
    cursors = [null];
    load();
  });

  $("enroll-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("enroll-status");
    const form = photos.form(status);
    if (!form) {
      return;
    }
    form.set("name", $("enroll-name").value.trim());
    const external = $("enroll-external-id").value.trim();
    if (external) {
      form.set("external_id", external);
    }
    form.set("largest_face", $("enroll-largest").checked ? "true" : "false");
    form.set("collection", session.collection);
    const button = event.submitter;
    button.disabled = true;
    say(status, t("enrolling"));
    try {
      const answer = await call("POST", "/v1/identities", { form });
      const score = answer.face.detection_score;
      say(
        status,
        t("enrolled", {
          name: answer.identity.name,
          score: score === null ? t("notShown") : score.toFixed(4),
        }),
        "success",
      );
      event.target.reset();
      photos.reset();
      if (session.may("read")) {
        await load();
      }
    } catch (error) {
      sayError(status, error);
    } finally {
      button.disabled = false;
    }
  });

  return {
    leave: () => photos.stopCamera(),
    reset() {
      cursors = [null];
      externalId = "";
      name = "";
      loaded = false;
      $("find-id").value = "";
      $("find-name").value = "";
      $("people").replaceChildren();
      photos.reset();
      say($("enroll-status"), "");
      say($("gallery-status"), "");
    },
    show() {
      $("gallery-denied").hidden = session.may("read");
      $("gallery-list").hidden = !session.may("read");
      $("enroll-form").hidden = !session.may("enroll");
      if (session.may("read") && !loaded) {
        load();
      }
    },
  };
}
