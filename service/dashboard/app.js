// anjian control room: live event feed (SSE), filters, event detail with lifecycle buttons, camera grid.
// Plain JavaScript served by the service itself: no build step, no CDN, works offline, no inline script
// (the Content-Security-Policy allows only this file). API calls send the token as a bearer header;
// <img>, <video> and EventSource cannot, so the page opens a session (an HttpOnly cookie) and renews it.
//
// The page stays open for weeks on a wall screen, and operators trust what it shows, so: every alert still
// in hand is loaded however old (a page of recent settled ones besides), a list answer never overwrites a
// newer revision from the live feed, whenever the feed reconnects what changed while it was down is asked
// for (page by page, after a random wait), settled alerts beyond SETTLED_KEPT are forgotten, and times are
// the site's. Bursts (an escalation round, a bulk close, a replay) must not freeze it: live messages are
// taken in as they come but drawn together, and a drawing touches only the rows that changed.
"use strict";

const TOKEN_KEY = "anjian.token";
const MUTED_KEY = "anjian.muted";
const t = (key, vars) => anjianI18n.t(key, vars);
// A code's label where the dictionary has one, else the code made readable (a newer server's value).
const label = (key, code) => (anjianI18n.has(key) ? t(key) : String(code).replaceAll("_", " "));
const behaviourLabel = (behaviour) => label(`b_${behaviour}`, behaviour);
const stateLabel = (value) => label(value, value);
const ACTING_ROLES = ["operator", "admin"];
const ACTION_PATHS = {
  acknowledge: "acknowledge", dispatch: "dispatch", resolve: "resolve", false_alarm: "false-alarm", close: "close",
};
const OPEN_STATES = ["raised", "acknowledged", "dispatched", "resolved", "false_alarm"];
// Alerts still in someone's hands (the hazard may still be there): all of them are loaded and kept. The
// others are settled (resolved, false alarm, closed): a page of the newest is loaded, the rest fetched on demand.
const ACTIVE_STATES = ["raised", "acknowledged", "dispatched"];
const ACTIVE_PAGE = 500;  // active alerts read per request, every page followed
const RECENT_PAGE = 200;  // the newest events of the filters chosen, any state
const SETTLED_KEPT = 1000;  // settled alerts kept in memory, those changed last (a page open for weeks)
const CHANGED_PAGE = 500;  // events changed while the feed was down, read per request, every page followed
const LIVE_REDRAW_MS = 200;  // live messages are drawn together, at most this often
const RELOAD_JITTER_MS = 3000;  // after a reconnect, wait up to this long (at random): a plant's screens ask apart
const RELOAD_OVERLAP_MS = 300000;  // ask from this long before the newest change heard: commits land out of
// updated_at order, and a service clock may be set back a little
const CLOCK_SLACK_MS = 5000;  // an answer's own delay: a mark no further ahead of the service's clock is not taken down
const LIVE_MISSING_MS = 30000;  // a camera without a live frame is asked again after this long
const SESSION_RETRY_MAX_MS = 60000;

const state = {
  token: "", events: new Map(), selected: null, source: null, cameraTimer: null, sessionTimer: null, streamRetry: null,
  order: [], isMuted: false, audio: null, announced: 0, role: "", cameras: null,
  live: new Map(), liveTimer: null, linked: null, liveMissing: new Map(), hasLiveView: false,
  names: { site: {}, workshop: {}, camera: {}, zone: {} },
  timeZone: "", timeFormat: null,
  sessionBackoff: 1000, renewing: null, isSessionFailing: false,
  streamOpened: false, loadStarted: 0, loads: 0, detailSeq: 0, auditAnswers: 0,
  drawn: new Map(), rowsEpoch: 0, fresh: new Set(), redrawTimer: null, isDetailStale: false, draws: 0,
  heardUpTo: 0, missedSince: null, missedAt: null, lostAt: null, reloadTimer: null, serviceClock: null,
};
// What each drawn row shows (see drawRow): a row is written again only when this changes.
const rowKeys = new WeakMap();
const $ = (id) => document.getElementById(id);

// `kind` tags the message, so that what fixes its cause clears it and nothing else ("session").
function showError(message, kind = "") {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  box.dataset.kind = message ? kind : "";
}

// A link from a robot's card or an e-mail: /#event=<id> opens that alert.
function readEventLink() {
  const match = /(?:^#|&)event=([^&]+)/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : null;
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
  const serviceNow = Number(response.headers.get("X-Anjian-Now"));  // a list answer's: the service's clock
  if (serviceNow > 0) state.serviceClock = { ms: serviceNow * 1000, at: performance.now() };
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
  state.role = session.role;
  $("whoami").textContent = `${session.token_name} · ${session.role}`;
  state.sessionBackoff = 1000;
  state.isSessionFailing = false;
  if ($("error").dataset.kind === "session") showError("");
  scheduleRenewal(session.ttl_s * 500);
}

function scheduleRenewal(delayMs) {
  clearTimeout(state.sessionTimer);
  state.sessionTimer = setTimeout(() => renewSession().catch(() => { /* shown; tried again */ }), delayMs);
}

// Renew the session now (one request however many ask at once). A failure is shown and tried again with a
// growing delay until a renewal succeeds: a lapsed cookie would silently break snapshots and live frames.
// A refused token is not tried again (it was revoked: the live feed ends and says so).
function renewSession() {
  if (!state.renewing) {
    state.renewing = openSession().catch((error) => {
      state.isSessionFailing = true;
      if (error.status === 401 || error.status === 403) {
        clearTimeout(state.sessionTimer);
        showError(t("e_refused"));
        throw error;
      }
      state.sessionBackoff = Math.min(SESSION_RETRY_MAX_MS, state.sessionBackoff * 2);
      scheduleRenewal(state.sessionBackoff);
      showError(t("e_session", { error: error.message }), "session");
      throw error;
    }).finally(() => { state.renewing = null; });
  }
  return state.renewing;
}

// Media refused (the cookie lapsed: the computer slept, say): renew now, unless a renewal is already being
// tried again on its own schedule.
function renewForMedia() {
  if (!state.isSessionFailing) renewSession().catch(() => { /* shown; tried again */ });
}

// The names the site YAML gives (shown in the control room), else the id.
const nameOf = (kind, id) => (id && state.names[kind][id]) || id || "";

async function loadSite() {
  const site = await api("/site");
  const names = { site: { [site.id]: site.name }, workshop: {}, camera: {}, zone: {} };
  for (const workshop of site.workshops) {
    names.workshop[workshop.id] = workshop.name;
    for (const camera of workshop.cameras) {
      names.camera[camera.id] = camera.name;
      for (const zone of camera.zones) names.zone[zone.id] = zone.name;
    }
  }
  // A sensor's events carry its id where a camera's carry the camera's: its name is shown the same way.
  const sensors = await api("/sensors").catch(() => ({ items: [] }));
  for (const sensor of sensors.items) names.camera[sensor.id] = sensor.name;
  state.names = names;
  state.hasLiveView = Boolean(site.has_live_view);
  setTimeZone(site.timezone);
}

// Times as the site reads them (its zone, as on frames, snapshots and reports), whatever zone this computer
// is set to; one form in every language: 2023-11-15 06:13:20. The header names the zone once.
function setTimeZone(zone) {
  const options = {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    hourCycle: "h23",
  };
  try {
    state.timeFormat = new Intl.DateTimeFormat("en-US", { ...options, timeZone: zone || undefined });
    state.timeZone = zone || "";
  } catch (_) {  // a zone this browser does not know: UTC, and the header says so
    state.timeFormat = new Intl.DateTimeFormat("en-US", { ...options, timeZone: "UTC" });
    state.timeZone = "UTC";
  }
  state.rowsEpoch += 1;  // every row's names and times are written again
  renderTimeZone();
}

function renderTimeZone() {
  const box = $("site-zone");
  if (!state.timeZone) { box.textContent = ""; return; }
  let offset = "";
  try {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: state.timeZone, timeZoneName: "shortOffset" })
      .formatToParts(new Date());
    offset = (parts.find((part) => part.type === "timeZoneName") || {}).value || "";
  } catch (_) { /* an older browser: the zone's name alone */ }
  box.textContent = t("times_in", { zone: offset ? `${state.timeZone} (${offset})` : state.timeZone });
}

function fmtTime(iso) {
  if (!iso) return "—";
  if (!state.timeFormat) setTimeZone("");  // before GET /site answers: this computer's zone
  const part = {};
  for (const { type, value } of state.timeFormat.formatToParts(new Date(iso))) part[type] = value;
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}`;
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
  if (f.camera && !`${event.camera_id} ${nameOf("camera", event.camera_id)}`.includes(f.camera)) return false;
  return true;
}


// Draw the queue from memory. Each alert's row is kept and written again only when what it shows changed,
// and rows are moved only where the order changed: thousands of alerts redraw without building thousands of
// rows. Alerts the live feed brought since the last drawing flash ("fresh").
function renderFeed() {
  const f = filters();
  const visible = [...state.events.values()].filter((e) => matches(e, f));
  const rows = anjianQueue.rows(visible);
  state.order = rows.map((row) => row.event.id);
  const feed = $("feed");
  // A row moved or taken out loses the focus: a keyboard user's focus goes to the same row (or the selected one).
  const focused = feed.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  const place = new Map(state.order.map((id, i) => [id, i]));
  const drawn = new Map();
  let next = feed.firstElementChild;  // rows before it are in place
  rows.forEach((row, i) => {
    const li = drawRow(row);
    drawn.set(row.event.id, li);
    while (next !== li) {
      const at = next ? place.get(next.dataset.id) : undefined;
      // `next` is in the way: gone from the queue, or moved further down (taken out, put back when reached)
      if (next && (at === undefined || (li.parentNode === feed && at !== i + 1))) {
        const away = next;
        next = next.nextElementSibling;
        away.remove();
        continue;
      }
      feed.insertBefore(li, next);  // a new row, or one moved up
      return;
    }
    next = next.nextElementSibling;
  });
  while (next) {
    const away = next;
    next = next.nextElementSibling;
    away.remove();
  }
  state.drawn = drawn;
  state.fresh.clear();
  if (focused) focusRow(place.has(focused) ? focused : state.selected, true);
  $("feed-empty").hidden = rows.length > 0;
  feed.dataset.draws = String(++state.draws);  // drawings of the queue (tests count them)
  renderCounters();
}

// The row of one fold of the queue: the one drawn before for the same alert, written again only where what
// it shows changed (the alert's revision, its count, the selection, the language, names or zone).
function drawRow({ event, count, members }) {
  const isSelected = members.includes(state.selected);
  const isFresh = state.fresh.size > 0 && members.some((id) => state.fresh.has(id));
  const key = `${state.rowsEpoch}|${event.version}|${event.state}|${count}|${isSelected}|${isFresh}`;
  let row = state.drawn.get(event.id);
  if (row && rowKeys.get(row) === key) return row;
  if (!row) row = newRow(event.id);
  rowKeys.set(row, key);
  row.className = `event-row sev-${event.severity}${isSelected ? " selected" : ""}`
    + `${isFresh ? " fresh" : ""}${anjianQueue.needsPerson(event) ? " unacked" : ""}`;
  row.dataset.count = String(count);
  row.setAttribute("aria-selected", String(isSelected));
  row.children[0].className = `badge ${event.severity}`;
  row.children[0].textContent = t(event.severity) + (event.escalations ? ` ▲${event.escalations}` : "");
  row.children[1].textContent = behaviourLabel(event.behaviour);
  row.children[2].className = `state state-pill ${event.state}`;
  row.children[2].textContent = stateLabel(event.state);
  const going = anjianQueue.isOngoing(event) ? "ongoing" : "ended";
  row.children[3].textContent = `${count > 1 ? `×${count} · ` : ""}${t(going)}`;
  row.children[3].className = `repeat ${going}`;
  row.children[4].textContent = `${nameOf("workshop", event.workshop_id)} · ${nameOf("camera", event.camera_id)}`;
  row.children[5].textContent = fmtTime(event.started_at);
  return row;
}

function newRow(id) {
  const row = document.createElement("li");
  row.dataset.id = id;
  row.tabIndex = 0;
  row.setAttribute("role", "option");
  row.innerHTML = `
    <span class="badge"></span>
    <span class="what"></span>
    <span class="state state-pill"></span>
    <span class="repeat"></span>
    <span class="where"></span>
    <span class="when"></span>`;
  row.addEventListener("click", () => select(id));
  row.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();  // Space would scroll the list
    select(id);
  });
  return row;
}

// Focus the row that shows `id` (its fold's row when it is folded into another); a redrawing leaves the
// list scrolled where the operator put it.
function focusRow(id, preventScroll = false) {
  const row = state.drawn.get(id) || $("feed").querySelector(".event-row.selected");
  if (row) row.focus({ preventScroll });
}

// Unacknowledged alerts per colour in the header and their total in the tab title, whatever the filters.
function renderCounters() {
  const counts = anjianQueue.counters(state.events.values());
  for (const colour of ["red", "orange", "yellow", "blue"]) {
    $(`count-${colour}`).textContent = String(counts[colour]);
  }
  document.title = counts.total ? `(${counts.total}) ${t("title")}` : t("title");
}

// A new red or orange alert (or one escalated to red or orange): said to a screen reader, and a tone and a
// desktop notification unless the operator muted them.
function announce(event, isEscalation = false) {
  if (!anjianQueue.isUrgent(event)) return;
  const where = `${nameOf("workshop", event.workshop_id)} · ${nameOf("camera", event.camera_id)}`;
  $("announcer").textContent = t(isEscalation ? "announce_escalated" : "announce_new", {
    colour: t(event.severity), behaviour: behaviourLabel(event.behaviour), where,
  });
  if (state.isMuted) return;
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
    new Notification(`${t(event.severity)} · ${behaviourLabel(event.behaviour)}`, {
      body: `${nameOf("workshop", event.workshop_id)} · ${nameOf("camera", event.camera_id)}`, tag: event.id,
    });
  }
}

function setMuted(isMuted) {
  state.isMuted = isMuted;
  localStorage.setItem(MUTED_KEY, isMuted ? "1" : "");
  $("mute").dataset.i18n = isMuted ? "sound_off" : "sound_on";
  $("mute").textContent = t($("mute").dataset.i18n);
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
    if ($("feed").contains(document.activeElement)) focusRow(state.selected);  // focus follows the selection
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
  const seq = ++state.detailSeq;  // answers for an earlier drawing (another alert, an older revision) are dropped
  const event = state.events.get(state.selected);
  const pane = $("detail");
  if (!event) { pane.hidden = true; return; }
  pane.hidden = false;
  if (pane.dataset.id !== event.id) $("audit").replaceChildren();  // never another alert's trail under this one
  pane.dataset.id = event.id;
  $("detail-severity").className = `badge ${event.severity}`;
  $("detail-severity").textContent = t(event.severity);
  $("detail-title").textContent = `${behaviourLabel(event.behaviour)} · ${nameOf("camera", event.camera_id)}`;
  $("detail-state").className = `state-pill ${event.state}`;
  $("detail-state").dataset.state = event.state;
  $("detail-state").textContent = stateLabel(event.state);
  $("detail-message").textContent = event.message || "";
  const dl = $("detail-facts");
  dl.replaceChildren();
  fact(dl, t("f_site"), `${nameOf("site", event.site_id)} / ${nameOf("workshop", event.workshop_id)}`);
  if (event.zone_id) fact(dl, t("f_zone"), nameOf("zone", event.zone_id));
  fact(dl, t("f_started"), fmtTime(event.started_at));
  fact(dl, t("f_last_seen"), fmtTime(event.last_seen_at));
  fact(dl, t("f_ended"), event.ended_at ? fmtTime(event.ended_at) : t("ongoing"));
  if (!event.sensor) fact(dl, t("f_confidence"), `${Math.round(event.confidence * 100)} %`);
  fact(dl, t("f_colour"), event.escalations
    ? t("escalated", { colour: t(event.severity), detected: t(event.detected_severity), n: event.escalations })
    : t(event.severity));
  if (event.assignee) fact(dl, t("f_assignee"), event.assignee);
  if (event.sensor) {
    const unit = event.sensor.unit ? ` ${event.sensor.unit}` : "";
    if (event.sensor.value !== null) fact(dl, t("f_reading"), `${event.sensor.value}${unit}`);
    if (event.sensor.peak !== null) fact(dl, t("f_peak"), `${event.sensor.peak}${unit}`);
    if (event.sensor.threshold !== null) fact(dl, t("f_threshold"), `${event.sensor.threshold}${unit}`);
  } else fact(dl, t("f_model"), event.model_version || "—");
  if (event.track_id !== null && event.track_id !== undefined) fact(dl, t("f_track"), `#${event.track_id}`);
  renderTrend(event).catch((error) => showError(error.message));

  const img = $("detail-snapshot");
  const video = $("detail-clip");
  if (event.snapshot_url) {
    const src = `${event.snapshot_url}?v=${event.version}`;
    if (img.dataset.src !== src) { img.src = src; img.dataset.src = src; img.dataset.retried = ""; }
    img.hidden = false;
  } else { img.hidden = true; img.removeAttribute("src"); img.dataset.src = ""; }
  if (event.clip_url) {
    const src = event.clip_url;
    if (video.dataset.src !== src) { video.src = src; video.dataset.src = src; }
    video.hidden = false;
  } else { video.hidden = true; video.removeAttribute("src"); video.dataset.src = ""; }
  $("detail-no-media").hidden = Boolean(event.snapshot_url || event.clip_url);

  const mayAct = ACTING_ROLES.includes(state.role);
  for (const button of document.querySelectorAll(".buttons button")) {
    button.disabled = !mayAct || !event.allowed_actions.includes(button.dataset.action);
    button.title = mayAct ? "" : t("read_only_title", { role: state.role });
  }
  $("actions").classList.toggle("read-only", !mayAct);
  $("false-reason").disabled = !mayAct || !event.allowed_actions.includes("false_alarm");
  try {
    const trail = await api(`/events/${encodeURIComponent(event.id)}/audit`);
    $("audit").dataset.answers = String(++state.auditAnswers);  // every answer, drawn or dropped
    if (seq !== state.detailSeq) return;
    $("audit").replaceChildren(...trail.map((entry) => {
      const tr = document.createElement("tr");
      for (const text of [fmtTime(entry.at), entry.actor, label(`a_${entry.action}`, entry.action) + (entry.assignee ? ` → ${entry.assignee}` : ""),
        stateLabel(entry.to_state), entry.note]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
  } catch (error) {
    if (seq === state.detailSeq) showError(t("e_audit", { error: error.message }));
  }
}

// The trend of a sensor alert's readings, from ten minutes before it to two after it ended (or now), as an
// inline SVG: the reading, the alert's span and the sensor's limits in their colours.
const TREND_W = 600, TREND_H = 220, PAD = { left: 48, right: 10, top: 10, bottom: 24 };

function svgEl(name, attrs, text) {
  const el = document.createElementNS($("detail-trend-chart").namespaceURI, name);  // the SVG namespace
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

async function renderTrend(event) {
  const figure = $("detail-trend");
  if (!event.sensor) { figure.hidden = true; figure.dataset.sensor = ""; return; }
  const started = Date.parse(event.started_at), ended = event.ended_at ? Date.parse(event.ended_at) : Date.now();
  const start = started - 10 * 60 * 1000, end = Math.min(Date.now(), ended + 2 * 60 * 1000);
  const query = `start=${encodeURIComponent(new Date(start).toISOString())}&end=${encodeURIComponent(new Date(end).toISOString())}&max_points=300`;
  const trend = await api(`/sensors/${encodeURIComponent(event.sensor.sensor_id)}/readings?${query}`);
  if (state.selected !== event.id) return;  // another alert was selected meanwhile
  const chart = $("detail-trend-chart");
  const points = trend.points.map((p) => ({ x: Date.parse(p.at), y: p.value }));
  const limits = Object.entries(trend.sensor.limits);
  const ys = [...points.map((p) => p.y), ...limits.map(([, v]) => v)];
  const low = ys.length ? Math.min(...ys) : 0, high = ys.length ? Math.max(...ys) : 1;
  const margin = (high - low) * 0.08 || 1;
  const y0 = low - margin, y1 = high + margin;
  const sx = (x) => PAD.left + ((x - start) / Math.max(1, end - start)) * (TREND_W - PAD.left - PAD.right);
  const sy = (y) => TREND_H - PAD.bottom - ((y - y0) / (y1 - y0)) * (TREND_H - PAD.top - PAD.bottom);
  const parts = [svgEl("rect", { class: "span", x: sx(started), y: PAD.top, width: Math.max(1, sx(ended) - sx(started)), height: TREND_H - PAD.top - PAD.bottom })];
  for (const [colour, value] of limits) {
    parts.push(svgEl("line", { class: `limit ${colour}`, x1: PAD.left, x2: TREND_W - PAD.right, y1: sy(value), y2: sy(value) }));
  }
  if (points.length) {
    parts.push(svgEl("polyline", { class: "line", points: points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ") }));
  } else {
    parts.push(svgEl("text", { x: TREND_W / 2, y: TREND_H / 2, "text-anchor": "middle" }, t("trend_none")));
  }
  parts.push(svgEl("text", { x: 4, y: sy(high) + 4 }, String(Math.round(high * 100) / 100)));
  parts.push(svgEl("text", { x: 4, y: sy(low) + 4 }, String(Math.round(low * 100) / 100)));
  parts.push(svgEl("text", { x: PAD.left, y: TREND_H - 6 }, fmtTime(new Date(start).toISOString())));
  parts.push(svgEl("text", { x: TREND_W - PAD.right, y: TREND_H - 6, "text-anchor": "end" }, fmtTime(new Date(end).toISOString())));
  chart.replaceChildren(...parts);
  chart.dataset.points = String(points.length);
  chart.setAttribute("aria-label", t("trend_title", { quantity: trend.sensor.quantity, unit: trend.sensor.unit }));
  $("detail-trend-caption").textContent = t("trend_title", { quantity: trend.sensor.quantity, unit: trend.sensor.unit });
  figure.dataset.sensor = event.sensor.sensor_id;
  figure.hidden = false;
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
    if (!assignee) { showError(t("e_dispatch")); $("assignee").focus(); return; }
    body = { assignee, note };
  } else if (action === "resolve" && !note) {
    showError(t("e_resolve")); $("note").focus(); return;
  } else if (action === "false_alarm") {
    const reason = $("false-reason").value;
    if (!reason) { showError(t("e_reason")); $("false-reason").focus(); return; }
    if (reason === "other" && !note) { showError(t("e_other")); $("note").focus(); return; }
    body = { reason: note ? `${reason}: ${note}` : reason };
  }
  try {
    const updated = await api(`/events/${encodeURIComponent(id)}/${ACTION_PATHS[action]}`, {
      method: "POST", body: JSON.stringify(body),
    });
    showError("");
    $("note").value = "";
    $("false-reason").value = "";
    upsert(updated);
  } catch (error) {
    showError(error.status === 403 ? t("e_viewer") : error.message);
  }
}

// The answer to the operator's action: drawn at once.
function upsert(event) {
  const known = state.events.get(event.id);
  if (known && known.version > event.version) return;
  state.events.set(event.id, event);
  evict();
  renderFeed();
  if (event.id === state.selected) renderDetail();
}

// A live message. Taken in at once, so that a list answer never overwrites it and each new or escalated
// alert is announced as it comes (a tone each), and drawn with the rest of its burst at the next redraw:
// an escalation round or a bulk close is thousands of messages, and drawing each froze the page for minutes.
function receive(event) {
  hear(event);
  const known = state.events.get(event.id);
  if (known && known.version > event.version) return;
  state.events.set(event.id, event);
  if (!known) {
    state.fresh.add(event.id);
    announce(event);
  } else if (event.escalations > known.escalations) announce(event, true);
  if (event.id === state.selected) state.isDetailStale = true;
  if (state.redrawTimer === null) state.redrawTimer = setTimeout(redraw, LIVE_REDRAW_MS);
}

// Draw what the live feed brought since the last redraw, once for all of it.
function redraw() {
  clearTimeout(state.redrawTimer);
  state.redrawTimer = null;
  evict();
  renderFeed();
  if (state.isDetailStale) {
    state.isDetailStale = false;
    renderDetail();
  }
}

// A listed event, unless the live feed brought the same or a newer revision meanwhile. True when it is new here.
function merge(event) {
  const known = state.events.get(event.id);
  if (known && known.version >= event.version) return false;
  state.events.set(event.id, event);
  return !known;
}

// Forget the settled alerts changed longest ago beyond SETTLED_KEPT (never one in hand, nor the selected one):
// every redraw draws the queue from memory, and the page stays open for weeks.
function evict() {
  const settled = [...state.events.values()]
    .filter((event) => !ACTIVE_STATES.includes(event.state) && event.id !== state.selected);
  if (settled.length <= SETTLED_KEPT + SETTLED_KEPT / 10) return;  // trim in steps, not at every redraw
  const updated = (event) => anjianQueue.millis(event, "updated_at");
  settled.sort((a, b) => updated(b) - updated(a));
  for (const event of settled.slice(SETTLED_KEPT)) state.events.delete(event.id);
}

// Every alert in hand, however old, page after page; then any shown as in hand that the list no longer has
// (settled meanwhile): those changed since, asked for together (none is gone unless the service lost it).
// Returns the new ones.
async function loadActive() {
  const listed = new Set();
  const fresh = [];
  let cursor = null;
  do {
    const params = new URLSearchParams({ limit: String(ACTIVE_PAGE) });
    ACTIVE_STATES.forEach((s) => params.append("state", s));
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/events?${params}`);
    for (const event of page.items) {
      listed.add(event.id);
      hear(event);
      if (merge(event)) fresh.push(event);
    }
    cursor = page.next_cursor;
  } while (cursor);
  const gone = [...state.events.values()].filter((e) => ACTIVE_STATES.includes(e.state) && !listed.has(e.id));
  if (gone.length) {
    const oldest = gone.reduce((at, e) => Math.min(at, anjianQueue.millis(e, "updated_at")), Infinity);
    fresh.push(...await loadChanged(oldest));
    for (const event of gone) if (state.events.get(event.id) === event) state.events.delete(event.id);
  }
  return fresh;
}

// Every event changed after `sinceMs` (less RELOAD_OVERLAP_MS), page after page: what the live feed did not
// bring while it was down (raised, acted on, escalated, settled meanwhile). Returns the new ones.
// `syncedAt` (performance.now() when the page was last in step with the service, if known): a mark later
// than the service's clock was then is taken down to it. A service clock that ran ahead and was set back
// stamps what changes next before the changes heard, and asking from the mark missed every one of them.
async function loadChanged(sinceMs, syncedAt = null) {
  const fresh = [];
  let fromMs = sinceMs;
  let isChecked = syncedAt === null;
  let cursor = null;
  for (;;) {
    const after = new Date(Math.max(0, fromMs - RELOAD_OVERLAP_MS)).toISOString();
    const params = new URLSearchParams({ limit: String(CHANGED_PAGE), updated_after: after });
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/events?${params}`);
    for (const event of page.items) {
      hear(event);
      if (merge(event)) fresh.push(event);
    }
    cursor = page.next_cursor;
    if (!isChecked) {  // the first answer tells the service's clock
      isChecked = true;
      const thenMs = serviceTimeAt(syncedAt);
      if (thenMs !== null && thenMs < fromMs - CLOCK_SLACK_MS) {
        fromMs = thenMs;  // ask again from there, from the first page
        cursor = null;
        continue;
      }
    }
    if (!cursor) return fresh;
  }
}

// The service's clock at `at` (performance.now()), from the last list answer's X-Anjian-Now (null: none yet).
// Never later than it was: the answer's own delay is counted as time passed.
function serviceTimeAt(at) {
  const clock = state.serviceClock;
  return clock === null ? null : clock.ms - (clock.at - at);
}

// A change the page heard of from the live feed, or from a list of everything in hand or of everything changed
// (not from a list of some events, nor from an action's answer): after a reconnect, changes before the newest
// one heard (less RELOAD_OVERLAP_MS) need not be asked for.
function hear(event) {
  state.heardUpTo = Math.max(state.heardUpTo, anjianQueue.millis(event, "updated_at"));
}

// The newest events of the filters chosen, any state. Returns the new ones.
async function loadRecent() {
  const params = new URLSearchParams({ limit: String(RECENT_PAGE) });
  const f = filters();
  if (f.severity) params.append("severity", f.severity);
  if (f.behaviour) params.append("behaviour", f.behaviour);
  if (f.state === "open") OPEN_STATES.forEach((s) => params.append("state", s));
  else if (f.state) params.append("state", f.state);
  const page = await api(`/events?${params}`);
  return page.items.filter(merge);
}

// Load the queue: what changed after `changedSince` (ms; after a reconnect), else everything in hand and the
// recent page (`all`), or the recent page alone (a filter changed). After a reconnect, alerts raised while the
// feed was down are announced (the most urgent few).
async function loadEvents({ all = true, changedSince = 0, syncedAt = null, announceNew = false } = {}) {
  let fresh;
  if (changedSince) fresh = await loadChanged(changedSince, syncedAt);
  else fresh = all ? [...await loadActive(), ...await loadRecent()] : await loadRecent();
  evict();
  renderFeed();
  renderDetail();
  $("feed").dataset.loads = String(++state.loads);  // a list answer was taken in (tests wait on it)
  if (announceNew) fresh.filter(anjianQueue.isUrgent).sort(anjianQueue.compare).slice(0, 3).forEach((e) => announce(e));
}

// A link to /#event=<id>: open that alert. An unknown or deleted one says so and the page goes on; the link
// leaves the address bar either way, so that reloading the page does not repeat it.
async function openLinked() {
  const linked = state.linked;
  if (!linked) return;
  state.linked = null;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    if (!state.events.has(linked)) merge(await api(`/events/${encodeURIComponent(linked)}`));
    select(linked);
  } catch (error) {
    showError(error.status === 404 ? t("e_link_missing") : t("e_link", { error: error.message }));
  }
}

function setLive(isOn, key) {
  $("live-dot").className = `dot ${isOn ? "on" : "off"}`;
  $("live-status").dataset.i18n = key;
  $("live-status").textContent = t(key);
}

function connectStream() {
  if (state.source) state.source.close();
  clearTimeout(state.streamRetry);
  const source = new EventSource("/stream");  // authenticated by the session cookie
  state.source = source;
  source.onopen = () => {
    setLive(true, "live");
    // Open again (the browser reconnected, or a new session), or the first load took longer than the feed
    // looks back (5 s): ask for what changed meanwhile.
    const isLate = !state.streamOpened && performance.now() - state.loadStarted > 3000;
    if (state.streamOpened || isLate) reloadMissed(isLate ? 0 : RELOAD_JITTER_MS);
    state.streamOpened = true;
  };
  source.onerror = () => {
    if (state.lostAt === null) state.lostAt = performance.now();  // in step with the service until now
    setLive(false, "reconnecting");
    if (source.readyState !== EventSource.CLOSED) return;  // the browser retries by itself
    restartStream(3000);
  };
  source.addEventListener("event", (message) => receive(JSON.parse(message.data)));
}

// Ask for what changed since the newest change heard before this connection opened (what it brings is not
// counted: it may not replay the whole gap), or since the service's clock when the feed was lost where the
// mark is later (the clock was set back), after a random wait up to `jitterMs`, so that a plant's wall
// screens do not all ask at once when the service comes back. A reload that fails is asked for again from
// the same point at the next reconnect.
function reloadMissed(jitterMs) {
  if (state.missedSince === null) {
    state.missedSince = state.heardUpTo;
    state.missedAt = state.lostAt ?? state.loadStarted;  // never lost: the first load was slow
  }
  state.lostAt = null;
  const since = state.missedSince;
  const syncedAt = state.missedAt;
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => {
    loadEvents({ changedSince: since, syncedAt, announceNew: true })
      .then(() => { if (state.missedSince === since) state.missedSince = null; })
      .catch((error) => showError(t("e_load", { error: error.message })));
  }, Math.random() * jitterMs);
}

// Refused (session expired or token revoked): open a new session, then reconnect; tried again with a growing
// delay while the service does not answer, not once the token is refused.
function restartStream(delayMs) {
  clearTimeout(state.streamRetry);
  state.streamRetry = setTimeout(() => renewSession().then(connectStream).catch((error) => {
    setLive(false, "offline");
    showError(error.status === 401 ? t("e_refused") : t("e_live", { error: error.message }));
    if (error.status !== 401 && error.status !== 403) restartStream(Math.min(SESSION_RETRY_MAX_MS, delayMs * 2));
  }), delayMs);
}

async function loadCameras() {
  try {
    state.cameras = await api("/cameras");
    renderCameras();
  } catch (error) { /* shown by the event loaders */ }
}

function renderCameras() {
  const cameras = state.cameras;
  if (cameras === null) return;  // not loaded yet: the page's placeholder stays
  const grid = $("cameras");
  if (!cameras.length) {
    const empty = document.createElement("p");
    empty.className = "muted";
    empty.textContent = t("no_cameras");
    grid.replaceChildren(empty);
    return;
  }
  grid.replaceChildren(...cameras.map((camera) => {
    const card = document.createElement("div");
    card.className = `camera ${camera.state}`;
    card.dataset.camera = camera.camera_id;
    const name = document.createElement("b");
    name.textContent = nameOf("camera", camera.camera_id);
    const info = document.createElement("span");
    info.textContent = t("camera_line", { state: t(camera.state), fps: camera.fps.toFixed(1), reconnects: camera.reconnects });
    if (camera.node) info.textContent += ` · ${t("camera_node", { node: camera.node })}`;  // a plant's pipeline node
    const thumb = document.createElement("img");  // the live frame, filled in by refreshWall
    thumb.className = "thumb";
    thumb.alt = nameOf("camera", camera.camera_id);
    thumb.dataset.camera = camera.camera_id;
    const known = state.live.get(camera.camera_id);
    if (known) thumb.src = known.url;
    thumb.hidden = !state.hasLiveView;
    card.append(thumb, name, info);
    if (camera.state === "stale") card.title = t("stale_since", { since: fmtTime(camera.since) });
    else if (camera.last_error && camera.state !== "online") card.title = camera.last_error;
    return card;
  }));
}

// Live frames: each camera's latest analysed frame, fetched when it changed (ETag) and shown on the
// wall and beside the selected alert's evidence. Only where the service reads cameras (GET /site says);
// a camera without a frame (one another node reads) is asked again after LIVE_MISSING_MS.
async function refreshLive(cameraId) {
  const known = state.live.get(cameraId);
  const response = await fetch(`/cameras/${encodeURIComponent(cameraId)}/live.jpg`, {
    cache: "no-cache", headers: known ? { "If-None-Match": known.etag } : {},
  });
  if (response.status === 404) {
    state.liveMissing.set(cameraId, Date.now() + LIVE_MISSING_MS);
    return null;
  }
  if (response.status === 401) renewForMedia();
  if (response.status === 304 || !response.ok) return known || null;
  const etag = response.headers.get("ETag") || "";
  if (known && known.etag === etag) return known;
  const url = URL.createObjectURL(await response.blob());
  if (known) URL.revokeObjectURL(known.url);
  const fresh = { etag, url };
  state.live.set(cameraId, fresh);
  return fresh;
}

// The camera to show live beside an alert: its own, or for a sensor alert the first camera watching the sensor.
const viewedCamera = (event) => (event && event.sensor && event.sensor.camera_ids.length ? event.sensor.camera_ids[0] : event && event.camera_id);

async function refreshWall() {
  if (document.hidden || !state.cameras || !state.hasLiveView) return;
  const selected = state.events.get(state.selected);
  const wanted = new Set(state.cameras.map((c) => c.camera_id));
  if (selected) wanted.add(viewedCamera(selected));
  for (const cameraId of wanted) {
    if ((state.liveMissing.get(cameraId) || 0) > Date.now()) continue;
    const frame = await refreshLive(cameraId).catch(() => null);
    if (!frame) continue;  // no frame yet (or this process reads no cameras: /cameras is empty then)
    for (const img of document.querySelectorAll(`img.thumb[data-camera="${CSS.escape(cameraId)}"]`)) {
      if (img.src !== frame.url) img.src = frame.url;
    }
    if (selected && viewedCamera(selected) === cameraId && $("detail-live").src !== frame.url) {
      $("detail-live").src = frame.url;
    }
  }
  $("detail-live").hidden = !(selected && state.live.has(viewedCamera(selected)));
}

async function connect() {
  state.token = readToken();
  $("token-input").value = state.token;
  if (!state.token) {
    setLive(false, "enter_token");
    fetch("/auth/session", { method: "DELETE" }).catch(() => {});
    return;
  }
  try {
    await openSession();
    await loadSite();
    state.streamOpened = false;
    state.lostAt = null;
    state.loadStarted = performance.now();
    await loadEvents();
    showError("");
  } catch (error) {
    setLive(false, "offline");
    const refused = { 401: "e_refused", 403: "e_forbidden", 429: "e_too_many" };
    showError(refused[error.status] ? t(refused[error.status]) : t("e_load", { error: error.message }));
    return;
  }
  await openLinked();
  connectStream();
  loadCameras().then(refreshWall);
  clearInterval(state.cameraTimer);
  state.cameraTimer = setInterval(loadCameras, 5000);
  clearInterval(state.liveTimer);
  if (state.hasLiveView) state.liveTimer = setInterval(() => refreshWall().catch(() => {}), 1500);
}

// The behaviour filter offers every behaviour the service names, in its table's order, after "all".
function fillBehaviourFilter() {
  const select = $("filter-behaviour");
  for (const code of anjianI18n.behaviours) {
    const option = document.createElement("option");
    option.value = code;
    option.dataset.i18n = `b_${code}`;  // named in the page's language by anjianI18n.apply
    select.append(option);
  }
}

// A new language: the static text, then everything drawn from data.
function relabel(lang) {
  anjianI18n.setLang(lang);
  $("language").value = anjianI18n.lang;
  state.rowsEpoch += 1;
  renderFeed();
  renderDetail();
  renderCameras();
  renderTimeZone();
}

document.addEventListener("DOMContentLoaded", () => {
  state.linked = readEventLink();
  fillBehaviourFilter();
  anjianI18n.apply();
  $("language").value = anjianI18n.lang;
  $("language").addEventListener("change", () => relabel($("language").value));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    state.events.clear();
    state.heardUpTo = 0;
    state.missedSince = null;
    state.lostAt = null;
    connect();
  });
  for (const id of ["filter-severity", "filter-state", "filter-behaviour"]) {
    $(id).addEventListener("change", () => { renderFeed(); loadEvents({ all: false }).catch((e) => showError(e.message)); });
  }
  // A snapshot refused (the cookie lapsed while the page slept, say): renew the session and ask once more.
  $("detail-snapshot").addEventListener("error", () => {
    const img = $("detail-snapshot");
    const src = img.dataset.src;
    if (!src || img.dataset.retried === src) return;
    img.dataset.retried = src;
    if (state.isSessionFailing) return;
    renewSession().then(() => { if (img.dataset.src === src) img.src = `${src}&retry=1`; }).catch(() => {});
  });
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
