// The radiographer screen: actions on an examination, and the page kept current by the
// event stream. Whatever changes is fetched again as server-rendered fragments
// (/radiographer/rows/{accession}, /radiographer/alarm) and swapped in; nothing reloads.
"use strict";

(() => {
  const page = document.getElementById("radiographer");
  if (!page) return;

  const announcer = document.getElementById("rg-announce");
  const alarmAnnouncer = document.getElementById("rg-alarm-announce");
  const enc = encodeURIComponent;

  function announce(region, text) {
    // Emptied first so the same words said twice are read twice.
    region.textContent = "";
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  // A server-rendered fragment as a DocumentFragment. A redirect to the login page means
  // the session ended: say so rather than swap a login form into the schedule.
  async function fragment(url) {
    const answer = await fetch(url, { headers: { Accept: "text/html" } });
    if (answer.redirected && new URL(answer.url).pathname === "/login") {
      throw new Error("Your session has ended: log in again.");
    }
    if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
    const template = document.createElement("template");
    template.innerHTML = await answer.text();
    return template.content;
  }

  const rowsOf = (accession) =>
    [...page.querySelectorAll(`tr.exam[data-accession="${CSS.escape(accession)}"]`)];

  function flash(element) {
    element.classList.remove("changed");
    void element.offsetWidth; // restart the animation
    element.classList.add("changed");
    element.addEventListener("animationend", () => element.classList.remove("changed"),
      { once: true });
  }

  function insertInOrder(parent, element, selector) {
    const later = [...parent.querySelectorAll(selector)].find(
      (other) => other.dataset.start > element.dataset.start,
    );
    parent.insertBefore(element, later ?? parent.querySelector(":scope > .empty") ?? null);
  }

  // The same row as the server would render it now (the highlight aside): nothing to swap,
  // so a control under the user's pointer or focus is not replaced for nothing.
  function sameRow(old, row) {
    if (old.innerHTML !== row.innerHTML) return false;
    const classes = (element) => [...element.classList].filter((c) => c !== "changed").join(" ");
    if (classes(old) !== classes(row)) return false;
    return [...row.attributes].every((a) => a.name === "class" || old.getAttribute(a.name) === a.value);
  }

  // Put a fresh row where it belongs, keeping the keyboard focus on the same control.
  function placeRow(row) {
    const old = document.getElementById(row.id);
    if (old && sameRow(old, row)) return;
    const focusedAction = old?.contains(document.activeElement)
      ? document.activeElement.dataset.action ?? "patient" : null;
    const moved = old && (old.dataset.station !== row.dataset.station
      || old.dataset.start !== row.dataset.start);
    if (old && !moved) {
      old.replaceWith(row);
    } else {
      old?.remove();
      const body = page.querySelector(`tbody[data-station="${CSS.escape(row.dataset.station)}"]`);
      if (!body) return; // a station this page does not show
      insertInOrder(body, row, ":scope > tr.exam");
    }
    if (old?.dataset.status !== row.dataset.status) {
      const status = row.querySelector(".status").textContent.trim();
      announce(announcer, `${row.dataset.patient}: ${status}`);
      flash(row);
    }
    if (focusedAction) {
      const target = row.querySelector(`[data-action="${focusedAction}"]:not(:disabled)`)
        ?? row.querySelector("button:not(:disabled)") ?? row.querySelector("th.patient");
      target?.focus();
    }
  }

  function placeImages(article) {
    const list = document.getElementById("images-list");
    const old = document.getElementById(article.id);
    if (old && old.outerHTML === article.outerHTML) return;
    if (old) old.replaceWith(article);
    else insertInOrder(list, article, ":scope > article.exam-images");
  }

  function tidy() {
    for (const body of page.querySelectorAll("tbody[data-station]")) {
      body.querySelector(":scope > .empty").hidden = body.querySelector("tr.exam") !== null;
    }
    document.getElementById("no-images").hidden =
      document.querySelector("#images-list article") !== null;
  }

  async function loadExamination(accession) {
    const content = await fragment(`/radiographer/rows/${enc(accession)}`);
    const fresh = new Set();
    for (const row of content.querySelectorAll("tr.exam")) {
      fresh.add(row.id);
      placeRow(row);
    }
    // Rows the server no longer puts on today's list (rescheduled to another day).
    for (const row of rowsOf(accession)) if (!fresh.has(row.id)) row.remove();
    for (const article of content.querySelectorAll("article.exam-images")) placeImages(article);
    tidy();
  }

  // One fetch per examination at a time; events arriving meanwhile ask for one more.
  const loading = new Map();
  function refreshExamination(accession) {
    const state = loading.get(accession);
    if (state) {
      state.again = true;
      return state.done;
    }
    const entry = { again: false, done: null };
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          await loadExamination(accession);
        } while (entry.again);
      } catch (error) {
        Pathway.notify(`Could not refresh examination ${accession}: ${error.message}`, true);
      } finally {
        loading.delete(accession);
      }
    })();
    loading.set(accession, entry);
    return entry.done;
  }

  const failedStudies = () =>
    new Set([...document.querySelectorAll("#qc-alarm li[data-study]")].map((li) => li.dataset.study));

  let alarmLoading = null;
  async function refreshAlarm() {
    if (alarmLoading) return alarmLoading;
    alarmLoading = (async () => {
      try {
        const before = failedStudies();
        const content = await fragment("/radiographer/alarm");
        const fresh = content.querySelector("#qc-alarm");
        document.getElementById("qc-alarm").replaceWith(fresh);
        for (const item of fresh.querySelectorAll("li[data-study]")) {
          if (!before.has(item.dataset.study)) {
            const who = item.querySelector("strong").textContent;
            const why = item.querySelector(".summary").textContent;
            announce(alarmAnnouncer, `QC failed for ${who}: ${why}`);
            flash(fresh);
          }
        }
      } catch (error) {
        Pathway.notify(`Could not refresh the QC alarm: ${error.message}`, true);
      } finally {
        alarmLoading = null;
      }
    })();
    return alarmLoading;
  }

  // --- actions ------------------------------------------------------------------------

  async function post(url, body, what, patient) {
    try {
      return await Pathway.api("POST", url, body);
    } catch (error) {
      Pathway.notify(`${what} refused for ${patient}: ${error.message}`, true);
      return null;
    }
  }

  // Which row a dialog acts on.
  let current = null;

  function openDialog(id, row, fill) {
    const dialog = document.getElementById(id);
    current = row;
    dialog.querySelector(".who").textContent = row.dataset.patient;
    dialog.querySelector("form").reset();
    fill?.(dialog);
    dialog.showModal();
  }

  function fillSafety(dialog) {
    const checklist = JSON.parse(current.dataset.checklist || "{}");
    const form = dialog.querySelector("form");
    for (const box of form.querySelectorAll("input[type=checkbox]")) {
      box.checked = checklist[box.name] === true;
    }
    form.elements.egfr_ml_min.value = checklist.egfr_ml_min ?? "";
    form.elements.notes.value = checklist.notes ?? "";
    dialog.querySelector("fieldset.contrast").hidden = current.dataset.contrast !== "true";
    showMissing([]);
  }

  function showMissing(missing) {
    const box = document.getElementById("safety-missing");
    box.replaceChildren();
    if (!missing.length) return;
    const heading = document.createElement("p");
    heading.textContent = "Not ready yet. Still missing:";
    const list = document.createElement("ul");
    for (const item of missing) {
      const li = document.createElement("li");
      li.textContent = item;
      list.append(li);
    }
    box.append(heading, list);
  }

  function safetyChecklist(form) {
    const answer = {};
    const contrast = current.dataset.contrast === "true";
    for (const box of form.querySelectorAll("input[type=checkbox]")) {
      if (!contrast && box.closest("fieldset.contrast")) continue;
      answer[box.name] = box.checked ? true : null; // unticked: not yet confirmed
    }
    if (contrast) {
      const egfr = form.elements.egfr_ml_min.value.trim();
      answer.egfr_ml_min = egfr === "" ? null : Number(egfr);
    }
    const notes = form.elements.notes.value.trim();
    answer.notes = notes || null;
    return answer;
  }

  async function submitting(form, work) {
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await work();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  const procedure = (row, action) => `/api/procedures/${enc(row.dataset.accession)}/${action}`;

  document.getElementById("safety-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const row = current;
    if (!form.reportValidity()) return;
    submitting(form, async () => {
      const answer = await post(procedure(row, "safety"), { checklist: safetyChecklist(form) },
        "Safety checklist", row.dataset.patient);
      if (answer && answer.missing.length) {
        showMissing(answer.missing);
      } else if (answer) {
        form.closest("dialog").close();
      }
      await refreshExamination(row.dataset.accession);
    });
  });

  document.getElementById("cancel-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const row = current;
    if (!form.reportValidity()) return;
    submitting(form, async () => {
      const reason = form.elements.reason.value.trim();
      const answer = await post(procedure(row, "cancel"), { reason }, "Cancelling",
        row.dataset.patient);
      if (answer) form.closest("dialog").close();
      await refreshExamination(row.dataset.accession);
    });
  });

  document.getElementById("no-show-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const row = current;
    submitting(form, async () => {
      const answer = await post(procedure(row, "no-show"), {}, "No-show", row.dataset.patient);
      if (answer) form.closest("dialog").close();
      await refreshExamination(row.dataset.accession);
    });
  });

  document.getElementById("accept-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const item = current;
    if (!form.reportValidity()) return;
    submitting(form, async () => {
      const reason = form.elements.reason.value.trim();
      const answer = await post(`/api/studies/${enc(item.dataset.study)}/qc/accept`, { reason },
        "Accepting the examination", item.dataset.patient);
      if (answer) {
        form.closest("dialog").close();
        Pathway.notify(`${item.dataset.patient}: accepted, goes to reporting as it is.`);
      }
      await refreshAlarm();
      if (item.dataset.accession) await refreshExamination(item.dataset.accession);
    });
  });

  for (const close of document.querySelectorAll("dialog [data-close]")) {
    close.addEventListener("click", () => close.closest("dialog").close());
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const action = button.dataset.action;
    if (action === "accept-qc") {
      const item = button.closest("li[data-study]");
      openDialog("accept-dialog", button, (dialog) => {
        dialog.querySelector(".summary").textContent = item.querySelector(".summary").textContent;
      });
      return;
    }
    const row = button.closest("tr.exam");
    if (!row) return;
    if (action === "check-in") {
      // Not disabled while it works: a disabled button would drop the keyboard focus.
      if (button.getAttribute("aria-busy") === "true") return;
      button.setAttribute("aria-busy", "true");
      try {
        await post(procedure(row, "check-in"), {}, "Check-in", row.dataset.patient);
        await refreshExamination(row.dataset.accession);
      } finally {
        button.removeAttribute("aria-busy");
      }
    } else if (action === "safety") {
      openDialog("safety-dialog", row, fillSafety);
    } else if (action === "cancel") {
      openDialog("cancel-dialog", row);
    } else if (action === "no-show") {
      openDialog("no-show-dialog", row);
    }
  });

  // --- live ---------------------------------------------------------------------------

  // Kinds that can put an examination on today's list that the page does not show yet.
  const MAY_ADD = new Set(["ORDERED", "RESCHEDULE", "STEP_OFFERED"]);

  Pathway.live(`/api/events?after=${enc(page.dataset.lastEvent)}`, (kind, event) => {
    if (kind.startsWith("QC_")) refreshAlarm();
    const accession = event.accession_number;
    if (accession && (rowsOf(accession).length || MAY_ADD.has(kind))) {
      refreshExamination(accession);
    }
  });
})();
