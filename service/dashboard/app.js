// anjian control room: live event feed (SSE), filters, event detail with lifecycle buttons, camera grid.
// Plain JavaScript served by the service itself: no build step, no CDN, works offline, no inline script
// (the Content-Security-Policy allows only this file). API calls send the token as a bearer header;
// <img>, <video> and EventSource cannot, so the page opens a session (an HttpOnly cookie) and renews it.
"use strict";

const TOKEN_KEY = "anjian.token";
const MUTED_KEY = "anjian.muted";
const LABELS = {
  smoking: "Smoking", open_flame: "Open flame", blocked_exit: "Blocked exit", fallen_person: "Fallen person",
  uncleaned_dust: "Uncleaned dust", absence_from_post: "Absence from post", camera_fault: "Camera fault",
};
const ACTION_PATHS = {
  acknowledge: "acknowledge", dispatch: "dispatch", resolve: "resolve", false_alarm: "false-alarm", close: "close",
};
const OPEN_STATES = ["raised", "acknowledged", "dispatched", "resolved", "false_alarm"];

const state = {
  token: "", events: new Map(), selected: null, source: null, cameraTimer: null, sessionTimer: null, streamRetry: null,
  order: [], isMuted: false, audio: null, announced: 0,
};
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function readToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname);  // keep the token out of the address bar
  }
  return localStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();  // RFC 9457 problem details
      detail = problem.detail || problem.title || detail;
    } catch (_) { /* not JSON */ }
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

// The cookie that media and the live feed need; renewed at half its life.
async function openSession() {
  const session = await api("/auth/session", { method: "POST" });
  clearTimeout(state.sessionTimer);
  state.sessionTimer = setTimeout(
    () => openSession().catch((error) => showError(`Session: ${error.message}`)), session.ttl_s * 500);
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false });
}

function filters() {
  return {
    severity: $("filter-severity").value,
    state: $("filter-state").value,
    behaviour: $("filter-behaviour").value,
    camera: $("filter-camera").value.trim(),
  };
}

function matches(event, f) {
  if (f.severity && event.severity !== f.severity) return false;
  if (f.state === "open" && !OPEN_STATES.includes(event.state)) return false;
  if (f.state && f.state !== "open" && event.state !== f.state) return false;
  if (f.behaviour && event.behaviour !== f.behaviour) return false;
  if (f.camera && !event.camera_id.includes(f.camera)) return false;
  return true;
}

const BASE_TITLE = document.title;

function renderFeed(freshId) {
  const f = filters();
  const visible = [...state.events.values()].filter((e) => matches(e, f));
  const rows = anjianQueue.rows(visible);
  state.order = rows.map((row) => row.event.id);
  const feed = $("feed");
  feed.replaceChildren(...rows.map(({ event, count, members }) => {
    const row = document.createElement("li");
    const isSelected = members.includes(state.selected);
    row.className = `event-row sev-${event.severity}${isSelected ? " selected" : ""}`
      + `${members.includes(freshId) ? " fresh" : ""}${anjianQueue.needsPerson(event) ? " unacked" : ""}`;
    row.dataset.id = event.id;
    row.dataset.count = String(count);
    row.innerHTML = `
      <span class="badge ${event.severity}"></span>
      <span class="what"></span>
      <span class="state state-pill ${event.state}"></span>
      <span class="repeat"></span>
      <span class="where"></span>
      <span class="when"></span>`;
    row.children[0].textContent = event.severity + (event.escalations ? ` ▲${event.escalations}` : "");
    row.children[1].textContent = LABELS[event.behaviour] || event.behaviour;
    row.children[2].textContent = event.state.replace("_", " ");
    row.children[3].textContent = `${count > 1 ? `×${count} · ` : ""}${anjianQueue.isOngoing(event) ? "ongoing" : "ended"}`;
    row.children[3].className = `repeat ${anjianQueue.isOngoing(event) ? "ongoing" : "ended"}`;
    row.children[4].textContent = `${event.workshop_id} · ${event.camera_id}`;
    row.children[5].textContent = fmtTime(event.started_at);
    row.addEventListener("click", () => select(event.id));
    return row;
  }));
  $("feed-empty").hidden = rows.length > 0;
  renderCounters();
}

// Unacknowledged alerts per colour in the header and their total in the tab title, whatever the filters.
function renderCounters() {
  const counts = anjianQueue.counters(state.events.values());
  for (const colour of ["red", "orange", "yellow", "blue"]) {
    $(`count-${colour}`).textContent = String(counts[colour]);
  }
  document.title = counts.total ? `(${counts.total}) ${BASE_TITLE}` : BASE_TITLE;
}

// A new red or orange alert: a tone and a desktop notification, unless the operator muted them.
function announce(event) {
  if (state.isMuted || !anjianQueue.isUrgent(event)) return;
  state.announced += 1;
  document.body.dataset.announced = String(state.announced);
  try {
    const audio = state.audio || (state.audio = new AudioContext());
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = event.severity === "red" ? 880 : 660;
    gain.gain.value = 0.2;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  } catch (_) { /* no audio device */ }
  if ("Notification" in window && Notification.permission === "granted") {
    const label = LABELS[event.behaviour] || event.behaviour;
    new Notification(`${event.severity.toUpperCase()} · ${label}`, { body: `${event.workshop_id} · ${event.camera_id}`, tag: event.id });
  }
}

function setMuted(isMuted) {
  state.isMuted = isMuted;
  localStorage.setItem(MUTED_KEY, isMuted ? "1" : "");
  $("mute").textContent = isMuted ? "Sound off" : "Sound on";
  $("mute").setAttribute("aria-pressed", String(isMuted));
}

// Keyboard: j/k (or arrows) move through the queue; a, d, r, f, c act on the selected alert; m mutes.
const KEY_ACTIONS = { a: "acknowledge", d: "dispatch", r: "resolve", f: "false_alarm", c: "close" };

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea, select")) return;
  const key = e.key.toLowerCase();
  if (key === "j" || key === "arrowdown" || key === "k" || key === "arrowup") {
    const order = state.order || [];
    if (!order.length) return;
    const at = order.indexOf(state.selected);
    const step = key === "j" || key === "arrowdown" ? 1 : -1;
    select(order[at < 0 ? 0 : Math.min(order.length - 1, Math.max(0, at + step))]);
    e.preventDefault();
  } else if (key === "m") {
    setMuted(!state.isMuted);
  } else if (KEY_ACTIONS[key] && state.selected) {
    const button = document.querySelector(`.buttons button[data-action="${KEY_ACTIONS[key]}"]`);
    if (button && !button.disabled) { act(KEY_ACTIONS[key]); e.preventDefault(); }
  }
}

function fact(dl, term, value) {
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = value;
  dl.append(dt, dd);
}

async function renderDetail() {
  const event = state.events.get(state.selected);
  const pane = $("detail");
  if (!event) { pane.hidden = true; return; }
  pane.hidden = false;
  pane.dataset.id = event.id;
  $("detail-severity").className = `badge ${event.severity}`;
  $("detail-severity").textContent = event.severity;
  $("detail-title").textContent = `${LABELS[event.behaviour] || event.behaviour} · ${event.camera_id}`;
  $("detail-state").className = `state-pill ${event.state}`;
  $("detail-state").textContent = event.state.replace("_", " ");
  $("detail-message").textContent = event.message || "";
  const dl = $("detail-facts");
  dl.replaceChildren();
  fact(dl, "Site / workshop", `${event.site_id} / ${event.workshop_id}`);
  fact(dl, "Started", fmtTime(event.started_at));
  fact(dl, "Last seen", fmtTime(event.last_seen_at));
  fact(dl, "Ended", event.ended_at ? fmtTime(event.ended_at) : "ongoing");
  fact(dl, "Confidence", `${Math.round(event.confidence * 100)} %`);
  fact(dl, "Colour", event.escalations
    ? `${event.severity} (detected ${event.detected_severity}, escalated ${event.escalations}×)` : event.severity);
  if (event.assignee) fact(dl, "Assignee", event.assignee);
  fact(dl, "Model", event.model_version || "—");

  const img = $("detail-snapshot");
  const video = $("detail-clip");
  if (event.snapshot_url) {
    const src = `${event.snapshot_url}?v=${event.version}`;
    if (img.dataset.src !== src) { img.src = src; img.dataset.src = src; }
    img.hidden = false;
  } else { img.hidden = true; img.removeAttribute("src"); img.dataset.src = ""; }
  if (event.clip_url) {
    const src = event.clip_url;
    if (video.dataset.src !== src) { video.src = src; video.dataset.src = src; }
    video.hidden = false;
  } else { video.hidden = true; video.removeAttribute("src"); video.dataset.src = ""; }
  $("detail-no-media").hidden = Boolean(event.snapshot_url || event.clip_url);

  for (const button of document.querySelectorAll(".buttons button")) {
    button.disabled = !event.allowed_actions.includes(button.dataset.action);
  }
  try {
    const trail = await api(`/events/${encodeURIComponent(event.id)}/audit`);
    $("audit").replaceChildren(...trail.map((entry) => {
      const tr = document.createElement("tr");
      for (const text of [fmtTime(entry.at), entry.actor, entry.action.replace("_", " ") + (entry.assignee ? ` → ${entry.assignee}` : ""),
        entry.to_state.replace("_", " "), entry.note]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
  } catch (error) { showError(`Audit trail: ${error.message}`); }
}

function select(id) {
  state.selected = id;
  $("note").value = "";
  renderFeed();
  renderDetail();
}

async function act(action) {
  const id = state.selected;
  const note = $("note").value.trim();
  const assignee = $("assignee").value.trim();
  let body = { note };
  if (action === "dispatch") {
    if (!assignee) { showError("Dispatch needs an assignee."); $("assignee").focus(); return; }
    body = { assignee, note };
  } else if (action === "resolve" && !note) {
    showError("Resolving needs a disposal note."); $("note").focus(); return;
  } else if (action === "false_alarm") {
    if (!note) { showError("A false alarm needs a reason."); $("note").focus(); return; }
    body = { reason: note };
  }
  try {
    const updated = await api(`/events/${encodeURIComponent(id)}/${ACTION_PATHS[action]}`, {
      method: "POST", body: JSON.stringify(body),
    });
    showError("");
    $("note").value = "";
    upsert(updated);
  } catch (error) {
    showError(error.status === 403 ? "This token may only read: ask for an operator token." : error.message);
  }
}

function upsert(event, isFresh = false) {
  const known = state.events.get(event.id);
  if (known && known.version > event.version) return;
  state.events.set(event.id, event);
  if (isFresh && !known) announce(event);
  renderFeed(isFresh && !known ? event.id : null);
  if (event.id === state.selected) renderDetail();
}

async function loadEvents() {
  const params = new URLSearchParams({ limit: "200" });
  const f = filters();
  if (f.severity) params.append("severity", f.severity);
  if (f.behaviour) params.append("behaviour", f.behaviour);
  if (f.state === "open") OPEN_STATES.forEach((s) => params.append("state", s));
  else if (f.state) params.append("state", f.state);
  const page = await api(`/events?${params}`);
  for (const event of page.items) state.events.set(event.id, event);
  renderFeed();
  renderDetail();
}

function setLive(isOn, text) {
  $("live-dot").className = `dot ${isOn ? "on" : "off"}`;
  $("live-status").textContent = text;
}

function connectStream() {
  if (state.source) state.source.close();
  clearTimeout(state.streamRetry);
  const source = new EventSource("/stream");  // authenticated by the session cookie
  state.source = source;
  source.onopen = () => setLive(true, "live");
  source.onerror = () => {
    setLive(false, "reconnecting…");
    if (source.readyState !== EventSource.CLOSED) return;  // the browser retries by itself
    // Refused (session expired or token revoked): open a new session, then reconnect.
    state.streamRetry = setTimeout(() => openSession().then(connectStream).catch((error) => {
      setLive(false, "offline");
      showError(error.status === 401 ? "The token was refused: check it." : `Live feed: ${error.message}`);
    }), 3000);
  };
  source.addEventListener("event", (message) => upsert(JSON.parse(message.data), true));
}

async function loadCameras() {
  try {
    const cameras = await api("/cameras");
    const grid = $("cameras");
    if (!cameras.length) { grid.innerHTML = '<p class="muted">This service reads no cameras itself.</p>'; return; }
    grid.replaceChildren(...cameras.map((camera) => {
      const card = document.createElement("div");
      card.className = `camera ${camera.state}`;
      card.dataset.camera = camera.camera_id;
      const name = document.createElement("b");
      name.textContent = camera.camera_id;
      const info = document.createElement("span");
      info.textContent = `${camera.state} · ${camera.fps.toFixed(1)} fps · ${camera.reconnects} reconnects`;
      card.append(name, info);
      if (camera.last_error && camera.state !== "online") card.title = camera.last_error;
      return card;
    }));
  } catch (error) { /* shown by the event loaders */ }
}

async function connect() {
  state.token = readToken();
  $("token-input").value = state.token;
  if (!state.token) {
    setLive(false, "enter a token");
    fetch("/auth/session", { method: "DELETE" }).catch(() => {});
    return;
  }
  try {
    await openSession();
    await loadEvents();
    showError("");
  } catch (error) {
    setLive(false, "offline");
    const refused = { 401: "The token was refused: check it.", 403: "This token may not read events.",
      429: "Too many refused tokens from this computer: wait a minute." };
    showError(refused[error.status] || `Cannot load events: ${error.message}`);
    return;
  }
  connectStream();
  loadCameras();
  clearInterval(state.cameraTimer);
  state.cameraTimer = setInterval(loadCameras, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    state.events.clear();
    connect();
  });
  for (const id of ["filter-severity", "filter-state", "filter-behaviour"]) {
    $(id).addEventListener("change", () => { renderFeed(); loadEvents().catch((e) => showError(e.message)); });
  }
  $("filter-camera").addEventListener("input", () => renderFeed());
  for (const button of document.querySelectorAll(".buttons button")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  setMuted(localStorage.getItem(MUTED_KEY) === "1");
  $("mute").addEventListener("click", () => setMuted(!state.isMuted));
  $("notify").addEventListener("click", () => {
    if ("Notification" in window) Notification.requestPermission().then((p) => { $("notify").hidden = p === "granted"; });
  });
  $("notify").hidden = !("Notification" in window) || Notification.permission === "granted";
  document.addEventListener("keydown", onKey);
  connect();
});
