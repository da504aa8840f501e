// Draws every chart on the page from its figure JSON with the plotly.js Corridor serves itself.
(function () {
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.getAttribute("data-figure"));
      // a phone has room for a few category labels, not thirteen side by side
      if (el.clientWidth < 560 && fig.layout.xaxis && fig.layout.xaxis.type === "category") {
        fig.layout.xaxis.nticks = Math.min(fig.layout.xaxis.nticks || 5, 5);
      }
      window.Plotly.newPlot(el, fig.data, fig.layout, {
        responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]
      }).then(function () { el.setAttribute("data-rendered", "true"); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else { draw(); }
})();
