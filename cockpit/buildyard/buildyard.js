/* Buildyard's Cockpit page: everything comes from org.buildyard.Master1 on
 * the system bus (buildyard-dbus(7)). Workers and builds are proxies that
 * follow PropertiesChanged; the lists are read again when the master says
 * its counters changed or a build finished. Only a running build's log is
 * read repeatedly, since the bus has no signal for new output. */
"use strict";

const MASTER = "org.buildyard.Master1";
const MASTER_PATH = "/org/buildyard/Master1";
const WORKER1 = "org.buildyard.Worker1";
const BUILD1 = "org.buildyard.Build1";
const RECENT_BUILDS = 30;
const LOG_CHUNK = 65536;
const LOG_FOLLOW_MS = 500;

let client = null;
let master = null;
const workers = new Map(); // name -> Worker1 proxy
let builds = [];           // rows of ListBuilds: [id, builder, worker, state, result, path]
const buildProxies = new Map(); // id -> Build1 proxy
const log = { id: 0, path: "", offset: 0, timer: 0, reading: false };

/* --- small helpers ------------------------------------------------------ */

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (k === "class") e.className = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
    }
    for (const c of children) {
        if (c !== null && c !== undefined) e.append(c);
    }
    return e;
}

// usec since the epoch, as the bus gives times.
function ago(usec) {
    if (!usec) return "never";
    const s = Math.max(0, Math.round(Date.now() / 1000 - usec / 1e6));
    if (s < 5) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(usec / 1000).toLocaleString();
}

function duration(fromUsec, toUsec) {
    if (!fromUsec) return "";
    const s = Math.max(0, Math.round(((toUsec || Date.now() * 1000) - fromUsec) / 1e6));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

/* --- messages: what went wrong, in words an admin can act on ------------- */

function alertBox(kind, text, key) {
    if (key) {
        const old = document.querySelector(`#alerts [data-key="${key}"]`);
        if (old) old.remove();
    }
    const box = el("div", { class: "alert " + kind, role: "alert" },
                   el("span", { class: "alert-text" }, text),
                   el("button", { class: "link", title: "Dismiss", onclick: () => box.remove() }, "×"));
    if (key) box.dataset.key = key;
    $("alerts").append(box);
    return box;
}

function clearAlert(key) {
    const old = document.querySelector(`#alerts [data-key="${key}"]`);
    if (old) old.remove();
}

function explain(what, err) {
    const name = (err && err.name) || "";
    const message = (err && err.message) || String(err);
    // The bus policy refuses with the bus's error; the master, checking the
    // caller itself, with its own.
    if (name === "org.freedesktop.DBus.Error.AccessDenied" || name === "org.buildyard.Error.AccessDenied" ||
        (err && err.problem === "access-denied"))
        return `Not allowed: ${what}. The system bus lets only root and members of the group “buildyard” ` +
               "do this; turn on administrative access in Cockpit, or ask an admin to add you to the group.";
    if (name === "org.freedesktop.DBus.Error.ServiceUnknown" || name === "org.freedesktop.DBus.Error.NameHasNoOwner")
        return `Cannot ${what}: buildyard-masterd is not running.`;
    if (name.startsWith("org.buildyard.Error."))
        return `Cannot ${what}: ${message} (${name.slice("org.buildyard.Error.".length)})`;
    return `Cannot ${what}: ${message}`;
}

function call(what, path, iface, method, signature, args) {
    return client.call(path, iface, method, args, { type: signature })
        .catch(err => {
            alertBox("error", explain(what, err));
            throw err;
        });
}

/* --- dialogs -------------------------------------------------------------- */

// Asks for confirmation (and a reason, with `reason`); resolves to the
// reason text, or rejects when cancelled.
function confirmAction(title, text, button, reason) {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = button;
    $("confirm-reason-label").hidden = !reason;
    $("confirm-reason").value = "";
    dialog.returnValue = "";
    return new Promise((resolve, reject) => {
        dialog.addEventListener("close", () => {
            if (dialog.returnValue === "ok") resolve($("confirm-reason").value);
            else reject(new Error("cancelled"));
        }, { once: true });
        dialog.showModal();
        (reason ? $("confirm-reason") : $("confirm-ok")).focus();
    });
}

function openSubmit() {
    client.call(MASTER_PATH, MASTER, "Describe", [])
        .then(([json]) => {
            const select = $("submit-builder");
            select.replaceChildren(...Object.keys(JSON.parse(json).builders || {}).sort()
                .map(name => el("option", { value: name }, name)));
            $("submit-properties").value = "";
            $("submit-dialog").returnValue = "";
            $("submit-dialog").showModal();
        })
        .catch(err => alertBox("error", explain("list the builders", err)));
}

function submitClosed() {
    if ($("submit-dialog").returnValue !== "ok") return;
    const builder = $("submit-builder").value;
    const props = {};
    for (const line of $("submit-properties").value.split("\n")) {
        const t = line.trim();
        if (!t) continue;
        const eq = t.indexOf("=");
        if (eq <= 0) {
            alertBox("error", `Not submitted: “${t}” is not name=value.`);
            return;
        }
        props[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
    }
    call(`submit a build of ${builder}`, MASTER_PATH, MASTER, "SubmitBuild", "sa{ss}", [builder, props])
        .then(([path]) => {
            const proxy = client.proxy(BUILD1, path);
            proxy.wait(() => { if (proxy.valid) refreshBuilds().then(() => showLog(proxy.Id, path)); });
        })
        .catch(() => {});
}

/* --- workers ------------------------------------------------------------ */

function listWorkers() {
    return client.call(MASTER_PATH, MASTER, "ListWorkers", [])
        .then(([rows]) => {
            const seen = new Set();
            for (const [name, , path] of rows) {
                seen.add(name);
                if (workers.has(name)) continue;
                const proxy = client.proxy(WORKER1, path);
                proxy.addEventListener("changed", renderWorkers);
                workers.set(name, proxy);
            }
            for (const name of [...workers.keys()]) {
                if (!seen.has(name)) workers.delete(name);
            }
            return Promise.all([...workers.values()].map(p => p.wait()));
        })
        .then(renderWorkers)
        .catch(err => alertBox("error", explain("list the workers", err), "workers"));
}

function workerActions(name, w) {
    const path = w.path;
    const buttons = [];
    if (w.Paused) {
        buttons.push(el("button", {
            onclick: () => call(`unpause worker ${name}`, path, WORKER1, "Unpause", "", []).catch(() => {})
        }, "Unpause"));
    } else {
        buttons.push(el("button", {
            onclick: () => confirmAction(`Pause worker ${name}?`,
                                         "It finishes what it runs but gets no new builds until it is unpaused.",
                                         "Pause", true)
                .then(reason => call(`pause worker ${name}`, path, WORKER1, "Pause", "s", [reason]))
                .catch(() => {})
        }, "Pause…"));
    }
    if (w.Connected || w.Type === "latent") {
        buttons.push(el("button", {
            class: "danger",
            onclick: () => confirmAction(`Shut down worker ${name}?`,
                                         "It takes no new builds and stops once its running builds have ended.",
                                         "Shut down", false)
                .then(() => call(`shut down worker ${name}`, path, WORKER1, "Shutdown", "b", [true]))
                .catch(() => {})
        }, "Shut down…"));
    }
    return el("div", { class: "buttons" }, ...buttons);
}

function latentText(w) {
    if (w.Type !== "latent") return "";
    const parts = [];
    if (w.Instance) parts.push(w.Instance);
    if (w.QuarantinedUntil && w.QuarantinedUntil / 1000 > Date.now())
        parts.push(`quarantined until ${new Date(w.QuarantinedUntil / 1000).toLocaleTimeString()}` +
                   (w.LastStartError ? `: ${w.LastStartError}` : ""));
    else if (w.StartFailures) parts.push(`${w.StartFailures} failed starts`);
    return parts.join("; ") || "none";
}

function renderWorkers() {
    const rows = [];
    for (const [name, w] of [...workers.entries()].sort()) {
        if (!w.valid) continue;
        const info = w.Info || {};
        const seen = w.Connected ? "attached now" : ago(w.LastDisconnected || w.LastConnected);
        rows.push(el("tr", { "data-worker": name, class: "state-" + w.State },
                     el("td", { class: "name" }, name),
                     el("td", null, w.Type),
                     el("td", null, el("span", { class: "badge " + w.State }, w.State)),
                     el("td", { class: "builds" },
                        w.MaxBuilds ? `${w.RunningBuilds} of ${w.MaxBuilds}` : `${w.RunningBuilds} (no limit)`),
                     el("td", null, info.host || ""),
                     el("td", { class: "seen" }, seen),
                     el("td", { class: "reason" }, w.Paused ? (w.PauseReason || "(no reason given)") : ""),
                     el("td", { class: "latent" }, latentText(w)),
                     el("td", { class: "right" }, workerActions(name, w))));
    }
    $("workers").tBodies[0].replaceChildren(...rows);
    // The latent column only when there is a latent worker.
    $("workers").classList.toggle("no-latent", ![...workers.values()].some(w => w.valid && w.Type === "latent"));
    $("workers-empty").hidden = rows.length > 0;
}

/* --- builds --------------------------------------------------------------- */

let refreshing = null;
let refreshAgain = false;

// ListBuilds once at a time; a request meanwhile runs once more after it.
function refreshBuilds() {
    if (refreshing) {
        refreshAgain = true;
        return refreshing;
    }
    refreshing = client.call(MASTER_PATH, MASTER, "ListBuilds", [RECENT_BUILDS], { type: "t" })
        .then(([rows]) => {
            clearAlert("builds");
            builds = rows;
            const ids = new Set(rows.map(r => r[0]));
            for (const [id, , , , , path] of rows) {
                if (buildProxies.has(id)) continue;
                const proxy = client.proxy(BUILD1, path);
                proxy.addEventListener("changed", renderBuilds);
                buildProxies.set(id, proxy);
            }
            for (const id of [...buildProxies.keys()]) {
                if (!ids.has(id)) buildProxies.delete(id);
            }
            return Promise.all([...buildProxies.values()].map(p => p.wait()));
        })
        .then(renderBuilds)
        .catch(err => alertBox("error", explain("list the builds", err), "builds"))
        .finally(() => {
            refreshing = null;
            if (refreshAgain) {
                refreshAgain = false;
                refreshBuilds();
            }
        });
    return refreshing;
}

function buildRow(row) {
    const [id, builder, worker, state, result, path] = row;
    const b = buildProxies.get(id);
    const live = b && b.valid ? b : null;
    const st = live ? live.State : state;
    const res = live ? live.Result : result;
    // One status: pending or running while in the queue, then the result.
    const status = st === "finished" ? res : st;
    const cells = [
        el("td", { class: "name" }, el("a", { href: "#", onclick: ev => { ev.preventDefault(); showLog(id, path) } },
                                         "#" + id)),
        el("td", null, builder),
        el("td", { class: "status" }, el("span", { class: "badge " + (st === "finished" ? "result-" : "") + status },
                                         status)),
        el("td", null, (live ? live.Worker : worker) || ""),
        el("td", { class: "duration" }, live ? duration(live.StartedAt, live.FinishedAt) : ""),
    ];
    const buttons = [el("button", { onclick: () => showLog(id, path) }, "Log")];
    if (st !== "finished") {
        buttons.push(el("button", {
            class: "danger",
            onclick: () => confirmAction(`Cancel build ${id} of ${builder}?`,
                                         st === "running" ? "Its worker stops the step that runs." :
                                             "It leaves the queue and never runs.",
                                         "Cancel build", false)
                .then(() => call(`cancel build ${id}`, path, BUILD1, "Cancel", "", []))
                .catch(() => {})
        }, "Cancel…"));
    }
    cells.push(el("td", { class: "right" }, el("div", { class: "buttons" }, ...buttons)));
    return el("tr", { "data-build": String(id), class: id === log.id ? "selected" : "" }, ...cells);
}

function renderBuilds() {
    // The queue first (pending, then running), then the finished ones, newest first.
    const order = { pending: 0, running: 1, finished: 2 };
    const state = r => { const p = buildProxies.get(r[0]); return p && p.valid ? p.State : r[3]; };
    const sorted = [...builds].sort((a, b) => (order[state(a)] - order[state(b)]) || (b[0] - a[0]));
    $("builds").tBodies[0].replaceChildren(...sorted.map(buildRow));
    $("builds-empty").hidden = builds.length > 0;
    if (log.id) renderLogStatus();
}

/* --- a build's log, followed while it runs ------------------------------- */

function showLog(id, path) {
    if (log.timer) clearTimeout(log.timer);
    Object.assign(log, { id, path, offset: 0, timer: 0, reading: false });
    $("log").textContent = "";
    $("log").hidden = false;
    $("log-refused").hidden = true;
    $("log-build").textContent = "#" + id;
    $("log-section").hidden = false;
    if (!buildProxies.has(id)) {
        const proxy = client.proxy(BUILD1, path);
        proxy.addEventListener("changed", renderBuilds);
        buildProxies.set(id, proxy);
    }
    buildProxies.get(id).wait(() => { renderBuilds(); readLog(); });
}

function renderLogStatus() {
    const b = buildProxies.get(log.id);
    if (!b || !b.valid) return;
    const text = b.State === "finished" ? b.Result : b.State;
    $("log-status").textContent = text;
    $("log-status").className = "badge " + (b.State === "finished" ? "result-" + b.Result : b.State);
}

function readLog() {
    const id = log.id;
    if (!id || log.reading) return;
    log.reading = true;
    const b = buildProxies.get(id);
    const finishedBefore = b && b.valid && b.State === "finished";
    client.call(log.path, BUILD1, "ReadLog", [log.offset, LOG_CHUNK], { type: "tt" })
        .then(([data]) => {
            if (log.id !== id) return;
            log.reading = false;
            clearAlert("log");
            // "ay" arrives base64-encoded.
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            log.offset += bytes.length;
            const pre = $("log");
            const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.append(new TextDecoder().decode(bytes));
            if (atEnd) pre.scrollTop = pre.scrollHeight;
            renderLogStatus();
            if (bytes.length === LOG_CHUNK) readLog();            // more is there already
            else if (!finishedBefore) log.timer = setTimeout(readLog, LOG_FOLLOW_MS); // still running
        })
        .catch(err => {
            log.reading = false;
            if (log.id !== id) return;
            const text = explain(`read the log of build ${id}`, err);
            alertBox("error", text, "log");
            $("log").hidden = true;
            $("log-refused").textContent = text;
            $("log-refused").hidden = false;
        });
}

/* --- the master ----------------------------------------------------------- */

function renderMaster() {
    if (!master.valid) return;
    $("master-name").textContent = master.Name;
    $("master-version").textContent = "buildyard-masterd " + master.Version;
    $("count-workers").textContent = `${master.ConnectedWorkers} of ${workers.size}`;
    $("count-running").textContent = master.RunningBuilds;
    $("count-pending").textContent = master.PendingBuilds;
}

function start() {
    client = cockpit.dbus(MASTER, { bus: "system", superuser: "try" });
    master = client.proxy(MASTER, MASTER_PATH);
    master.addEventListener("changed", () => { renderMaster(); refreshBuilds(); });
    client.subscribe({ interface: MASTER, path: MASTER_PATH, member: "BuildFinished" }, () => refreshBuilds());
    client.addEventListener("owner", (ev, owner) => {
        if (owner === null) {
            alertBox("error", "buildyard-masterd is not running: nothing here is up to date until it starts.",
                     "owner");
        } else if (owner) {
            clearAlert("owner");
            workers.clear();
            buildProxies.clear();
            listWorkers().then(renderMaster);
            refreshBuilds();
        }
    });
    master.wait(() => {
        if (!master.valid) {
            alertBox("error", "Cannot reach buildyard-masterd on the system bus: is it running?", "owner");
            return;
        }
        listWorkers().then(renderMaster);
        refreshBuilds();
    });

    $("submit-open").addEventListener("click", openSubmit);
    $("submit-dialog").addEventListener("close", submitClosed);
    $("reload").addEventListener("click", () => {
        confirmAction("Reload the configuration?",
                      "The master reads master.ini and master.d/ again. A configuration with errors is refused " +
                      "and the running one stays.", "Reload", false)
            .then(() => call("reload the configuration", MASTER_PATH, MASTER, "Reload", "", []))
            .then(() => { alertBox("info", "Configuration reloaded.", "reload"); return listWorkers(); })
            .catch(() => {});
    });
    // Relative times ("2 min ago", running durations) age without any bus traffic.
    setInterval(() => { renderWorkers(); renderBuilds(); }, 10000);
}

document.addEventListener("DOMContentLoaded", start);
