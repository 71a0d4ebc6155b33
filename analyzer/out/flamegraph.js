/* ftprof interactive flame graph: draws the embedded frame tree as DOM rows (root at the bottom),
 * with click-to-zoom, regex search with the matched share, and hover details. No network access. */
(function () {
  'use strict';
  var ROW = 18;
  var MIN_PX = 0.5; /* frames narrower than this are not drawn; they would be invisible anyway */
  var TYPES = ['root', 'lock', 'python', 'native'];

  var meta = JSON.parse(document.getElementById('ftprof-meta').textContent);
  var flat = JSON.parse(document.getElementById('ftprof-nodes').textContent);
  var byCount = meta.weight === 'count';
  var flame = document.getElementById('flame');
  var details = document.getElementById('details');
  var summary = document.getElementById('summary');
  var search = document.getElementById('search');
  var matchedText = document.getElementById('matched');

  /* Nodes arrive in pre-order as [parent, frame, wait_ns, count] quadruples: a parent always comes
   * before its children, so one pass links the tree. */
  var nodes = [];
  var maxDepth = 0;
  for (var i = 0; i + 3 < flat.length; i += 4) {
    var parent = flat[i] < 0 ? null : nodes[flat[i]];
    var f = meta.frames[flat[i + 1]];
    var node = {
      index: nodes.length, parent: parent, children: [],
      label: f[0], fn: f[1], file: f[2], fileShort: f[3], line: f[4], type: TYPES[f[5]] || 'python', kind: f[6],
      wait: flat[i + 2], count: flat[i + 3], depth: parent ? parent.depth + 1 : 0
    };
    node.value = byCount ? node.count : node.wait;
    if (parent) parent.children.push(node);
    if (node.depth > maxDepth) maxDepth = node.depth;
    nodes.push(node);
  }
  var root = nodes[0];
  var total = root ? root.value : 0;
  var zoomed = root;
  var matcher = null;
  var matched = {};

  function formatDuration(ns) {
    var units = [[1e9, 's'], [1e6, 'ms'], [1e3, '\u00b5s']];
    for (var u = 0; u < units.length; u++) {
      if (ns >= units[u][0]) {
        var v = ns / units[u][0];
        return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ' + units[u][1];
      }
    }
    return ns + ' ns';
  }
  function formatWeight(v) {
    return byCount ? v + ' contentions' : formatDuration(v);
  }
  function percent(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(1) + '%' : '0.0%';
  }
  function hash(s) {
    var h = 2166136261;
    for (var k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 16777619) >>> 0;
    return h;
  }
  /* Same palette rules as the SVG writer: Python warm, native cool, locks violet. */
  function colour(node) {
    var h = hash(node.fn || ''), a = h & 255, b = (h >>> 8) & 255, c = (h >>> 16) & 255;
    switch (node.type) {
      case 'root': return 'rgb(200,200,205)';
      case 'lock': return 'rgb(' + (150 + a % 40) + ',' + (110 + b % 30) + ',' + (215 + c % 30) + ')';
      case 'native': return 'rgb(' + (70 + a % 50) + ',' + (170 + b % 50) + ',' + (200 + c % 45) + ')';
      default: return 'rgb(' + (220 + a % 36) + ',' + (110 + b % 100) + ',' + (40 + c % 40) + ')';
    }
  }
  function where(node) {
    if (node.type === 'lock') return node.kind ? 'kind: ' + node.kind : '';
    if (!node.file) return node.line > 0 ? 'line ' + node.line : '';
    return node.file + (node.line > 0 ? ':' + node.line : '');
  }

  function addFrame(frag, node, x, w, dim) {
    var el = document.createElement('div');
    el.className = 'frame k-' + node.type + (dim ? ' dim' : '') + (matched[node.index] ? ' match' : '');
    el.style.left = (100 * x) + '%';
    el.style.width = (100 * w) + '%';
    el.style.top = ((maxDepth - node.depth) * ROW) + 'px';
    if (!matched[node.index]) el.style.background = colour(node);
    el.setAttribute('data-node', node.index);
    el.textContent = node.label;
    frag.appendChild(el);
  }

  function render() {
    var width = flame.clientWidth || 1200;
    var frag = document.createDocumentFragment();
    var drawn = 0;
    flame.style.height = ((maxDepth + 1) * ROW) + 'px';
    for (var a = zoomed ? zoomed.parent : null; a; a = a.parent) {
      addFrame(frag, a, 0, 1, true);
      drawn++;
    }
    var scale = zoomed && zoomed.value > 0 ? zoomed.value : 1;
    var stack = zoomed && zoomed.value > 0 ? [[zoomed, 0]] : [];
    while (stack.length) {
      var item = stack.pop(), node = item[0], x = item[1], w = node.value / scale;
      if (w * width < MIN_PX) continue;
      addFrame(frag, node, x, w, false);
      drawn++;
      var cx = x, pending = [];
      for (var c = 0; c < node.children.length; c++) {
        pending.push([node.children[c], cx]);
        cx += node.children[c].value / scale;
      }
      while (pending.length) stack.push(pending.pop());
    }
    flame.textContent = '';
    flame.appendChild(frag);
    document.body.setAttribute('data-ftprof-rendered', String(drawn));
    summary.textContent = drawn + ' frames drawn; total ' + formatWeight(total) +
      (zoomed && zoomed !== root ? '; zoomed on ' + zoomed.label : '');
  }

  function showDetails(node) {
    var lines = [node.label + (node.type === 'lock' && node.kind ? ' [' + node.kind + ']' : '')];
    var loc = where(node);
    if (loc) lines.push(loc);
    var share = percent(node.value, total) + ' of total';
    if (zoomed && zoomed !== root && zoomed.value > 0) share += ', ' + percent(node.value, zoomed.value) + ' of zoomed';
    lines.push('wait ' + formatDuration(node.wait) + ' \u00b7 ' + node.count + ' contentions \u00b7 ' + share);
    details.textContent = lines.join('\n');
  }

  function applySearch(query) {
    matched = {};
    matcher = null;
    if (query) {
      try {
        matcher = new RegExp(query, 'i');
      } catch (e) {
        matcher = new RegExp(query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
      }
    }
    var share = 0, hits = 0, covered = [];
    for (var k = 0; k < nodes.length; k++) {
      var node = nodes[k];
      /* The label holds the function, the short file name and line, or the lock's name; the full
       * path is left out because every frame of an installed tree shares its directories. */
      var hit = !!matcher && matcher.test(node.label);
      var parentCovered = node.parent ? covered[node.parent.index] : false;
      if (hit) {
        matched[k] = true;
        hits++;
        /* A match inside another match adds nothing: its time is already counted. */
        if (!parentCovered) share += node.value;
      }
      covered[k] = hit || parentCovered;
    }
    matchedText.textContent = matcher ? 'Matched: ' + percent(share, total) + ' (' + formatWeight(share) + ') in ' +
      hits + ' frame' + (hits === 1 ? '' : 's') : '';
    document.body.setAttribute('data-ftprof-matched', matcher ? percent(share, total) : '');
    render();
  }

  function zoom(node) {
    zoomed = node || root;
    render();
    saveState();
  }

  /* The view lives in the URL fragment ("#search=regex&zoom=label"), so a link reopens it. */
  function saveState() {
    var parts = [];
    if (search.value) parts.push('search=' + encodeURIComponent(search.value));
    if (zoomed && zoomed !== root) parts.push('zoom=' + encodeURIComponent(zoomed.label));
    try {
      window.history.replaceState(null, '', parts.length ? '#' + parts.join('&') : window.location.pathname);
    } catch (e) { /* some file: URLs refuse it; the view still works */ }
  }
  function loadState() {
    var state = {};
    window.location.hash.replace(/^#/, '').split('&').forEach(function (part) {
      var eq = part.indexOf('=');
      if (eq < 0) return;
      try { state[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1)); } catch (e) { /* ignored */ }
    });
    if (state.search) search.value = state.search;
    if (state.zoom) {
      for (var k = 0; k < nodes.length; k++) {
        if (nodes[k].label === state.zoom) { zoomed = nodes[k]; break; }
      }
    }
  }

  flame.addEventListener('mouseover', function (e) {
    var el = e.target.closest ? e.target.closest('.frame') : null;
    if (el) showDetails(nodes[+el.getAttribute('data-node')]);
  });
  flame.addEventListener('click', function (e) {
    var el = e.target.closest ? e.target.closest('.frame') : null;
    if (el) zoom(nodes[+el.getAttribute('data-node')]);
  });
  document.getElementById('reset').addEventListener('click', function () { zoom(root); });
  document.getElementById('clear').addEventListener('click', function () {
    search.value = '';
    applySearch('');
    saveState();
  });
  search.addEventListener('input', function () { applySearch(search.value); saveState(); });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') zoom(root);
    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); search.focus(); }
  });
  var pendingResize = false;
  window.addEventListener('resize', function () {
    if (pendingResize) return;
    pendingResize = true;
    window.requestAnimationFrame(function () { pendingResize = false; render(); });
  });

  if (meta.title) document.title = meta.title;
  loadState();
  if (!total) details.textContent = 'No samples with this weight.';
  applySearch(search.value);
  if (zoomed && zoomed !== root) showDetails(zoomed);
})();
