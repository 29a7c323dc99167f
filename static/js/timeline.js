// Draws the incident timeline from the JSON island "timeline-data": calls and errors per
// hour as bars (stacked by caller), errors as a line, events as markers by kind on the same time axis (a row of markers a kind).
// No inline script and no eval: the page's CSP allows only this file and plotly.min.js.
(function () {
  "use strict";

  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var COLORS = {
    registry: "#6f42c1", runtime: "#0d6efd", credential: "#20c997",
    finding: "#dc3545", governance: "#fd7e14", calls: "#6c757d"
  };
  var SYMBOLS = {
    registry: "diamond", runtime: "circle", credential: "square",
    finding: "x", governance: "triangle-up"
  };

  // Plotly reads a few HTML tags in labels; event texts come from users, so plain text.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function draw() {
    var island = document.getElementById("timeline-data");
    var element = document.getElementById("timeline-chart");
    if (!island || !element || !window.Plotly) {
      return;
    }
    var data = JSON.parse(island.textContent);
    // Calls per hour stacked by caller (the busiest few, then the rest), errors beside.
    var PALETTE = ["#9ec5fe", "#a3cfbb", "#e2d9f3", "#ffe69c", "#a6e9d5", "#ced4da"];
    var traces = (data.series.length ? data.series : [{ name: "Calls", calls: data.calls }]).map(
      function (series, index) {
        return { type: "bar", name: plain(series.name), x: data.hours, y: series.calls,
          marker: { color: PALETTE[index % PALETTE.length] },
          hovertemplate: "%{x}: %{y:,d} calls<extra>" + plain(series.name) + "</extra>" };
      }
    );
    traces.push({ type: "scatter", mode: "lines+markers", name: "Errors", x: data.hours, y: data.errors,
      line: { color: "#dc3545", width: 1.5 }, marker: { color: "#dc3545", size: 5 },
      hovertemplate: "%{x}: %{y:,d} errors<extra></extra>" });
    var kinds = data.markers.map(function (row) { return row.label; });
    data.markers.forEach(function (row) {
      traces.push({
        type: "scatter", mode: "markers", name: plain(row.label), yaxis: "y2",
        x: row.x, y: row.x.map(function () { return row.label; }),
        text: row.text.map(plain),
        marker: { size: 11, color: COLORS[row.kind], symbol: SYMBOLS[row.kind] || "circle" },
        hovertemplate: "%{x}<br>%{text}<extra>" + plain(row.label) + "</extra>"
      });
    });
    var layout = {
      font: { family: FONT, size: 12, color: "#212529" },
      margin: { l: 56, r: 96, t: 8, b: 40 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      barmode: "stack", bargap: 0.1,
      legend: { orientation: "h", x: 0, y: 1.12, traceorder: "normal" },
      xaxis: { type: "date", range: [data.since, data.until], gridcolor: "#e9ecef" },
      yaxis: { title: { text: "per hour" }, rangemode: "tozero", gridcolor: "#e9ecef", tickformat: ",d", domain: [0, 0.62] },
      yaxis2: { type: "category", categoryorder: "array", categoryarray: kinds, domain: [0.7, 1], automargin: true, side: "right" },
      hoverlabel: { font: { family: FONT } }
    };
    if (!data.hours.length && !data.markers.length) {
      layout.annotations = [{ text: "Nothing in this range", showarrow: false, xref: "paper", yref: "paper",
        x: 0.5, y: 0.5, font: { size: 14, color: "#6c757d" } }];
    }
    window.Plotly.newPlot(element, traces, layout, { displayModeBar: false, responsive: true, displaylogo: false });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
