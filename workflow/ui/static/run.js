// The run page's script: draws the DAG with dagre (vendored) as SVG built with DOM calls
// (text always as textContent), and while the run is RUNNING asks /api/runs/<id>/changes
// for what moved since the last refresh and updates the page in place.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var ORDER = ["FAILED", "RUNNING", "PENDING", "CANCELLED", "SKIPPED", "SUCCEEDED"];
  var REFRESH_MS = 2000;
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var nodes = {};  // node id -> {spec, el}

  function make(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function shown(states) {
    for (var i = 0; i < ORDER.length; i++) { if (states[ORDER[i]]) { return ORDER[i]; } }
    return "PENDING";
  }

  function caption(spec) {
    return ORDER.filter(function (s) { return spec.states[s]; })
      .map(function (s) { return spec.states[s] + " " + s.toLowerCase(); }).join(", ");
  }

  function paint(entry) {
    var spec = entry.spec, state = shown(spec.states);
    entry.el.setAttribute("class", "node " + (spec.group ? "k-group" : "k-" + state));
    if (spec.group) {
      entry.caption.textContent = caption(spec);
      var x = 0;
      ORDER.forEach(function (s, i) {
        var w = entry.width * (spec.states[s] || 0) / spec.size;
        entry.parts[i].setAttribute("x", String(x));
        entry.parts[i].setAttribute("width", String(w));
        x += w;
      });
    } else {
      entry.box.setAttribute("class", "box s-" + state);
    }
    entry.title.textContent = spec.label + ": " + caption(spec);
  }

  function draw() {
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.graph.nodes.forEach(function (n) {
      var w = Math.min(Math.max(70, n.label.length * 7 + 18), 260);
      g.setNode(n.id, { width: n.group ? Math.max(w, 190) : w, height: n.group ? 46 : 26 });
    });
    data.graph.edges.forEach(function (e) { g.setEdge(e[0], e[1]); });
    dagre.layout(g);
    var svg = document.getElementById("graph");
    var size = g.graph();
    svg.setAttribute("viewBox", "0 0 " + size.width + " " + size.height);
    svg.setAttribute("height", String(Math.min(size.height, 640)));
    g.edges().forEach(function (e) {
      var pts = g.edge(e).points;
      var d = pts.map(function (p, i) { return (i ? "L" : "M") + p.x + " " + p.y; }).join(" ");
      make("path", { d: d, "class": "edge" }, svg);
    });
    data.graph.nodes.forEach(function (spec) {
      var box = g.node(spec.id);
      var el = make("g", { transform: "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")",
                           "data-node": spec.id }, svg);
      var entry = { spec: spec, el: el, width: box.width, parts: [] };
      entry.title = make("title", {}, el);
      entry.box = make("rect", { "class": "box", width: box.width, height: box.height, rx: 4 }, el);
      var label = make("text", { x: 8, y: 17 }, el);
      label.textContent = spec.label;
      if (spec.group) {
        ORDER.forEach(function (s) {
          entry.parts.push(make("rect", { "class": "part s-" + s, x: 0, y: box.height - 8, width: 0, height: 8 }, el));
        });
        entry.caption = make("text", { x: 8, y: 32 }, el);
      }
      nodes[spec.id] = entry;
      paint(entry);
    });
  }

  function when(t) {
    return t === null || t === undefined ? "" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function setText(row, cls, text) {
    var cell = row.querySelector("." + cls);
    if (cell) { cell.textContent = text; }
  }

  function moved(step) {
    var before = data.states[step.step_id];
    data.states[step.step_id] = step.state;
    var entry = nodes[data.node_of[step.step_id]];
    if (entry && before !== step.state) {
      entry.spec.states[before] = (entry.spec.states[before] || 1) - 1;
      entry.spec.states[step.state] = (entry.spec.states[step.state] || 0) + 1;
      paint(entry);
    }
    var row = document.querySelector('tr[data-step="' + CSS.escape(step.step_id) + '"]');
    if (row) {
      var badge = row.querySelector(".c-state span");
      badge.textContent = step.state;
      badge.setAttribute("class", "state s-" + step.state);
      setText(row, "c-attempt", String(step.attempt));
      setText(row, "c-job", step.job_id);
      setText(row, "c-sub", when(step.submitted_at));
      setText(row, "c-end", when(step.finished_at));
      setText(row, "c-msg", step.message.length > 160 ? step.message.slice(0, 159) + "…" : step.message);
    }
  }

  function recount() {
    var counts = {};
    Object.keys(data.states).forEach(function (k) { counts[data.states[k]] = (counts[data.states[k]] || 0) + 1; });
    ORDER.forEach(function (s) {
      var el = document.getElementById("count-" + s);
      if (el) { el.textContent = String(counts[s] || 0); }
    });
  }

  function refresh() {
    var url = "/api/runs/" + encodeURIComponent(data.run_id) + "/changes?since=" + data.since;
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      body.steps.forEach(moved);
      recount();
      data.since = body.since;
      if (body.run.status !== data.status) {
        window.location.reload();  // ended (or reopened by a rerun): the timeline and lists change too
        return;
      }
      window.setTimeout(refresh, REFRESH_MS);
    }).catch(function () { window.setTimeout(refresh, REFRESH_MS * 3); });
  }

  draw();
  if (data.status === "RUNNING") { window.setTimeout(refresh, REFRESH_MS); }
}());
