// The radiologist screen: claim, give back, report, send to my workstation, reassign
// (administrators), and the reading list refreshing itself as routing changes it.
// Every action goes to /api/reading-list; its refusals (no cherry-picking, not yours)
// are shown as the server words them.
"use strict";

(() => {
  const FLASH = "pathway.radiologist.flash";
  const REFRESH_ON = new Set([
    "ROUTED", "ROUTING_ALERT", "ESCALATED", "REASSIGNED", "RELEASED", "CLAIMED", "AT_RISK",
    "REPORT_FINAL",
  ]);
  const WATCHED_HERE = new Set(["ESCALATED", "REASSIGNED", "RELEASED", "CLAIMED", "REPORT_FINAL"]);
  const POLL_MS = 1000;

  const $ = (selector, root = document) => root.querySelector(selector);
  const studyApi = (uid) => `/api/reading-list/${encodeURIComponent(uid)}`;
  const studyPage = (uid) => `/radiologist/study/${encodeURIComponent(uid)}`;
  const study = $("#study");
  let acting = false; // an action of ours is on its way: its own events need no warning

  function showProblem(message) {
    const box = $("#problem");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    } else {
      Pathway.notify(message, true);
    }
  }

  function clearProblem() {
    const box = $("#problem");
    if (box) {
      box.hidden = true;
      box.textContent = "";
    }
  }

  // A message for the next page (after a claim, a final report, a give-back).
  function flash(message) {
    sessionStorage.setItem(FLASH, message);
  }

  function showFlash() {
    const message = sessionStorage.getItem(FLASH);
    if (!message) return;
    sessionStorage.removeItem(FLASH);
    const status = $("#list-status");
    if (status) status.textContent = message;
    Pathway.notify(message);
  }

  async function act(button, work) {
    clearProblem();
    acting = true;
    if (button) button.disabled = true;
    try {
      await work();
    } catch (error) {
      showProblem(error.message);
    } finally {
      acting = false;
      if (button && button.isConnected) button.disabled = false;
    }
  }

  // -- claim -----------------------------------------------------------------------

  function claim(button) {
    const uid = button.dataset.uid;
    return act(button, async () => {
      try {
        await Pathway.api("POST", `${studyApi(uid)}/claim`, {});
      } catch (error) {
        throw new Error(`Not claimed: ${error.message}`);
      }
      flash("Claimed: the study is yours to read.");
      if (study && study.dataset.uid === uid) location.reload();
      else location.assign(studyPage(uid));
    });
  }

  // -- give back (asks a reason) ------------------------------------------------------

  const dialog = $("#release-dialog");
  let releasing = null;

  function askRelease(button) {
    releasing = button;
    $("#release-study").textContent = `Study ${button.dataset.accession || button.dataset.uid}`;
    $("#release-reason").value = "";
    dialog.showModal();
    $("#release-reason").focus();
  }

  if (dialog) {
    $("[data-close]", dialog).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (releasing && releasing.isConnected) releasing.focus();
    });
    $("#release-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const button = releasing;
      const reason = $("#release-reason").value.trim();
      if (!reason) {
        $("#release-reason").reportValidity();
        return;
      }
      dialog.close();
      act(button, async () => {
        try {
          await Pathway.api("POST", `${studyApi(button.dataset.uid)}/release`, { reason });
        } catch (error) {
          throw new Error(`Not given back: ${error.message}`);
        }
        const done = `${button.dataset.accession || "The study"} given back: ${reason}`;
        if (study) {
          flash(done);
          location.assign("/radiologist");
        } else {
          Pathway.notify(done);
          await refreshList();
        }
      });
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "claim") claim(button);
    else if (button.dataset.action === "release") askRelease(button);
  });

  // -- the report ---------------------------------------------------------------------

  const reportForm = $("#report-form");
  if (reportForm) {
    reportForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const status = event.submitter ? event.submitter.value : "preliminary";
      const impression = $("#impression").value;
      act(event.submitter, async () => {
        await Pathway.api("POST", `${studyApi(reportForm.dataset.uid)}/report`, {
          status,
          impression,
        });
        if (status === "final") {
          flash(`${study.dataset.accession} reported: final report signed.`);
          location.assign("/radiologist");
        } else {
          $(".report-status").textContent = "Report preliminary, saved just now.";
        }
      });
    });
  }

  // -- send to my workstation, and follow the delivery ------------------------------------

  function showDelivery(delivery) {
    const box = $("#delivery");
    box.replaceChildren();
    const line = document.createElement("p");
    line.className = `delivery ${delivery.state}`;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = delivery.progress;
    bar.textContent = `${delivery.progress} %`;
    line.append(`Sent to ${delivery.ae_title}: `);
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = delivery.state;
    line.append(state, " ", bar, ` ${delivery.progress} %`);
    if (delivery.error) {
      const error = document.createElement("span");
      error.className = "error";
      error.textContent = ` ${delivery.error}`;
      line.append(error);
    }
    box.append(line);
  }

  async function follow(uid, delivery) {
    showDelivery(delivery);
    while (delivery.state === "sending") {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      delivery = await Pathway.api("GET", `${studyApi(uid)}/deliveries/${delivery.id}`);
      showDelivery(delivery);
    }
    if (delivery.state === "delivered") Pathway.notify(`Delivered to ${delivery.ae_title}.`);
    else showProblem(`Sending to ${delivery.ae_title} ${delivery.state}: ${delivery.error || ""}`);
  }

  const send = $("#send");
  if (send) {
    send.addEventListener("click", () =>
      act(send, async () => {
        let delivery;
        try {
          delivery = await Pathway.api("POST", `${studyApi(send.dataset.uid)}/send`, {});
        } catch (error) {
          throw new Error(`Not sent: ${error.message}`);
        }
        await follow(send.dataset.uid, delivery);
      }),
    );
  }

  // -- reassign (administrators) --------------------------------------------------------

  const reassignForm = $("#reassign-form");
  if (reassignForm) {
    reassignForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const to = $("#reassign-to").value;
      const reason = $("#reassign-reason").value.trim();
      act(event.submitter, async () => {
        await Pathway.api("POST", `${studyApi(reassignForm.dataset.uid)}/reassign`, { to, reason });
        flash(`Reassigned to ${to}.`);
        location.reload();
      });
    });
  }

  // -- live -------------------------------------------------------------------------------

  const list = $("#reading-list");

  async function refreshList() {
    const answer = await fetch(list.dataset.src, { headers: { Accept: "text/html" } });
    if (answer.redirected || answer.status === 401) {
      location.reload(); // the login ended: the page sends us to log in
      return;
    }
    if (!answer.ok) return;
    const html = await answer.text();
    // Keep the keyboard where it was: the same button of the same study, if still there.
    const focused = document.activeElement;
    const row = focused && list.contains(focused) ? focused.closest("[data-uid]") : null;
    const again = row
      ? `[data-uid="${CSS.escape(row.dataset.uid)}"] ${focused.dataset.action ? `[data-action="${focused.dataset.action}"]` : "a"}`
      : null;
    list.innerHTML = html;
    if (again) {
      const target = $(again, list);
      if (target) target.focus();
    }
    const summary = $(".list-summary", list);
    const count = summary ? summary.dataset.count : "0";
    $("#list-status").textContent = `Reading list updated: ${count} ${count === "1" ? "study" : "studies"}.`;
  }

  if (list && list.hasAttribute("data-live")) {
    let pending = null;
    const soon = () => {
      clearTimeout(pending);
      pending = setTimeout(() => refreshList().catch(() => {}), 250);
    };
    // From the event the page was rendered at: nothing in between is missed.
    Pathway.live(`/api/events?after=${list.dataset.eventsAfter}`, (kind) => {
      if (REFRESH_ON.has(kind)) soon();
    });
    setInterval(soon, 60000); // the time left moves on
  }

  if (study) {
    Pathway.live(`/api/events?after=${study.dataset.eventsAfter}`, (kind, event) => {
      if (acting || event.study_instance_uid !== study.dataset.uid) return;
      if (WATCHED_HERE.has(kind) && event.actor !== study.dataset.me) {
        showProblem(`This study has changed (${kind.toLowerCase()} by ${event.actor}). Reload the page to see it.`);
      }
    });
  }

  showFlash();
})();
