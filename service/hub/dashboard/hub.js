// The hub's view over every plant a token sees: a table of plants, a plant's open incidents,
// cameras and sensors, an incident with its evidence and audit trail, and the supervisor's remark form.
// Everything is built with textContent (no HTML from data); the token stays in sessionStorage.
"use strict";

const COLOURS = ["red", "orange", "yellow", "blue"];
const REFRESH_MS = 5000;
const state = { token: sessionStorage.getItem("anjian-hub-token") || "", me: null, plant: null, event: null };

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

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
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
  const overview = await (await api("/api/overview")).json();
  document.getElementById("hub-name").textContent = overview.hub_name;
  document.getElementById("updated").textContent = `updated ${new Date(overview.at).toLocaleTimeString()}`;
  const body = document.querySelector("#plants tbody");
  body.replaceChildren();
  for (const plant of overview.plants) {
    const row = el("tr");
    row.dataset.plant = plant.plant_id;
    if (plant.plant_id === state.plant) row.classList.add("selected");
    row.append(el("td", plant.name), el("td", plant.group || "–"));
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
    row.addEventListener("click", () => selectPlant(plant.plant_id, plant.name));
    body.append(row);
  }
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
  document.getElementById("incidents").hidden = false;
  document.getElementById("incidents-title").textContent = `Open incidents: ${name}`;
  await Promise.all([loadOverview(), loadIncidents()]);
}

async function loadIncidents() {
  if (!state.plant) return;
  const plant = encodeURIComponent(state.plant);
  const [events, cameras, sensors] = await Promise.all([
    (await api(`/api/events?plant_id=${plant}&open=true`)).json(),
    (await api(`/api/cameras?plant_id=${plant}`)).json(),
    (await api(`/api/sensors?plant_id=${plant}`)).json(),
  ]);
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  for (const event of events) {
    const row = el("tr");
    row.dataset.event = event.event_id;
    const colour = el("td");
    colour.append(el("span", event.severity, `badge ${event.severity}`));
    row.append(el("td", when(event.started_at)), el("td", event.camera_id), el("td", event.behaviour), colour,
      el("td", event.state), el("td", event.message));
    row.addEventListener("click", () => selectEvent(event.plant_id, event.event_id));
    body.append(row);
  }
  document.getElementById("no-events").hidden = events.length > 0;
  const list = document.getElementById("cameras");
  list.replaceChildren();
  for (const camera of cameras) {
    const item = el("li", `${camera.camera_id}: ${camera.state}`);
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
  const status = document.getElementById("clip-status");
  const video = document.getElementById("clip");
  status.textContent = "Fetching the clip from the plant…";
  try {
    const blob = await (await api(state.clipUrl)).blob();
    if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.src = URL.createObjectURL(blob);
    video.hidden = false;
    status.textContent = `${(blob.size / 1e6).toFixed(1)} MB`;
  } catch (error) {
    status.textContent = `No clip: ${error.message}`;
  }
}

async function loadDetail() {
  if (!state.event) return;
  const { plantId, eventId } = state.event;
  const path = `/api/plants/${encodeURIComponent(plantId)}/events/${encodeURIComponent(eventId)}`;
  const detail = await (await api(path)).json();
  state.clipUrl = detail.clip_url;
  const section = document.getElementById("detail");
  section.hidden = false;
  document.getElementById("detail-title").textContent =
    `${detail.summary.behaviour} on ${detail.summary.camera_id} (${detail.summary.state})`;
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const rows = [
    ["Plant", plantId], ["Colour", detail.summary.severity], ["State", detail.summary.state],
    ["Started", when(detail.summary.started_at)], ["Acknowledged", when(detail.summary.acknowledged_at)],
    ["Resolved", when(detail.summary.resolved_at)], ["Message", detail.summary.message],
    ["Assignee", detail.event.assignee || "–"],
  ];
  for (const [name, value] of rows) facts.append(el("dt", name), el("dd", value));
  const image = document.getElementById("snapshot");
  if (detail.snapshot_url) {
    const blob = await (await api(detail.snapshot_url)).blob();
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(blob);
    image.hidden = false;
  } else {
    image.hidden = true;
  }
  const audit = document.getElementById("audit");
  audit.replaceChildren();
  for (const line of detail.audit) {
    const text = `${when(line.at)}: ${line.actor} ${line.action}` + (line.note ? `: ${line.note}` : "")
      + (line.is_from_hub && !line.sent_at ? " (on its way to the plant)" : "");
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

async function refresh() {
  try {
    await loadOverview();
    await loadIncidents();
    await loadDetail();
  } catch (error) {
    document.getElementById("updated").textContent = `not updated: ${error.message}`;
  }
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
