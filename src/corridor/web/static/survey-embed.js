/* Corridor's survey embed for a brand's own pages:
 *   <div data-corridor-survey="TOKEN" data-height="640"></div>
 *   <script src="https://cx.example.com/static/survey-embed.js" async></script>
 * Each such element gets an <iframe> with the survey's embeddable form (/s/TOKEN/embed) from the
 * server that served this script. No cookies, no tracking; the form itself runs no script. */
(function () {
  "use strict";
  var me = document.currentScript;
  var origin = me ? new URL(me.src, document.baseURI).origin : "";
  function embed(el) {
    var token = el.getAttribute("data-corridor-survey") || "";
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(token) || el.querySelector("iframe")) return;
    var frame = document.createElement("iframe");
    frame.src = origin + "/s/" + encodeURIComponent(token) + "/embed" +
      (el.getAttribute("data-lang") ? "?lang=" + encodeURIComponent(el.getAttribute("data-lang")) : "");
    frame.title = el.getAttribute("data-title") || "Survey";
    frame.loading = "lazy";
    frame.referrerPolicy = "no-referrer";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = (parseInt(el.getAttribute("data-height"), 10) || 640) + "px";
    el.appendChild(frame);
  }
  function all() {
    var found = document.querySelectorAll("[data-corridor-survey]");
    for (var i = 0; i < found.length; i++) embed(found[i]);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", all);
  else all();
})();
