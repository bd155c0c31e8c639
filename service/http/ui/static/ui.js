// Tocsin web UI: progressive enhancement only (every page works without it).
// - the incident list refreshes itself every 10 s from /ui/incidents.json;
// - the silence form previews, as you type, which current alerts the matchers would silence.
// Alert text is untrusted: it only ever reaches the page through textContent, never innerHTML.
"use strict";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function incidentRow(r) {
  const tr = document.createElement("tr");
  const st = el("td"); st.appendChild(el("span", "badge state-" + r.state, r.state));
  if (r.held) st.appendChild(el("span", "badge held", "held")); tr.appendChild(st);
  const sv = el("td"); sv.appendChild(el("span", "badge sev-" + r.severity, r.severity)); tr.appendChild(sv);
  const t = el("td");
  const a = el("a", null, r.title);
  a.href = "/ui/incidents/" + encodeURIComponent(r.id);
  t.appendChild(a); t.appendChild(el("div", "sub", r.id)); tr.appendChild(t);
  const s = el("td", null, r.services.join(", ")); s.appendChild(el("div", "sub", r.entities.join(", "))); tr.appendChild(s);
  tr.appendChild(el("td", "num", r.firing + "/" + r.alerts));
  const age = el("td", null, r.age); age.title = r.opened_at; tr.appendChild(age);
  tr.appendChild(el("td", null, r.acked_by));
  return tr;
}

function startListRefresh(table) {
  const url = table.dataset.poll;
  const body = table.tBodies[0];
  const refreshed = document.getElementById("refreshed");
  const unassigned = document.getElementById("unassigned");
  async function tick() {
    if (document.hidden) return;
    try {
      const resp = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const data = await resp.json();
      const rows = data.rows.map(incidentRow);
      if (!rows.length) {
        const tr = el("tr", "empty"); const td = el("td", null, "No incidents match."); td.colSpan = 7;
        tr.appendChild(td); rows.push(tr);
      }
      body.replaceChildren(...rows);
      if (unassigned) unassigned.textContent = String(data.unassigned);
      if (refreshed) refreshed.textContent = "updated " + data.at;
    } catch (e) {
      if (refreshed) refreshed.textContent = "refresh failed (" + e.message + "); retrying";
    }
  }
  setInterval(tick, 10000);
  document.addEventListener("visibilitychange", tick);
  const now = document.getElementById("refresh");
  if (now) now.addEventListener("click", (ev) => { ev.preventDefault(); tick(); });
}

function startSilencePreview(area) {
  const list = document.getElementById("preview");
  const count = document.getElementById("preview-count");
  const err = document.getElementById("preview-error");
  let timer = null;
  async function update() {
    const resp = await fetch(area.dataset.preview + "?matchers=" + encodeURIComponent(area.value),
                             {credentials: "same-origin"});
    if (!resp.ok) return;
    const data = await resp.json();
    err.hidden = !data.error;
    err.textContent = data.error || "";
    list.replaceChildren(...data.alerts.map(t => el("li", null, t)));
    count.textContent = String(data.count || 0);
  }
  area.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 300); });
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("incidents");
  if (table && table.dataset.poll) startListRefresh(table);
  const area = document.getElementById("s-matchers");
  if (area && area.dataset.preview) startSilencePreview(area);
});
