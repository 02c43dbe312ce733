// The hub's view over every plant a token sees: a table of plants, a plant's open incidents,
// cameras and sensors, an incident with its evidence and audit trail, and the supervisor's remark form.
// Everything is built with textContent (no HTML from data); the token stays in sessionStorage.
// Times are shown in hub.timezone when the hub has one, else in the browser's zone; the header names it.
"use strict";

const COLOURS = ["red", "orange", "yellow", "blue"];
const REFRESH_MS = 5000;
const LIST_LIMIT = 200; // open incidents listed per plant, the most urgent first
const state = {
  token: sessionStorage.getItem("anjian-hub-token") || "", me: null, plant: null, plantName: "", event: null,
  timeZone: undefined, refreshing: null, cameraNames: { plant: null, names: {} },
};

// The names the plant's control room shows for its codes (English; the hub has no language switch), from
// behaviours.js, which the hub makes from service/behaviour_names.py and loads before this file;
// a code without one (a newer plant's) is shown with spaces for underscores.
const BEHAVIOURS = new Map((window.anjianBehaviours || []).map((b) => [b.code, b.en]));
const ACTIONS = {
  acknowledge: "Acknowledge", dispatch: "Dispatch", resolve: "Resolve", false_alarm: "False alarm",
  close: "Close", raise: "Raised", escalate: "Escalated", remark: "Remark from the supervising office",
  press_for_action: "Pressed for action by the supervising office",
};
const readable = (code) => String(code).replaceAll("_", " ");
const behaviourName = (code) => BEHAVIOURS.get(code) || readable(code);
const actionName = (code) => ACTIONS[code] || readable(code);
const stateName = readable; // raised, acknowledged, dispatched, resolved, false alarm

// A camera as the plant's control room calls it (a plant older than names reports none: its id).
function cameraName(plantId, cameraId) {
  const name = state.cameraNames.plant === plantId ? state.cameraNames.names[cameraId] : null;
  return name || cameraId;
}

// The name with the id, where the two differ.
function cameraLabel(plantId, cameraId) {
  const name = cameraName(plantId, cameraId);
  return name !== cameraId ? `${name} (${cameraId})` : cameraId;
}

// Each view draws only the answers of its latest load: on a slow plant link an answer for an earlier
// selection (another plant, another incident) can arrive last, and would be drawn under the current one.
const loads = { overview: 0, incidents: 0, detail: 0, clip: 0 };

function startLoad(view) {
  // Supersede the view's loads in flight; the returned check says whether this one is still the latest.
  const ticket = ++loads[view];
  return () => loads[view] === ticket;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

const CLOCK_NOTICE_S = 30;

function clockNote(offset) {
  // A plant clock off by more than the notice: its times on this page are its own, overdue is judged in the hub's.
  if (offset === null || offset === undefined || Math.abs(offset) < CLOCK_NOTICE_S) return "";
  return ` · clock ${duration(Math.abs(offset))} ${offset > 0 ? "behind" : "ahead"}`;
}

function remarkDelivery(line) {
  if (!line.sent_at) return " (on its way to the plant)";
  if (line.delivery === "no_such_event") return " (not delivered: the plant has no such incident)";
  if (!line.delivered_at) return " (sent; the plant has not confirmed it yet)";
  return ` (at the plant ${when(line.delivered_at)})`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { timeZone: state.timeZone }) : "never";
}

function useTimeZone(zone) {
  // hub.timezone, or the browser's own (null, or a zone this browser does not know); named in the header.
  let note = "";
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone || undefined });
    state.timeZone = zone || undefined;
  } catch (_) {
    state.timeZone = undefined;
    note = ` (this browser does not know ${zone})`;
  }
  const shown = new Intl.DateTimeFormat(undefined, { timeZone: state.timeZone }).resolvedOptions().timeZone;
  document.getElementById("zone").textContent = `times in ${shown}${note}`;
}

function showError(text) {
  // In a role="alert" region, so that a screen reader announces it; cleared by the next success.
  const box = document.getElementById("error");
  if (box.textContent !== text) box.textContent = text;
}

function attempt(work, what) {
  // Run a load started by the user or the timer: its failure is shown (not an unhandled rejection).
  return work.then(() => showError(""), (error) => {
    if (error.message !== "unauthorised") showError(`${what}: ${error.message}`); // else the sign-in form says
  });
}

function openButton(text) {
  // The keyboard's way into a clickable row: a native button (Tab, Enter, Space), whose click reaches the row.
  const button = el("button", text, "open");
  button.type = "button";
  return button;
}

function markSelected(body, key, value) {
  // The selected row: highlighted, and aria-current on its button for screen readers.
  for (const row of body.rows) {
    const isSelected = value !== null && row.dataset[key] === value;
    row.classList.toggle("selected", isSelected);
    const button = row.querySelector("button.open");
    if (!button) continue;
    if (isSelected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function redraw(body, key, draw) {
  // Rebuild a table's rows, keeping the keyboard focus on the same row's button across the refresh.
  const focused = body.contains(document.activeElement) ? document.activeElement.closest("tr") : null;
  const kept = focused ? focused.dataset[key] : undefined;
  body.replaceChildren();
  draw();
  if (kept === undefined) return;
  const again = [...body.rows].find((row) => row.dataset[key] === kept);
  const button = again ? again.querySelector("button.open") : null;
  if (button) button.focus();
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    signOut("The token was refused.");
    throw new Error("unauthorised");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function signOut(message) {
  state.token = "";
  sessionStorage.removeItem("anjian-hub-token");
  document.getElementById("main").hidden = true;
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-error").textContent = message || "";
}

async function signIn(token) {
  state.token = token;
  const me = await (await api("/api/me")).json();
  state.me = me;
  sessionStorage.setItem("anjian-hub-token", token);
  document.getElementById("signin").hidden = true;
  document.getElementById("main").hidden = false;
  document.getElementById("who").textContent = `${me.name} (${me.role}, ${me.scope})`;
  await refresh();
}

function colourCell(count, colour) {
  const cell = el("td");
  cell.append(el("span", count, `badge ${count ? colour : "zero"}`));
  cell.dataset.colour = colour;
  return cell;
}

async function loadOverview() {
  const current = startLoad("overview");
  const overview = await (await api("/api/overview")).json();
  if (!current()) return;
  useTimeZone(overview.timezone);
  document.getElementById("hub-name").textContent = overview.hub_name;
  document.getElementById("updated").textContent =
    `updated ${new Date(overview.at).toLocaleTimeString(undefined, { timeZone: state.timeZone })}`;
  const body = document.querySelector("#plants tbody");
  redraw(body, "plant", () => drawPlants(body, overview.plants));
}

function drawPlants(body, plants) {
  for (const plant of plants) {
    const row = el("tr");
    row.dataset.plant = plant.plant_id;
    const name = el("td");
    name.append(openButton(plant.name));
    row.append(name, el("td", plant.group || "–"));
    for (const colour of COLOURS) row.append(colourCell(plant.open_by_colour[colour] || 0, colour));
    row.append(el("td", plant.overdue, plant.overdue ? "overdue" : ""));
    row.append(el("td", duration(plant.acknowledge_median_s)), el("td", duration(plant.resolve_median_s)));
    const cameras = plant.cameras_by_state;
    const total = Object.values(cameras).reduce((a, b) => a + b, 0);
    const clock = clockNote(plant.clock_offset_s);
    const heard = el("td", when(plant.last_message_at) + (plant.is_silent ? " (silent)" : "") + clock,
      plant.is_silent ? "silent" : clock ? "unsound" : "");
    heard.dataset.column = "heard";
    row.append(el("td", total ? `${cameras.online || 0} / ${total}` : "–"), sensorCell(plant.sensors_by_state), heard);
    row.addEventListener("click", () => attempt(selectPlant(plant.plant_id, plant.name), `Cannot open ${plant.name}`));
    body.append(row);
  }
  markSelected(body, "plant", state.plant);
}

function drawIncidents(body, events) {
  for (const event of events) {
    const row = el("tr");
    row.dataset.event = event.event_id;
    const colour = el("td");
    colour.append(el("span", event.severity, `badge ${event.severity}`));
    const behaviour = el("td");
    behaviour.append(openButton(behaviourName(event.behaviour)));
    row.append(el("td", when(event.started_at)), el("td", cameraLabel(event.plant_id, event.camera_id)), behaviour, colour,
      el("td", stateName(event.state)), el("td", event.message));
    row.addEventListener("click", () => attempt(selectEvent(event.plant_id, event.event_id), "Cannot open the incident"));
    body.append(row);
  }
  const selected = state.event && state.event.plantId === state.plant ? state.event.eventId : null;
  markSelected(body, "event", selected);
}

function sensorCell(sensors) {
  // Sound sensors (state ok) of all reported; the others' states in the tooltip.
  const total = Object.values(sensors).reduce((a, b) => a + b, 0);
  const sound = sensors.ok || 0;
  const cell = el("td", total ? `${sound} / ${total}` : "–", sound < total ? "unsound" : "");
  cell.dataset.column = "sensors";
  cell.title = Object.entries(sensors).map(([state, count]) => `${count} ${state}`).join(", ");
  return cell;
}

function sensorText(sensor) {
  const reading = sensor.last_value === null ? "no reading yet"
    : `${sensor.last_value} ${sensor.unit} at ${when(sensor.last_reading_at)}`;
  const open = sensor.open_kinds.length ? `; open: ${sensor.open_kinds.join(", ")}` : "";
  return `${sensor.sensor_id} (${sensor.quantity}, ${sensor.workshop_id}, ${sensor.source}): ${sensor.state}, ${reading}${open}`;
}

async function selectPlant(plantId, name) {
  state.plant = plantId;
  state.plantName = name;
  markSelected(document.querySelector("#plants tbody"), "plant", plantId);
  document.getElementById("incidents").hidden = false;
  await Promise.all([loadOverview(), loadIncidents()]);
}

async function loadIncidents() {
  if (!state.plant) return;
  const current = startLoad("incidents");
  const { plant: plantId, plantName } = state;
  const plant = encodeURIComponent(plantId);
  const answers = await Promise.all([
    api(`/api/events?plant_id=${plant}&open=true&limit=${LIST_LIMIT}`),
    api(`/api/cameras?plant_id=${plant}`),
    api(`/api/sensors?plant_id=${plant}`),
  ]);
  const [events, cameras, sensors] = await Promise.all(answers.map((answer) => answer.json()));
  if (!current()) return;
  state.cameraNames = { plant: plantId, names: Object.fromEntries(cameras.map((c) => [c.camera_id, c.name])) };
  const total = Number(answers[0].headers.get("X-Total-Count")) || events.length;
  document.getElementById("incidents").dataset.plant = plantId;
  document.getElementById("incidents-title").textContent = `Open incidents: ${plantName}`;
  const cut = document.getElementById("events-cut");
  cut.textContent = `Showing ${events.length} of ${total} open incidents, the most urgent first.`;
  cut.hidden = total <= events.length;
  const body = document.querySelector("#events tbody");
  redraw(body, "event", () => drawIncidents(body, events));
  document.getElementById("no-events").hidden = events.length > 0;
  const list = document.getElementById("cameras");
  list.replaceChildren();
  for (const camera of cameras) {
    const item = el("li", `${cameraLabel(plantId, camera.camera_id)}: ${camera.state}`);
    item.dataset.camera = camera.camera_id;
    list.append(item);
  }
  const sensorList = document.getElementById("sensors");
  sensorList.replaceChildren();
  for (const sensor of sensors) {
    const item = el("li", sensorText(sensor), sensor.state === "ok" ? "" : "unsound");
    item.dataset.sensor = sensor.sensor_id;
    item.dataset.state = sensor.state;
    if (sensor.is_alarm) item.classList.add("alarm");
    sensorList.append(item);
  }
  document.getElementById("no-sensors").hidden = sensors.length > 0;
}

async function selectEvent(plantId, eventId) {
  state.event = { plantId, eventId };
  startLoad("clip"); // a clip still coming for the previous incident is not played under this one
  markSelected(document.querySelector("#events tbody"), "event", eventId);
  const video = document.getElementById("clip");
  if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
  video.removeAttribute("src");
  video.hidden = true;
  document.getElementById("clip-status").textContent = "";
  await loadDetail();
}

async function loadClip() {
  // Clips stay on the plant: the hub fetches one over the bus when asked (504 while the plant is offline).
  if (!state.clipUrl) return;
  const current = startLoad("clip");
  const status = document.getElementById("clip-status");
  const video = document.getElementById("clip");
  status.textContent = "Fetching the clip from the plant…";
  try {
    const blob = await (await api(state.clipUrl)).blob();
    if (!current()) return;
    if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.src = URL.createObjectURL(blob);
    video.hidden = false;
    status.textContent = `${(blob.size / 1e6).toFixed(1)} MB`;
  } catch (error) {
    if (current()) status.textContent = `No clip: ${error.message}`;
  }
}

async function loadDetail() {
  if (!state.event) return;
  const current = startLoad("detail");
  const { plantId, eventId } = state.event;
  const path = `/api/plants/${encodeURIComponent(plantId)}/events/${encodeURIComponent(eventId)}`;
  const detail = await (await api(path)).json();
  if (!current()) return;
  const snapshot = detail.snapshot_url ? await (await api(detail.snapshot_url)).blob() : null;
  if (!current()) return;
  // Drawn at once, with nothing awaited from here: the title, evidence and trail are of one incident.
  state.clipUrl = detail.clip_url;
  const section = document.getElementById("detail");
  section.hidden = false;
  section.dataset.plant = plantId;
  section.dataset.event = eventId;
  document.getElementById("detail-title").textContent =
    `${behaviourName(detail.summary.behaviour)} on ${cameraName(plantId, detail.summary.camera_id)} (${stateName(detail.summary.state)})`;
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const rows = [
    ["Plant", plantId], ["Camera", cameraLabel(plantId, detail.summary.camera_id)], ["Colour", detail.summary.severity], ["State", stateName(detail.summary.state)],
    ["Started", when(detail.summary.started_at)], ["Acknowledged", when(detail.summary.acknowledged_at)],
    ["Resolved", when(detail.summary.resolved_at)], ["Message", detail.summary.message],
    ["Assignee", detail.event.assignee || "–"],
  ];
  for (const [name, value] of rows) facts.append(el("dt", name), el("dd", value));
  const image = document.getElementById("snapshot");
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  if (snapshot) {
    image.src = URL.createObjectURL(snapshot);
    image.hidden = false;
  } else {
    image.removeAttribute("src");
    image.hidden = true;
  }
  const audit = document.getElementById("audit");
  audit.replaceChildren();
  for (const line of detail.audit) {
    const text = `${when(line.at)} · ${line.actor} · ${actionName(line.action)}`
      + (line.assignee ? ` → ${line.assignee}` : "") + (line.note ? ` · ${line.note}` : "")
      + (line.is_from_hub ? remarkDelivery(line) : "");
    const item = el("li", text, line.is_from_hub ? "from-hub" : "");
    item.dataset.action = line.action;
    audit.append(item);
  }
  document.getElementById("remark").hidden = !(state.me && state.me.role === "supervisor");
}

async function sendRemark(event) {
  event.preventDefault();
  if (!state.event) return;
  const press = event.submitter && event.submitter.name === "press";
  const note = document.getElementById("remark-note");
  const status = document.getElementById("remark-status");
  const { plantId, eventId } = state.event;
  try {
    await api(`/api/plants/${encodeURIComponent(plantId)}/events/${encodeURIComponent(eventId)}/remarks`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ note: note.value, press_for_action: press }),
    });
    note.value = "";
    status.textContent = press ? "Pressed for action." : "Remark sent.";
    await loadDetail();
  } catch (error) {
    status.textContent = `Not sent: ${error.message}`;
  }
}

function refresh() {
  // One refresh at a time: on a slow plant link one can outlast the interval, and overlapping ones would
  // pile up requests. A refresh asked for while one runs waits for that one.
  if (!state.refreshing) {
    state.refreshing = attempt((async () => {
      await loadOverview();
      await loadIncidents();
      await loadDetail();
    })(), "Not updated").finally(() => { state.refreshing = null; });
  }
  return state.refreshing;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(document.getElementById("token").value).catch((error) => {
      if (error.message !== "unauthorised") signOut(`Cannot sign in: ${error.message}`);
    });
  });
  document.getElementById("remark").addEventListener("submit", sendRemark);
  document.getElementById("load-clip").addEventListener("click", loadClip);
  if (state.token) signIn(state.token).catch(() => signOut(""));
  else signOut("");
  setInterval(() => { if (state.token) refresh(); }, REFRESH_MS);
});
