// Draws the dashboard's charts from the JSON island rendered by json_script ("chart-data").
// No inline script and no eval: the page's CSP allows only this file and plotly.min.js.
(function () {
  "use strict";

  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var CONFIG = { displayModeBar: false, responsive: true, displaylogo: false };

  function valueAxis(chart) {
    var largest = 0;
    chart.series.forEach(function (series) {
      series.values.forEach(function (value) { largest = Math.max(largest, value); });
    });
    if (chart.kind === "stack") {
      largest = chart.categories.reduce(function (top, _, index) {
        return Math.max(top, chart.series.reduce(function (sum, series) { return sum + series.values[index]; }, 0));
      }, 0);
    }
    // Counts are whole numbers: no 0.5 ticks on small charts, thousands separators on big ones.
    return largest <= 8 ? { dtick: 1, tickformat: ",d" } : { tickformat: ",d" };
  }

  function baseLayout(chart) {
    var horizontal = chart.kind === "hbar";
    var layout = {
      font: { family: FONT, size: 12, color: "#212529" },
      margin: { l: horizontal ? 140 : 48, r: 16, t: 8, b: 48 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      barmode: chart.kind === "stack" ? "stack" : "group",
      bargap: 0.25,
      showlegend: chart.series.length > 1,
      legend: { orientation: "h", x: 0, y: 1.12, traceorder: "normal" },
      xaxis: {
        title: { text: chart.x_title || "" },
        automargin: true,
        gridcolor: "#e9ecef",
        rangemode: "tozero"
      },
      yaxis: {
        title: { text: chart.y_title || "" },
        automargin: true,
        gridcolor: "#e9ecef",
        rangemode: "tozero",
        autorange: horizontal ? "reversed" : true
      },
      hoverlabel: { font: { family: FONT } }
    };
    Object.assign(horizontal ? layout.xaxis : layout.yaxis, valueAxis(chart));
    return layout;
  }

  // Plotly reads a few HTML tags in labels (<b>, <a href>); names come from users, so plain text.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function traces(chart) {
    var horizontal = chart.kind === "hbar";
    var categories = chart.categories.map(plain);
    return chart.series.map(function (series) {
      var trace = {
        type: "bar",
        name: plain(series.name),
        orientation: horizontal ? "h" : "v",
        marker: { color: series.colors || series.color },
        customdata: series.links || [],
        hovertemplate: "%{" + (horizontal ? "y" : "x") + "}: %{" + (horizontal ? "x" : "y") + "}<extra>" + plain(series.name) + "</extra>"
      };
      trace[horizontal ? "y" : "x"] = categories;
      trace[horizontal ? "x" : "y"] = series.values;
      return trace;
    });
  }

  function isEmpty(chart) {
    return !chart.series.some(function (series) {
      return series.values.some(function (value) { return value > 0; });
    });
  }

  function draw(chart) {
    var element = document.getElementById(chart.id);
    if (!element) {
      return;
    }
    var layout = baseLayout(chart);
    if (isEmpty(chart)) {
      layout.annotations = [{
        text: "Nothing to show yet", showarrow: false, xref: "paper", yref: "paper",
        x: 0.5, y: 0.5, font: { size: 14, color: "#6c757d" }
      }];
    }
    window.Plotly.newPlot(element, traces(chart), layout, CONFIG).then(function () {
      // A click on a bar opens the list behind it (the summary table has the same links).
      element.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var link = point && point.customdata;
        if (typeof link === "string" && link.charAt(0) === "/") {
          window.location.assign(link);
        }
      });
    });
  }

  function init() {
    var island = document.getElementById("chart-data");
    if (!island || !window.Plotly) {
      return;
    }
    JSON.parse(island.textContent).forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
