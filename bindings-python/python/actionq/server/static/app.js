// The approvers' page: plain JavaScript, no build step, no dependency.
//
// Everything shown comes from the JSON API and is put in the page as text
// (textContent, Text nodes), never parsed as markup. The API key lives in this
// tab's sessionStorage only. Live updates are pushed: the page reads what it
// shows once, then follows GET /events/stream (read with fetch, which can send
// the key header, unlike EventSource) and re-reads only when an event arrives.
// When the stream drops it reconnects with backoff, reads once again, and
// follows on from the last event it saw (docs/contract/push.md#over-http).
"use strict";

(() => {
  const KEY_STORAGE = "actionq.key";
  const API = "/api/v1";
  const PAGE_SIZE = 50; // pending actions per page (the API's limit is 1..=100)
  const HISTORY_SIZE = 20;
  const HISTORY_STATUSES = ["approved", "executing", "completed", "failed", "rejected", "cancelled"];
  const EVENTS_PAGE = 1000; // the API's largest events page
  const RECONNECT_FIRST_MS = 250; // backoff of the stream's reconnects: doubles ...
  const RECONNECT_MAX_MS = 15000; // ... up to this
  const DECIDERS = new Set(["admin", "operator"]); // roles that approve, reject, pause

  const state = {
    key: null,
    me: null,
    pendingOffset: 0,
    servers: new Map(), // id -> server
    waitReasons: new Map(), // pending action id -> its creation event's detail
    progress: new Map(), // pending action id -> last approval event's detail ("1 of 2")
    eventCursor: 0,
    stream: null, // AbortController of the open events stream
    following: false, // the stream feeds the events: a refresh does not read them
    refreshing: null,
    queued: null,
    firstRender: true,
    live: new Map(), // executing action id -> {text, seq, controller}: its output so far
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ DOM

  /** An element with attributes/properties and children (strings become Text nodes). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** Makes `list`'s children exactly `nodes`, in order, moving only what must move
   *  (a node that stays in place keeps its focus, open form and open details). */
  function reconcile(list, nodes) {
    nodes.forEach((node, i) => {
      if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
    });
    while (list.children.length > nodes.length) list.lastElementChild.remove();
  }

  /** Keyed rendering: reuses the card of `key` while its signature is unchanged. */
  function keyedCards(list, items, key, signature, build, update) {
    const old = new Map();
    for (const node of list.children) old.set(node.dataset.key, node);
    const nodes = items.map((item) => {
      const sig = signature(item);
      const existing = old.get(key(item));
      if (existing && existing.dataset.sig === sig) {
        if (update) update(existing, item);
        return existing;
      }
      const card = build(item, existing);
      card.dataset.key = key(item);
      card.dataset.sig = sig;
      return card;
    });
    reconcile(list, nodes);
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function apiError(status, body) {
    const detail = body && body.detail;
    if (detail && typeof detail === "object" && !Array.isArray(detail)) {
      return new ApiError(status, detail.code || "", detail.message || `HTTP ${status}`);
    }
    if (Array.isArray(detail)) {
      const parts = detail.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`);
      return new ApiError(status, "VALIDATION_ERROR", parts.join("; "));
    }
    return new ApiError(status, "", typeof detail === "string" ? detail : `HTTP ${status}`);
  }

  async function api(method, path, body) {
    const headers = { "X-API-Key": state.key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new ApiError(0, "NETWORK", `the server could not be reached (${err.message})`);
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) throw apiError(response.status, data);
    return data;
  }

  const STATUS_WORDS = {
    0: "No connection",
    401: "Key refused (401)",
    403: "Not allowed (403)",
    404: "Not found (404)",
    409: "Conflict (409)",
    413: "Too large (413)",
    422: "Refused as invalid (422)",
    503: "Storage unavailable (503)",
  };

  /** The sentence a person reads for a failed API call. */
  function describe(err, doing) {
    const what = STATUS_WORDS[err.status] || `Error (HTTP ${err.status})`;
    const message = /[.!?]$/.test(err.message) ? err.message : `${err.message}.`;
    let text = `Could not ${doing}. ${what}: ${message}`;
    if (err.status === 409) text += " Someone else may have acted on it first; the page now shows its current state.";
    if (err.status === 403 && err.code === "PERMISSION_DENIED") text += " Your role does not allow this.";
    return text;
  }

  function showError(text) {
    $("error-text").textContent = text;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  function canDecide() {
    return Boolean(state.me && DECIDERS.has(state.me.role));
  }

  // ------------------------------------------------------------------ sign-in

  /** Who the key belongs to: GET /me, or the bootstrap admin where the server
   *  has no identities (/me is 404 there; the key is checked by a read). */
  async function whoAmI() {
    try {
      return await api("GET", "/me");
    } catch (err) {
      if (err.status !== 404) throw err;
      await api("GET", "/actions?limit=1");
      return { name: "dashboard", role: "admin", server_id: null };
    }
  }

  async function signIn(key) {
    state.key = key;
    try {
      state.me = await whoAmI();
    } catch (err) {
      state.key = null;
      state.me = null;
      sessionStorage.removeItem(KEY_STORAGE);
      showError(describe(err, "sign in"));
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    clearError();
    $("key").value = "";
    $("sign-in").hidden = true;
    $("app").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = state.me.name;
    $("who-role").textContent = state.me.role;
    document.body.dataset.role = state.me.role;
    follow();
  }

  function signOut(message) {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.following = false;
    state.key = null;
    state.me = null;
    state.eventCursor = 0;
    state.waitReasons.clear();
    state.progress.clear();
    stopFollowingOutput(new Set());
    sessionStorage.removeItem(KEY_STORAGE);
    for (const id of ["pending-list", "server-list", "history-list"]) $(id).replaceChildren();
    delete document.body.dataset.role;
    $("app").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    if (message) showError(message);
    else clearError();
    $("key").focus();
  }

  // ------------------------------------------------------------------ refresh

  /** Reads what the page shows; one refresh at a time (a later call waits for it). */
  function refresh() {
    if (!state.key) return Promise.resolve();
    if (state.refreshing) {
      // One already runs, and may have read before the change that asks for
      // this one: run another after it (one, however many ask meanwhile).
      if (!state.queued) {
        state.queued = state.refreshing.then(() => {
          state.queued = null;
          return refresh();
        });
      }
      return state.queued;
    }
    state.refreshing = load().finally(() => {
      state.refreshing = null;
    });
    return state.refreshing;
  }

  async function load() {
    try {
      const [pending, servers, ...byStatus] = await Promise.all([
        api("GET", `/actions?status=pending&limit=${PAGE_SIZE}&offset=${state.pendingOffset}`),
        api("GET", "/servers"),
        ...HISTORY_STATUSES.map((s) => api("GET", `/actions?status=${s}&limit=${HISTORY_SIZE}`)),
      ]);
      if (!state.following) await tailEvents();
      state.servers = new Map(servers.map((s) => [s.id, s]));
      if (pending.actions.length === 0 && pending.total > 0 && state.pendingOffset > 0) {
        // The page emptied under us (others decided): go to the last page that has some.
        state.pendingOffset = Math.floor((pending.total - 1) / PAGE_SIZE) * PAGE_SIZE;
        return load();
      }
      renderPending(pending);
      await Promise.all([showLinkedAction(), showFailingSinks()]);
      renderServers(servers);
      renderHistory(byStatus.flatMap((page) => page.actions));
      $("live").textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
      if (state.firstRender) {
        state.firstRender = false;
        // Milliseconds from navigation to the first complete view (read by the tests).
        document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
      }
    } catch (err) {
      if (err.status === 401) signOut(describe(err, "load the queue"));
      else $("live").textContent = `Live updates paused: ${describe(err, "load the queue")}`;
    }
  }

  /** The action a notification links to (`#action/<id>`), shown on top. */
  async function showLinkedAction() {
    const match = /^#action\/(\d+)$/.exec(window.location.hash);
    const section = $("action-section");
    if (!match) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    $("action-title").textContent = `#${match[1]}`;
    try {
      const action = await api("GET", `/actions/${match[1]}`);
      // Read-only here: a pending one is decided in its card below.
      $("action-view").replaceChildren(historyCard(action));
    } catch (err) {
      $("action-view").replaceChildren(el("p", { class: "empty", text: describe(err, `load action #${match[1]}`) }));
    }
  }

  /** Admins see the notification sinks that fail (GET /notifications). */
  async function showFailingSinks() {
    const banner = $("notify-banner");
    if (!state.me || state.me.role !== "admin") {
      banner.hidden = true;
      return;
    }
    let sinks = [];
    try {
      sinks = await api("GET", "/notifications");
    } catch (err) {
      sinks = [];
    }
    const failing = sinks.filter((s) => s.last_error !== null);
    banner.hidden = failing.length === 0;
    banner.textContent = failing.length
      ? `Notifications failing: ${failing.map((s) => `${s.name} (${s.last_error}; ${s.lag_events} waiting, ${s.dead} given up)`).join(", ")}`
      : "";
  }

  /** Follows the audit log for what the actions do not say: why a pending
   *  action waits (its creation event's detail) and approval progress. */
  async function tailEvents() {
    for (let pages = 0; pages < 5; pages += 1) {
      const events = await api("GET", `/events?after=${state.eventCursor}&limit=${EVENTS_PAGE}`);
      events.forEach(applyEvent);
      if (events.length < EVENTS_PAGE) return;
    }
  }

  function applyEvent(e) {
    if (e.to_status === "pending" && e.from_status === null) {
      if (e.detail) state.waitReasons.set(e.action_id, e.detail);
    } else if (e.to_status === "pending") {
      if (e.detail) state.progress.set(e.action_id, e.detail);
    } else if (e.from_status === "pending") {
      state.waitReasons.delete(e.action_id);
      state.progress.delete(e.action_id);
    }
    state.eventCursor = e.id;
  }

  // ------------------------------------------------------------------ stream

  /** Reads what the page shows once, then follows the events stream; after
   *  a drop, waits (backoff) and does both again. Ends at sign-out. */
  async function follow() {
    if (state.stream) state.stream.abort();
    const controller = new AbortController();
    state.stream = controller;
    let delay = RECONNECT_FIRST_MS;
    while (state.stream === controller) {
      state.following = false;
      await refresh();
      if (state.stream !== controller) return;
      state.following = true;
      let heard = false;
      try {
        heard = await readStream(controller.signal);
      } catch (err) {
        if (state.stream !== controller) return;
        if (err.status === 401) {
          signOut(describe(err, "follow the queue"));
          return;
        }
      }
      if (state.stream !== controller) return;
      if (heard) delay = RECONNECT_FIRST_MS;
      $("live").textContent = `Live updates paused: reconnecting in ${Math.ceil(delay / 1000)} s`;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  /** Opens the server-sent event stream at `path` (its errors are JSON, as
   *  every route's). */
  async function openStream(path, headers, signal) {
    let response;
    try {
      response = await fetch(`${API}${path}`, {
        headers: { "X-API-Key": state.key, ...headers },
        cache: "no-store",
        credentials: "omit",
        signal,
      });
    } catch (err) {
      throw new ApiError(0, "NETWORK", `the server could not be reached (${err.message})`);
    }
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
      throw apiError(response.status, data);
    }
    return response;
  }

  /** Reads the messages of an open stream until it ends, handing each read's
   *  messages (`{event, data}`, data parsed) to `onMessages`; true if it
   *  delivered anything (the connection worked). */
  async function readMessages(response, onMessages) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let heard = false;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        return heard; // dropped (or aborted)
      }
      if (chunk.done) return heard;
      heard = true;
      buffer += chunk.value;
      let end;
      const messages = [];
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const field = (name) => lines.filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trimStart());
        const data = field("data").join("\n");
        if (!data) continue; // a comment: the stream is alive
        messages.push({ event: field("event")[0] || "message", data: JSON.parse(data) });
      }
      if (messages.length) onMessages(messages);
    }
  }

  /** Follows GET /events/stream from the page's cursor until it ends;
   *  true if it delivered anything (the connection worked). */
  async function readStream(signal) {
    const response = await openStream("/events/stream", { "Last-Event-ID": String(state.eventCursor) }, signal);
    return readMessages(response, (messages) => {
      messages.forEach((m) => applyEvent(m.data));
      refresh();
    });
  }

  // ------------------------------------------------------------------ live output

  /** Follows an executing action's output stream (docs/contract/cancel-and-output.md#live-output)
   *  into state.live until the action ends or the page stops showing it. */
  function followOutput(id) {
    if (state.live.has(id)) return;
    const live = { text: "", seq: 0, controller: new AbortController() };
    state.live.set(id, live);
    (async () => {
      while (state.live.get(id) === live) {
        let ended = false;
        try {
          const response = await openStream(
            `/actions/${id}/output/stream`,
            { "Last-Event-ID": String(live.seq) },
            live.controller.signal,
          );
          await readMessages(response, (messages) => {
            for (const m of messages) {
              if (m.event === "end") {
                ended = true;
              } else if (m.event === "output") {
                live.seq = m.data.seq;
                live.text += m.data.stdout + m.data.stderr;
              }
            }
            showOutput(id);
          });
        } catch (err) {
          if (live.controller.signal.aborted) return;
        }
        if (ended || live.controller.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_FIRST_MS));
      }
    })();
  }

  /** Stops following the output of every action not in `keep`. */
  function stopFollowingOutput(keep) {
    for (const [id, live] of state.live) {
      if (keep.has(id)) continue;
      live.controller.abort();
      state.live.delete(id);
    }
  }

  function showOutput(id) {
    const pre = document.querySelector(`article[data-id="${id}"] pre.live-output`);
    const live = state.live.get(id);
    if (pre && live) pre.textContent = live.text;
  }

  async function cancelRunning(action, button) {
    button.disabled = true;
    try {
      await api("POST", `/actions/${action.id}/cancel`);
      clearError();
    } catch (err) {
      showError(describe(err, `cancel #${action.id}`));
      button.disabled = false;
    } finally {
      await refresh();
    }
  }

  // ------------------------------------------------------------------ pending

  function whyItWaits(action) {
    const reasons = [];
    const server = state.servers.get(action.server_id);
    if (server && server.is_paused) {
      reasons.push(`server ${server.id} is in maintenance (since ${ago(server.paused_at)})`);
    }
    const detail = state.waitReasons.get(action.id);
    if (detail) reasons.push(detail);
    if (reasons.length === 0) reasons.push("it needs a human decision");
    return reasons.join("; ");
  }

  function approvalsSoFar(action) {
    const approvals = Array.isArray(action.approvals) ? action.approvals : [];
    const names = approvals.map((a) => a.by).join(", ");
    const progress = state.progress.get(action.id);
    if (!approvals.length) return progress || "none yet";
    return progress ? `${names} (${progress})` : names;
  }

  function argvView(action) {
    const env = Object.entries(action.env || {}).map(([k, v]) => el("span", { class: "env", text: `${k}=${v}` }));
    const args = (action.argv || []).map((arg) => el("span", { class: "arg", text: arg }));
    return el("code", { class: "argv", title: action.command }, env, args);
  }

  function field(label, value, cls) {
    return el("div", { class: `field ${cls || ""}` }, el("dt", { text: label }), el("dd", { text: value }));
  }

  function pendingCard(action, previous) {
    const draft = previous ? previous.querySelector("textarea") : null;
    const reasonBox = el("textarea", { name: "reason", rows: 2, maxlength: 1000, "aria-label": `Reason for rejecting #${action.id}` });
    const formError = el("p", { class: "field-error", role: "alert", hidden: true });
    const rejectForm = el(
      "form",
      { class: "reject-form", hidden: true, novalidate: true },
      el("label", { text: "Reason (required)" }),
      reasonBox,
      formError,
      el(
        "div",
        { class: "buttons" },
        el("button", { type: "submit", class: "danger confirm-reject", text: "Reject" }),
        el("button", { type: "button", class: "plain", text: "Keep waiting", onclick: () => { rejectForm.hidden = true; } }),
      ),
    );
    if (draft && !draft.closest("form").hidden) {
      rejectForm.hidden = false;
      reasonBox.value = draft.value;
    }
    rejectForm.addEventListener("submit", (event) => {
      event.preventDefault();
      reject(action, reasonBox, formError);
    });
    const decide = canDecide()
      ? el(
          "div",
          { class: "buttons decide" },
          el("button", {
            type: "button",
            class: "approve",
            text: "Approve",
            "aria-label": `Approve #${action.id}`,
            onclick: (e) => approve(action, e.target),
          }),
          el("button", {
            type: "button",
            class: "danger open-reject",
            text: "Reject…",
            "aria-label": `Reject #${action.id}…`,
            onclick: () => {
              rejectForm.hidden = false;
              reasonBox.focus();
            },
          }),
        )
      : null;
    return el(
      "article",
      { class: "action pending", "data-id": action.id },
      el(
        "header",
        {},
        el("span", { class: "id", text: `#${action.id}` }),
        el("span", { class: "server", text: action.server_id }),
        el("span", { class: "type", text: action.action_type }),
        el("span", { class: "age", title: when(action.created_at), text: ago(action.created_at) }),
      ),
      argvView(action),
      el(
        "dl",
        {},
        field("Requested by", action.created_by, "requester"),
        field("Approvals", approvalsSoFar(action), "approvals"),
        field("Why it waits", whyItWaits(action), "why"),
      ),
      decide,
      canDecide() ? rejectForm : null,
    );
  }

  function renderPending(page) {
    $("pending-total").textContent = `(${page.total})`;
    $("pending-empty").hidden = page.total > 0;
    keyedCards(
      $("pending-list"),
      page.actions,
      (a) => String(a.id),
      (a) => JSON.stringify([a, whyItWaits(a).replace(/\(since .*\)/, ""), approvalsSoFar(a), canDecide()]),
      pendingCard,
      (card, a) => {
        const age = card.querySelector(".age");
        age.textContent = ago(a.created_at);
        card.querySelector(".why dd").textContent = whyItWaits(a);
      },
    );
    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.actions.length;
    $("pending-range").textContent = `${first}–${last} of ${page.total}`;
    $("pending-pager").hidden = page.total <= PAGE_SIZE && page.offset === 0;
    $("pending-prev").disabled = page.offset === 0;
    $("pending-next").disabled = last >= page.total;
  }

  async function approve(action, button) {
    button.disabled = true;
    try {
      await api("POST", `/actions/${action.id}/approve`);
      clearError();
      $("live").textContent = `Approved #${action.id}.`;
    } catch (err) {
      showError(describe(err, `approve #${action.id}`));
    } finally {
      button.disabled = false;
      await refresh();
    }
  }

  async function reject(action, reasonBox, formError) {
    const reason = reasonBox.value.trim();
    if (!reason) {
      formError.textContent = "A reason is required to reject: say why, for the requester and the audit log.";
      formError.hidden = false;
      reasonBox.focus();
      return;
    }
    formError.hidden = true;
    try {
      await api("POST", `/actions/${action.id}/reject`, { reason });
      clearError();
      $("live").textContent = `Rejected #${action.id}.`;
    } catch (err) {
      formError.textContent = describe(err, `reject #${action.id}`);
      formError.hidden = false;
      showError(describe(err, `reject #${action.id}`));
    } finally {
      await refresh();
    }
  }

  // ------------------------------------------------------------------ servers

  function serverCard(server) {
    const toggle = canDecide()
      ? el("button", {
          type: "button",
          class: server.is_paused ? "approve toggle" : "plain toggle",
          text: server.is_paused ? "Leave maintenance" : "Enter maintenance",
          onclick: (e) => setMaintenance(server, !server.is_paused, e.target),
        })
      : null;
    return el(
      "article",
      { class: `server-card ${server.is_paused ? "paused" : "normal"}`, "data-id": server.id },
      el(
        "header",
        {},
        el("span", { class: "server", text: server.id }),
        server.hostname ? el("span", { class: "hostname", text: server.hostname }) : null,
      ),
      el("p", {
        class: "state",
        text: server.is_paused
          ? `In maintenance since ${when(server.paused_at)}: new actions wait for approval`
          : "Normal: new actions are approved automatically",
      }),
      toggle,
    );
  }

  function renderServers(servers) {
    $("servers-empty").hidden = servers.length > 0;
    keyedCards($("server-list"), servers, (s) => s.id, (s) => JSON.stringify([s, canDecide()]), serverCard);
  }

  async function setMaintenance(server, paused, button) {
    button.disabled = true;
    const verb = paused ? "pause" : "unpause";
    try {
      await api("PUT", `/servers/${encodeURIComponent(server.id)}/${verb}`);
      clearError();
    } catch (err) {
      showError(describe(err, `${verb} ${server.id}`));
    } finally {
      button.disabled = false;
      await refresh();
    }
  }

  // ------------------------------------------------------------------ history

  function outcome(action) {
    switch (action.status) {
      case "rejected":
        return `rejected by ${action.rejected_by}: ${action.rejection_reason}`;
      case "cancelled":
        return `cancelled by ${action.cancelled_by}`;
      case "completed":
      case "failed":
        return `${action.status}, exit code ${action.exit_code}`;
      case "executing":
        return action.cancel_requested_by
          ? `running since ${when(action.executed_at)}; cancel requested by ${action.cancel_requested_by}`
          : `running since ${when(action.executed_at)}`;
      default:
        return `approved by ${action.approved_by}, waiting for its agent`;
    }
  }

  function historyCard(action) {
    const output = [];
    if (action.stdout) output.push(el("h4", { text: "stdout" }), el("pre", { class: "stdout", text: action.stdout }));
    if (action.stderr) output.push(el("h4", { text: "stderr" }), el("pre", { class: "stderr", text: action.stderr }));
    return el(
      "article",
      { class: `action done ${action.status}`, "data-id": action.id },
      el(
        "header",
        {},
        el("span", { class: "id", text: `#${action.id}` }),
        el("span", { class: "server", text: action.server_id }),
        el("span", { class: `badge status ${action.status}`, text: action.status }),
        el("span", { class: "age", title: when(action.created_at), text: ago(action.completed_at || action.created_at) }),
      ),
      argvView(action),
      el(
        "dl",
        {},
        field("Outcome", outcome(action), "outcome"),
        field("Requested by", action.created_by, "requester"),
        action.exit_code === null ? null : field("Exit code", String(action.exit_code), "exit-code"),
      ),
      output.length ? el("details", { class: "output" }, el("summary", { text: "Output" }), output) : null,
      action.status === "executing" ? runningParts(action) : null,
    );
  }

  /** An executing action's output as it comes, and its Cancel button for
   *  those who may decide. */
  function runningParts(action) {
    const live = state.live.get(action.id);
    const parts = [el("h4", { text: "Output so far" }), el("pre", { class: "live-output", text: live ? live.text : "" })];
    if (canDecide()) {
      const asked = Boolean(action.cancel_requested_by);
      const button = el("button", {
        type: "button",
        class: "cancel",
        text: asked ? "Cancel requested" : "Cancel",
        disabled: asked,
      });
      button.addEventListener("click", () => cancelRunning(action, button));
      parts.push(el("div", { class: "actions" }, button));
    }
    return el("div", { class: "running" }, ...parts);
  }

  function renderHistory(actions) {
    const newest = actions
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : b.id - a.id))
      .slice(0, HISTORY_SIZE);
    $("history-empty").hidden = newest.length > 0;
    const executing = new Set(newest.filter((a) => a.status === "executing").map((a) => a.id));
    stopFollowingOutput(executing);
    executing.forEach(followOutput);
    keyedCards($("history-list"), newest, (a) => String(a.id), (a) => JSON.stringify(a), historyCard, (card, a) => {
      card.querySelector(".age").textContent = ago(a.completed_at || a.created_at);
    });
  }

  // ------------------------------------------------------------------ wiring

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) {
        showError("Enter your API key to sign in.");
        return;
      }
      signIn(key);
    });
    $("sign-out").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", () => refresh());
    $("error-close").addEventListener("click", clearError);
    $("pending-prev").addEventListener("click", () => {
      state.pendingOffset = Math.max(0, state.pendingOffset - PAGE_SIZE);
      refresh();
    });
    $("pending-next").addEventListener("click", () => {
      state.pendingOffset += PAGE_SIZE;
      refresh();
    });
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) signIn(saved);
    else $("key").focus();
  });
})();
