// anjian control room: the queue, ordered by what needs a person. Pure functions over the API's events
// (EventOut), so the order is the same wherever the page gets its events from (the list, the live feed).
//
// Order: unacknowledged ("raised") first; within that, by colour (red, orange, yellow, blue), then by
// escalations, then ongoing before ended, then the one waiting longest first. Everything already in a
// person's hands follows, open states before closed ones, most urgent colour first, newest first.
// Repeats of one camera and behaviour in the same state fold into one row that carries their count.
"use strict";

window.anjianQueue = (() => {
  const COLOUR_RANK = { red: 0, orange: 1, yellow: 2, blue: 3 };
  const HANDLED_RANK = { acknowledged: 0, dispatched: 1, resolved: 2, false_alarm: 3, closed: 4 };

  const needsPerson = (event) => event.state === "raised";
  const isOngoing = (event) => !event.ended_at;

  // An event's time (`started_at`, `updated_at`) in epoch milliseconds (0 when null), parsed once per event
  // object (each revision is a new one): sorting thousands of alerts at every redraw parsed two dates per
  // comparison. The ISO strings cannot be compared as they are: the API leaves out a zero fraction, so
  // "…:20Z" sorts after "…:20.500000Z".
  const parsed = new WeakMap();
  function millis(event, field) {
    let times = parsed.get(event);
    if (!times) parsed.set(event, times = {});
    if (!(field in times)) times[field] = event[field] ? Date.parse(event[field]) : 0;
    return times[field];
  }
  const started = (event) => millis(event, "started_at");

  function compare(a, b) {
    const unacked = Number(needsPerson(b)) - Number(needsPerson(a));
    if (unacked) return unacked;
    if (needsPerson(a)) {
      return (COLOUR_RANK[a.severity] - COLOUR_RANK[b.severity])
        || (b.escalations - a.escalations)
        || (Number(isOngoing(b)) - Number(isOngoing(a)))
        || (started(a) - started(b))
        || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    }
    return (HANDLED_RANK[a.state] - HANDLED_RANK[b.state])
      || (COLOUR_RANK[a.severity] - COLOUR_RANK[b.severity])
      || (started(b) - started(a))
      || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
  }

  // Rows of the queue: [{event, count, members}], `event` the most urgent of its fold.
  function rows(events) {
    const ordered = [...events].sort(compare);
    const byKey = new Map();
    const result = [];
    for (const event of ordered) {
      const key = `${event.state}|${event.camera_id}|${event.behaviour}`;
      const row = byKey.get(key);
      if (row) { row.count += 1; row.members.push(event.id); continue; }
      const fresh = { event, count: 1, members: [event.id] };
      byKey.set(key, fresh);
      result.push(fresh);
    }
    return result;
  }

  // Unacknowledged events per colour, and their total (the tab title shows it).
  function counters(events) {
    const counts = { red: 0, orange: 0, yellow: 0, blue: 0, total: 0 };
    for (const event of events) {
      if (!needsPerson(event)) continue;
      counts[event.severity] += 1;
      counts.total += 1;
    }
    return counts;
  }

  // A newly raised red or orange alert wants the operator's attention (sound, desktop notification).
  const isUrgent = (event) => needsPerson(event) && (event.severity === "red" || event.severity === "orange");

  return { compare, rows, counters, isUrgent, needsPerson, isOngoing, millis };
})();
