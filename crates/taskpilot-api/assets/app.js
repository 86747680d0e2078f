// TaskPilot's dashboard: live rows and sections from the event streams, and the charts.
// Everything else is server-rendered HTML that htmx swaps.
(function () {
  "use strict";

  // Every kind of event a stream names in its `event:` field.
  var KINDS = ["CREATED", "STARTED", "RETRY_SCHEDULED", "SUCCEEDED", "FAILED", "CANCELED", "LOST", "RELEASED"];
  var TERMINAL = { SUCCEEDED: true, FAILED: true, CANCELED: true };

  function listen(source, handler) {
    KINDS.forEach(function (kind) {
      source.addEventListener(kind, function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (e) { return; }
        handler(kind, event);
      });
    });
  }

  // Refreshes one element from `url` (outerHTML), at most one request in flight per element,
  // coalescing what arrives meanwhile into one more.
  var pending = {};
  function refresh(selector, url) {
    var state = pending[selector];
    if (state) { state.again = true; return; }
    pending[selector] = { again: false };
    var done = function () {
      var again = pending[selector] && pending[selector].again;
      delete pending[selector];
      if (again) refresh(selector, url);
    };
    if (!document.querySelector(selector)) { done(); return; }
    htmx.ajax("GET", url, { target: selector, swap: "outerHTML" }).then(done, done);
  }

  // The Tasks page: a row is rendered again when an event of its task arrives.
  function followRows(table) {
    var source = new EventSource(table.getAttribute("data-live-rows"));
    var arrived = document.getElementById("new-tasks");
    listen(source, function (kind, event) {
      var id = event.webTaskId;
      if (document.getElementById("task-" + id)) refresh("#task-" + id, "/ui/tasks/" + id + "/row");
      else if (kind === "CREATED" && arrived) arrived.hidden = false;
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // A task's page: the execution section is rendered again on each event, until the last.
  function followExecution(section) {
    if (section.getAttribute("data-finished") === "true") return;
    var source = new EventSource(section.getAttribute("data-stream"));
    var url = section.getAttribute("data-refresh");
    listen(source, function (kind) {
      refresh("#execution", url);
      if (TERMINAL[kind]) source.close();
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function chart(element, title, series, data) {
    if (!element || typeof uPlot === "undefined") return;
    var width = Math.max(element.clientWidth, 280);
    new uPlot({ title: title, width: width, height: 220, series: series, scales: { x: { time: true } } }, data, element);
  }

  function drawCharts() {
    var block = document.getElementById("chart-data");
    if (!block) return;
    var d = JSON.parse(block.textContent);
    chart(document.getElementById("throughput-chart"), "",
      [{}, { label: "finished/min", stroke: "#1f6feb", fill: "rgba(31,111,235,0.15)" }],
      [d.minutes, d.finished]);
    chart(document.getElementById("pickup-chart"), "",
      [{}, { label: "p50 ms", stroke: "#1a7f37", points: { show: true, size: 5 } }, { label: "p95 ms", stroke: "#cf222e", points: { show: true, size: 5 } }],
      [d.minutes, d.pickupP50Ms, d.pickupP95Ms]);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table[data-live-rows]");
    if (table) followRows(table);
    var section = document.getElementById("execution");
    if (section) followExecution(section);
    drawCharts();
  });
})();
