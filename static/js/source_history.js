// Draws a source's run history from the JSON island rendered by json_script ("history-data"):
// stacked bars of records created / updated / gone / skipped per run, and each run's duration
// as a line on a second axis. No inline script and no eval: the CSP allows only this file
// and plotly.min.js.
(function () {
  "use strict";

  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var CONFIG = { displayModeBar: false, responsive: true, displaylogo: false };

  // Plotly reads a few HTML tags in labels; run labels are ours, but keep them plain text.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function traces(chart) {
    var categories = chart.categories.map(plain);
    var bars = chart.bars.map(function (bar) {
      return {
        type: "bar",
        name: plain(bar.name),
        x: categories,
        y: bar.values,
        marker: { color: bar.color },
        customdata: chart.links,
        hovertemplate: "%{x}: %{y}<extra>" + plain(bar.name) + "</extra>"
      };
    });
    bars.push({
      type: "scatter",
      mode: "lines+markers",
      name: plain(chart.line.name),
      x: categories,
      y: chart.line.values,
      yaxis: "y2",
      connectgaps: false,
      line: { color: chart.line.color, width: 2 },
      marker: { color: chart.line.color, size: 5 },
      customdata: chart.links,
      hovertemplate: "%{x}: %{y} s<extra>" + plain(chart.line.name) + "</extra>"
    });
    return bars;
  }

  function layout() {
    return {
      font: { family: FONT, size: 12, color: "#212529" },
      margin: { l: 48, r: 56, t: 8, b: 56 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      barmode: "stack",
      bargap: 0.25,
      legend: { orientation: "h", x: 0, y: 1.14, traceorder: "normal" },
      xaxis: { title: { text: "Run" }, type: "category", automargin: true },
      yaxis: { title: { text: "Records" }, rangemode: "tozero", tickformat: ",d", gridcolor: "#e9ecef", automargin: true },
      yaxis2: { title: { text: "Seconds" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false, automargin: true },
      hoverlabel: { font: { family: FONT } }
    };
  }

  function init() {
    var island = document.getElementById("history-data");
    if (!island || !window.Plotly) {
      return;
    }
    var chart = JSON.parse(island.textContent);
    var element = document.getElementById(chart.id);
    if (!element || !chart.categories.length) {
      return;
    }
    window.Plotly.newPlot(element, traces(chart), layout(), CONFIG).then(function () {
      // A click on a bar or point opens that run (the table below has the same links).
      element.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var link = point && point.customdata;
        if (typeof link === "string" && link.charAt(0) === "/") {
          window.location.assign(link);
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
