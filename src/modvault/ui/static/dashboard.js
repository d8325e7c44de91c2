// Live numbers on the overview page: polls /ui/api/overview.json and draws requests per second.
(function () {
  "use strict";
  if (document.body.dataset.page !== "overview") { return; }
  var samples = [];
  var last = null;
  function fmtBytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }
  function draw() {
    var line = document.getElementById("rps-line");
    if (!line || samples.length < 2) { return; }
    var max = Math.max.apply(null, samples.concat([1]));
    var step = 600 / (samples.length - 1);
    line.setAttribute("points", samples.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (116 - (v / max) * 110).toFixed(1);
    }).join(" "));
  }
  function poll() {
    fetch("/ui/api/overview.json", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (o) {
        if (!o) { return; }
        if (last) {
          var dt = o.time - last.time;
          if (dt > 0) {
            var rps = (o.requests - last.requests) / dt;
            samples.push(rps);
            if (samples.length > 60) { samples.shift(); }
            set("rps", rps.toFixed(1));
          }
        }
        last = o;
        set("uptime", Math.round(o.uptime) + " s");
        set("requests", String(Math.round(o.requests)));
        set("hit-ratio", o.hit_ratio === null ? "–" : (o.hit_ratio * 100).toFixed(1) + " %");
        set("bytes-served", fmtBytes(o.bytes_served));
        set("store-size", fmtBytes(o.store_bytes));
        set("store-count", o.modules + " / " + o.versions);
        draw();
      })
      .catch(function () { /* the server restarted: try again on the next tick */ });
  }
  poll();
  window.setInterval(poll, 2000);
}());
