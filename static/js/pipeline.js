// Draws the pipeline graph from the JSON island "pipeline-data" with cytoscape.js and the
// dagre layout (layered, left to right). No inline script: the CSP allows only these files.
(function () {
  "use strict";

  var COLORS = { ok: "#198754", warn: "#fd7e14", bad: "#dc3545", unknown: "#adb5bd" };

  function draw() {
    var island = document.getElementById("pipeline-data");
    var element = document.getElementById("pipeline-graph");
    if (!island || !element || !window.cytoscape) {
      return;
    }
    // cytoscape-dagre registers itself with window.cytoscape when it loads (after it).
    var data = JSON.parse(island.textContent);
    var cy = window.cytoscape({
      container: element,
      elements: data.nodes.concat(data.edges),
      wheelSensitivity: 0.3,
      minZoom: 0.1,
      maxZoom: 3,
      style: [
        { selector: "node", style: {
          "shape": "round-rectangle",
          "background-color": "#fff",
          "border-width": 2,
          "border-color": function (n) { return COLORS[n.data("state")] || COLORS.ok; },
          "label": "data(label)",
          "text-wrap": "wrap",
          "text-valign": "center",
          "text-halign": "center",
          "font-size": 11,
          "color": "#212529",
          "width": "label",
          "height": "label",
          "padding": 8
        } },
        { selector: "node[state = 'bad']", style: { "background-color": "#f8d7da" } },
        { selector: "node[state = 'warn']", style: { "background-color": "#ffe5d0" } },
        { selector: "node[?focus]", style: { "border-width": 5 } },
        { selector: "edge", style: {
          "curve-style": "bezier",
          "target-arrow-shape": "triangle",
          "width": 1.5,
          "line-color": "#adb5bd",
          "target-arrow-color": "#adb5bd",
          "label": "data(label)",
          "font-size": 9,
          "color": "#6c757d",
          "text-background-color": "#fff",
          "text-background-opacity": 0.8,
          "text-rotation": "autorotate"
        } },
        { selector: "edge[state = 'bad']", style: { "line-color": COLORS.bad, "target-arrow-color": COLORS.bad, "width": 3 } },
        { selector: "edge[state = 'warn']", style: { "line-color": COLORS.warn, "target-arrow-color": COLORS.warn, "width": 3 } }
      ],
      layout: window.cytoscapeDagre
        ? { name: "dagre", rankDir: "LR", nodeSep: 24, rankSep: 80, edgeSep: 10 }
        : { name: "breadthfirst", directed: true }
    });
    cy.on("tap", "node", function (event) {
      var url = event.target.data("url");
      if (typeof url === "string" && url.charAt(0) === "/") {
        window.location.assign(url);
      }
    });
    element.setAttribute("data-rendered", String(cy.nodes().length));
    window.runproofPipeline = cy;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
