// isobridge operations console (gateway/console.py says what it serves and why).
// Every value from the server is written with textContent or as an SVG attribute made of
// numbers: never as markup (no innerHTML, no insertAdjacentHTML, no document.write).
"use strict";

(function () {
  const TOKEN_KEY = "isobridge.console.token";
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  let poller = null;

  const $ = (id) => document.getElementById(id);

  // el("td", {class: "number"}, "text", otherNode): children are text or nodes, never markup.
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
    }
    return node;
  }

  function say(target, text, isError) {
    target.textContent = text;
    target.classList.toggle("error", Boolean(isError));
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // The OBIE error body's first message, else the status line.
  async function failure(response) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && Array.isArray(body.Errors) && body.Errors.length > 0) {
        message = body.Errors.map((e) => e.Message).join("; ");
      }
    } catch (ignored) {
      // not JSON: the status line says enough
    }
    return new ApiError(response.status, message);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${token()}` };
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) {
      throw await failure(response);
    }
    return (await response.json()).Data;
  }

  function signedOutMessage(error) {
    if (error.status === 401 || error.status === 403) {
      return `the token was refused (${error.status}): ${error.message}`;
    }
    return error.message;
  }

  // --- live figures ------------------------------------------------------------------------

  function sparkline(target, values) {
    const width = 120;
    const height = 30;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const base = document.createElementNS(SVG, "line");
    for (const [name, value] of [["x1", 0], ["y1", height - 0.5], ["x2", width], ["y2", height - 0.5]]) {
      base.setAttribute(name, String(value));
    }
    svg.append(base);
    const known = values.map((v, i) => [i, Number(v)]).filter(([, v]) => Number.isFinite(v));
    if (known.length > 0) {
      const top = Math.max(...known.map(([, v]) => v), 1e-9);
      const step = values.length > 1 ? width / (values.length - 1) : width;
      const points = known.map(
        ([i, v]) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`,
      );
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points.join(" "));
      svg.append(line);
    }
    target.replaceChildren(svg);
  }

  function number(value, digits) {
    return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
  }

  function showSummary(data) {
    $("live-at").textContent = `at ${data.At} (last ${data.WindowSeconds} s)`;
    const journal = data.Journal;
    if (journal) {
      $("events-rate").textContent = number(journal.EventsPerSecond, 1);
      $("answered-rate").textContent = number(journal.AnsweredPerSecond, 1);
      $("answered-count").textContent = `${journal.Answered} answered in the window`;
      const latency = journal.LatencyMs;
      $("latency").textContent = latency ? `${number(latency.P50, 1)} / ${number(latency.P95, 1)}` : "-";
      sparkline($("events-spark"), journal.Series.EventsPerSecond);
      sparkline($("latency-spark"), journal.Series.LatencyMs);
    } else {
      $("events-rate").textContent = "no journal";
    }
    const gateway = data.Gateway;
    $("requests-rate").textContent = number(gateway.RequestsPerSecond, 1);
    $("requests-latency").textContent =
      `${gateway.Requests} requests, mean ${number(gateway.MeanLatencyMs, 1)} ms`;
    sparkline($("requests-spark"), gateway.Series.RequestsPerSecond);
  }

  async function poll() {
    try {
      showSummary(await api("GET", "/ops/summary"));
      say($("status"), "signed in", false);
    } catch (error) {
      say($("status"), signedOutMessage(error), true);
    }
  }

  // --- dead letters ------------------------------------------------------------------------

  function replayButton(destination, ids, label) {
    const button = el("button", { type: "button", class: "replay", "data-destination": destination }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const done = await api("POST", `/ops/dead-letters/${encodeURIComponent(destination)}/replay`, {
          MessageIds: ids,
        });
        say($("dlq-message"), `replayed ${done.Replayed.length} from ${destination}: ${done.Replayed.join(", ")}`, false);
      } catch (error) {
        say($("dlq-message"), `replay failed: ${signedOutMessage(error)}`, true);
      }
      await loadDeadLetters(false);
    });
    return button;
  }

  function deadLetterTable(destination) {
    const head = el("tr", {}, ...["Message id", "Attempts", "Dead-lettered at", "From", "Reason", ""].map((t) => el("th", {}, t)));
    const rows = destination.DeadLetter.map((dead) =>
      el(
        "tr",
        { "data-message-id": dead.MessageId },
        el("td", { class: "mono" }, dead.MessageId),
        el("td", { class: "number" }, dead.Attempts),
        el("td", {}, dead.DeadLetteredAt ?? ""),
        el("td", { class: "mono" }, `${dead.OriginalExchange ?? ""} ${dead.OriginalRoutingKey ?? ""}`),
        el("td", { class: "reason" }, dead.Reason),
        el("td", {}, replayButton(destination.Name, [dead.MessageId], "Replay")),
      ),
    );
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function loadDeadLetters(announce) {
    let data;
    try {
      data = await api("GET", "/ops/dead-letters");
    } catch (error) {
      say($("dlq-message"), signedOutMessage(error), true);
      return;
    }
    const blocks = [];
    for (const destination of data.Destination) {
      const title = el("h3", { "data-destination": destination.Name }, `${destination.Name} `,
        el("span", { class: "muted count" }, `(${destination.Count})`));
      blocks.push(title);
      if (destination.Count > 0) {
        title.append(" ", replayButton(destination.Name, [], "Replay all"));
        blocks.push(deadLetterTable(destination));
        if (destination.Count > destination.DeadLetter.length) {
          blocks.push(el("p", { class: "muted" }, `showing ${destination.DeadLetter.length} of ${destination.Count}`));
        }
      }
    }
    $("dlq-list").replaceChildren(...blocks);
    if (announce) {
      const total = data.Destination.reduce((sum, d) => sum + d.Count, 0);
      say($("dlq-message"), data.Destination.length ? `${total} parked` : "no transport is configured", false);
    }
  }

  // --- transaction search ------------------------------------------------------------------

  function bodyText(body) {
    return Object.entries(body).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ");
  }

  function facts(transaction) {
    const pairs = [
      ["status", transaction.Status ? `${transaction.Status}${transaction.ReasonCode ? ` (${transaction.ReasonCode})` : ""}` : "not in the read model: run `isobridge journal rebuild`"],
      ["tenant", transaction.Tenant],
      ["amount", transaction.Amount ? `${transaction.Amount} ${transaction.Currency ?? ""}` : null],
      ["destination", transaction.Destination],
      ["attempts", transaction.Attempts],
      ["end-to-end / RRN", transaction.EndToEndId],
      transaction.TerminalId
        ? ["STAN@terminal", `${transaction.Stan ?? ""}@${transaction.TerminalId}`]
        : ["instruction id", transaction.Stan],
      ["UETR", transaction.Uetr],
      ["duration", `${transaction.DurationMs} ms over ${transaction.Event.length} events`],
    ];
    const items = [];
    for (const [name, value] of pairs) {
      if (value !== null && value !== undefined && value !== "") {
        items.push(el("dt", {}, name), el("dd", {}, value));
      }
    }
    return el("dl", {}, ...items);
  }

  function eventTable(transaction) {
    const head = el("tr", {}, ...["seq", "time (UTC)", "+ms", "step ms", "event", "body", "personal"].map((t) => el("th", {}, t)));
    const rows = transaction.Event.map((event) =>
      el(
        "tr",
        { class: "event" },
        el("td", { class: "number" }, event.Seq),
        el("td", { class: "mono" }, event.At),
        el("td", { class: "number" }, number(event.SinceFirstMs, 1)),
        el("td", { class: "number" }, number(event.StepMs, 1)),
        el("td", { class: "kind" }, event.Kind),
        el("td", { class: "mono body" }, bodyText(event.Body)),
        el("td", { class: "muted" }, event.PersonalFields ?? ""),
      ),
    );
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function search(identifier) {
    $("trace").replaceChildren();
    if (!identifier) {
      say($("trace-message"), "type an id to trace", true);
      return;
    }
    say($("trace-message"), `tracing ${identifier} ...`, false);
    let data;
    try {
      data = await api("GET", `/ops/trace?id=${encodeURIComponent(identifier)}`);
    } catch (error) {
      say($("trace-message"), signedOutMessage(error), true);
      return;
    }
    const count = data.Transaction.length;
    say($("trace-message"), `${count} transaction${count === 1 ? "" : "s"} for ${data.Id}`, false);
    const blocks = [];
    for (const transaction of data.Transaction) {
      blocks.push(el("h3", { class: "transaction" }, "transaction ", el("code", {}, transaction.TransactionId)));
      blocks.push(facts(transaction), eventTable(transaction));
    }
    $("trace").replaceChildren(...blocks);
  }

  // --- signing in --------------------------------------------------------------------------

  function signedIn(yes) {
    $("sign-out").hidden = !yes;
    $("token").value = "";
    clearInterval(poller);
    poller = null;
    if (yes) {
      poll();
      poller = setInterval(poll, POLL_MS);
      loadDeadLetters(true);
    } else {
      say($("status"), "signed out: paste an access token with the admin scope", false);
      $("dlq-list").replaceChildren();
      $("trace").replaceChildren();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) {
        say($("status"), "paste an access token with the admin scope", true);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, value);
      signedIn(true);
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      signedIn(false);
    });
    $("dlq-refresh").addEventListener("click", () => loadDeadLetters(true));
    $("trace-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search($("trace-id").value.trim());
    });
    signedIn(Boolean(token()));
  });
})();
