// The door log (admin keys): recorded decisions and the audit trail, newest first,
// filtered by time, action and result (the audit trail by outcome); older entries a
// page at a time.
import { call } from "/console/api.js";
import { t } from "/console/strings.js";
import { $, say, sayError } from "/console/ui.js";

const PAGE_SIZE = 25;
const GRANTED = new Set(["known", "match"]);
// The result filter's choices as the API's `result` values (the service filters).
const RESULTS = { granted: ["known", "match"], refused: ["unknown", "no_match"] };

function cells(values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const td = document.createElement("td");
    td.textContent = value;
    tr.append(td);
  }
  return tr;
}

function when(text) {
  return new Date(text).toLocaleString();
}

function isoOrEmpty(id) {
  const value = $(id).value;
  return value ? new Date(value).toISOString() : "";
}

function number(value) {
  return value === null || value === undefined ? t("notShown") : value.toFixed(4);
}

export function setUpLog(session) {
  let decisionsBefore = null;
  let auditBefore = null;
  let loaded = false;
  const names = new Map(); // identity id -> name (or the id of one gone since)

  function filters() {
    return { since: isoOrEmpty("log-since"), until: isoOrEmpty("log-until") };
  }

  async function nameOf(decision) {
    const id = decision.identity_id;
    if (!id) {
      return t("notShown");
    }
    if (!names.has(id)) {
      const query = { collection: decision.collection ?? "default" };
      names.set(
        id,
        call("GET", `/v1/identities/${id}`, { query })
          .then((found) => found.identity.name)
          .catch(() => id),
      );
    }
    return names.get(id);
  }

  async function loadDecisions(more) {
    const page = await call("GET", "/v1/decisions", {
      query: {
        ...filters(),
        action: $("log-action").value,
        result: RESULTS[$("log-result").value] ?? $("log-result").value,
        before: more ? decisionsBefore : null,
        limit: PAGE_SIZE,
      },
    });
    decisionsBefore = page.next_before;
    const rows = await Promise.all(
      page.items.map(async (item) => {
        const row = cells([
          when(item.at),
          item.action,
          item.result,
          await nameOf(item),
          number(item.distance),
          number(item.threshold),
          item.actor_name,
        ]);
        row.className = GRANTED.has(item.result) ? "granted" : "refused";
        return row;
      }),
    );
    if (more) {
      $("decisions").append(...rows);
    } else {
      $("decisions").replaceChildren(...rows);
    }
    $("decisions-off").hidden = $("decisions").children.length > 0;
    $("decisions-older").hidden = decisionsBefore === null;
  }

  async function loadAudit(more) {
    const page = await call("GET", "/v1/audit", {
      query: {
        ...filters(),
        outcome: $("log-outcome").value,
        before: more ? auditBefore : null,
        limit: PAGE_SIZE,
      },
    });
    auditBefore = page.next_before;
    const rows = page.items.map((item) =>
      cells([
        when(item.at),
        item.actor_name,
        item.action,
        Object.entries(item.target)
          .map(([name, value]) => `${name}: ${value}`)
          .join(", "),
        item.outcome,
      ]),
    );
    if (more) {
      $("audit").append(...rows);
    } else {
      $("audit").replaceChildren(...rows);
    }
    $("audit-older").hidden = auditBefore === null;
  }

  async function run(job) {
    const status = $("log-status");
    say(status, "");
    try {
      await job();
      loaded = true;
    } catch (error) {
      sayError(status, error);
    }
  }

  $("log-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => Promise.all([loadDecisions(false), loadAudit(false)]));
  });
  $("decisions-older").addEventListener("click", () => run(() => loadDecisions(true)));
  $("audit-older").addEventListener("click", () => run(() => loadAudit(true)));

  return {
    leave() {},
    reset() {
      loaded = false;
      names.clear();
      $("decisions").replaceChildren();
      $("audit").replaceChildren();
    },
    show() {
      $("log-denied").hidden = session.may("admin");
      $("log-body").hidden = !session.may("admin");
      if (session.may("admin") && !loaded) {
        run(() => Promise.all([loadDecisions(false), loadAudit(false)]));
      }
    },
  };
}
