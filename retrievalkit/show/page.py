"""The HTML of the reports (jinja2, autoescaped; plain CSS and JavaScript, nothing fetched from a network).

Ranking reports carry their rows as JSON in the page and draw one page of rows at a time, so a report of
10 000 queries stays a few megabytes and opens quickly; images load lazily. Copy-detection reports list a
bounded number of pairs and are drawn on the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from retrievalkit import __version__

CSS = r"""
:root { --pe:#23a047; --ph:#1f6fd1; --j:#9a9a9a; --w:#d62728; --u:#c8c8c8; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0.2em 0; } h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
.meta { color: #666; font-size: 0.9em; word-break: break-all; }
table.metrics { border-collapse: collapse; margin: 0.5em 0; }
table.metrics th, table.metrics td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
.plots img { max-width: 100%; border: 1px solid #ddd; background: white; margin: 4px 8px 4px 0; }
#controls { position: sticky; top: 0; background: #fafafa; padding: 6px 0; border-bottom: 1px solid #ddd;
  z-index: 2; display: flex; gap: 1.2em; flex-wrap: wrap; align-items: center; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 4px; border: 3px solid; border-radius: 3px; }
.row { display: flex; gap: 10px; padding: 8px 0; border-bottom: 1px solid #e4e4e4; align-items: flex-start; }
.row .qcell { flex: 0 0 auto; width: 200px; }
.mrow { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; margin-bottom: 4px; }
.mlabel { width: 100%; font-size: 0.85em; color: #444; }
figure.tile { margin: 0; display: inline-flex; flex-direction: column; align-items: center; }
figure.tile img { height: 120px; width: auto; max-width: 220px; object-fit: contain; border: 4px solid var(--u);
  border-radius: 3px; background: #eee; min-width: 60px; }
figure.q img { height: auto; max-height: 192px; max-width: 192px; border-color: #333; }
figure.tile figcaption { font-size: 0.78em; color: #444; text-align: center; max-width: 158px;
  overflow-wrap: anywhere; }
.pe img { border-color: var(--pe) !important; } .ph img { border-color: var(--ph) !important; }
.j img { border-color: var(--j) !important; border-style: dashed !important; opacity: 0.75; }
.w img { border-color: var(--w) !important; } .u img { border-color: var(--u); }
.legend .pe { border-color: var(--pe); } .legend .ph { border-color: var(--ph); }
.legend .j { border-color: var(--j); border-style: dashed; } .legend .w { border-color: var(--w); }
.ap { font-weight: 600; }
.matches { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 4px; }
.matches img { max-height: 200px; max-width: 100%; border: 1px solid #ccc; }
.matches figure { margin: 0; } .matches figcaption { font-size: 0.8em; color: #444; }
body.proto-easy .only-medium, body.proto-easy .only-hard, body.proto-medium .only-easy,
body.proto-medium .only-hard, body.proto-hard .only-easy, body.proto-hard .only-medium { display: none; }
.pairs { display: flex; flex-direction: column; gap: 6px; }
.pair { display: flex; gap: 10px; align-items: flex-start; padding: 6px 0; border-bottom: 1px solid #e4e4e4; }
.pair .info { font-size: 0.9em; }
.broken { outline: 3px solid magenta; }
.warn { color: #a15c00; }
button { font: inherit; }
"""

JS = r"""
(function () {
  const D = JSON.parse(document.getElementById('rkit-data').textContent);
  const POS = {easy: 'e', medium: 'eh', hard: 'h'}, IGN = {easy: 'hj', medium: 'j', hard: 'ej'};
  const WORD = {e: 'easy', h: 'hard', j: 'junk', w: 'wrong', u: ''};
  let proto = D.protocols.length ? D.protocol : null, sort = D.sort, page = 0, filter = '', order = [];
  const rowsEl = document.getElementById('rows');
  document.body.dataset.broken = '0';

  function cls(c) {
    if (!proto || c === 'u') return 'u';
    if (POS[proto].includes(c)) return c === 'h' ? 'ph' : 'pe';
    if (IGN[proto].includes(c)) return 'j';
    return 'w';
  }
  function ap(q, m) { const a = q.r[m].ap[proto]; return a === undefined ? null : a; }
  function byName(a, b) { const x = D.queries[a].name, y = D.queries[b].name; return x < y ? -1 : x > y ? 1 : 0; }
  function nullLast(x, y) { if (x === null) return y === null ? 0 : 1; if (y === null) return -1; return x - y; }
  function spread(q) {
    const v = q.r.map((_, m) => ap(q, m));
    if (v.some(x => x === null)) return null;
    return -(Math.max(...v) - Math.min(...v));
  }
  function computeOrder() {
    let idx = D.queries.map((_, i) => i);
    if (filter) idx = idx.filter(i => D.queries[i].name.toLowerCase().includes(filter));
    if (sort === 'name') idx.sort(byName);
    else if (sort === 'file') idx.sort((a, b) => D.queries[a].row - D.queries[b].row);
    else if (sort === 'ap') idx.sort((a, b) => nullLast(ap(D.queries[a], 0), ap(D.queries[b], 0)) || byName(a, b));
    else if (sort === 'diff') idx.sort((a, b) => nullLast(spread(D.queries[a]), spread(D.queries[b])) || byName(a, b));
    order = idx;
  }
  function img(i, extra) {
    const el = document.createElement('img');
    el.loading = 'lazy'; el.decoding = 'async'; el.src = D.images[i]; el.alt = D.names[i]; el.title = D.names[i];
    el.onerror = () => { el.classList.add('broken');
      document.body.dataset.broken = String(+document.body.dataset.broken + 1); };
    return el;
  }
  function fmtAP(a) { return a === null || a === undefined ? 'AP –' : 'AP ' + (100 * a).toFixed(1); }
  function tile(i, cat, caption, q) {
    const f = document.createElement('figure');
    f.className = 'tile ' + (q ? 'q' : cls(cat));
    if (!q) f.dataset.cat = cat;
    f.appendChild(img(i));
    const c = document.createElement('figcaption'); c.textContent = caption; f.appendChild(c);
    return f;
  }
  function row(q) {
    const r = document.createElement('div'); r.className = 'row'; r.dataset.name = q.name;
    const qc = document.createElement('div'); qc.className = 'qcell';
    qc.appendChild(tile(q.q, null, q.name + (q.box ? ' (box)' : ''), true));
    const apEl = document.createElement('div'); apEl.className = 'ap';
    apEl.textContent = proto ? q.r.map((_, m) => (D.methods.length > 1 ? D.methods[m] + ': ' : '') + fmtAP(ap(q, m))).join(' · ') : '';
    qc.appendChild(apEl); r.appendChild(qc);
    const res = document.createElement('div'); res.className = 'results';
    q.r.forEach((m, mi) => {
      const mr = document.createElement('div'); mr.className = 'mrow';
      if (D.methods.length > 1) { const l = document.createElement('div'); l.className = 'mlabel';
        l.textContent = D.methods[mi] + (proto ? ' — ' + fmtAP(ap(q, mi)) : ''); mr.appendChild(l); }
      if (m.missing) { const s = document.createElement('span'); s.className = 'warn';
        s.textContent = 'query not in this ranks file'; mr.appendChild(s); }
      m.i.forEach((im, j) => {
        const cat = m.c[j];
        let cap = '#' + (j + 1) + '  ' + m.s[j];
        if (cat !== 'u') cap += '  ' + WORD[cat] + (proto && cls(cat) === 'j' && cat !== 'j' ? ' (ignored)' : '');
        mr.appendChild(tile(im, cat, cap, false));
      });
      res.appendChild(mr);
    });
    if (q.m) {
      const mm = document.createElement('div'); mm.className = 'matches';
      q.m.forEach(p => {
        const f = document.createElement('figure');
        if (p.file) { const e = document.createElement('img'); e.loading = 'lazy'; e.src = p.file; e.alt = p.db;
          e.onerror = () => { e.classList.add('broken');
            document.body.dataset.broken = String(+document.body.dataset.broken + 1); };
          f.appendChild(e); }
        const c = document.createElement('figcaption');
        c.textContent = '#' + p.rank + ' ' + p.db + ': ' + p.inliers + ' inliers of ' + p.tentative + ' matches';
        f.appendChild(c); mm.appendChild(f);
      });
      res.appendChild(mm);
    }
    r.appendChild(res);
    return r;
  }
  function pages() { return Math.max(1, Math.ceil(order.length / D.page_size)); }
  function draw() {
    page = Math.min(Math.max(0, page), pages() - 1);
    rowsEl.replaceChildren();
    const frag = document.createDocumentFragment();
    order.slice(page * D.page_size, (page + 1) * D.page_size).forEach(i => frag.appendChild(row(D.queries[i])));
    rowsEl.appendChild(frag);
    document.querySelectorAll('.pageinfo').forEach(e => {
      e.textContent = 'page ' + (page + 1) + ' of ' + pages() + ' (' + order.length + ' queries)'; });
    document.body.dataset.rows = String(rowsEl.children.length);
    document.body.dataset.page = String(page + 1);
  }
  function setProto(p) {
    proto = p; document.body.className = 'proto-' + p;
    if (sort === 'ap' || sort === 'diff') computeOrder();
    draw();
  }
  document.querySelectorAll('input[name=protocol]').forEach(e => e.addEventListener('change', () => setProto(e.value)));
  const sortEl = document.getElementById('sort');
  sortEl.value = sort;
  sortEl.addEventListener('change', () => { sort = sortEl.value; page = 0; computeOrder(); draw(); });
  document.getElementById('filter').addEventListener('input', e => {
    filter = e.target.value.trim().toLowerCase(); page = 0; computeOrder(); draw(); });
  document.querySelectorAll('.prev').forEach(b => b.addEventListener('click', () => { page--; draw(); scrollTo(0, 0); }));
  document.querySelectorAll('.next').forEach(b => b.addEventListener('click', () => { page++; draw(); scrollTo(0, 0); }));
  order = D.queries.map((_, i) => i);  // the server's order for the opening protocol and sort
  draw();
  document.body.dataset.ready = '1';
})();
"""

TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rkit {{ version }}">
<title>{{ title }}</title><style>{{ css|safe }}</style></head>
<body class="proto-{{ protocol }}">
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
</body></html>
""",
    "ranks.html": """{% extends "base.html" %}{% block body %}
<p class="meta">{% for m in s.methods %}ranks: {{ m.path }}<br>{% endfor %}images: {{ s.images }}
{% if s.gnd %}<br>ground truth: {{ s.gnd }}{% endif %}<br>{{ s.shown }} of {{ s.total }} queries shown, top {{ s.top_k }}
results each</p>
{% if s.missing %}<p class="warn">{{ s.missing|length }} images could not be found or read under {{ s.images }}
(e.g. {{ s.missing[0] }}); they show as grey tiles.</p>{% endif %}
{% if metrics %}<h2>Metrics (revisitop, percent)</h2>
<table class="metrics"><tr><th>ranks</th><th>protocol</th><th>mAP</th>{% for k in kappas %}<th>mP@{{ k }}</th>{% endfor %}
{% for k in kappas %}<th>R@{{ k }}</th>{% endfor %}</tr>
{% for m in s.methods %}{% for p in protocols %}<tr><td>{{ m.label }}</td><td>{{ p }}</td>
<td>{{ fmt(m.metrics.map[p]) }}</td>{% for k in kappas %}<td>{{ fmt(m.metrics.mp[p][k]) }}</td>{% endfor %}
{% for k in kappas %}<td>{{ fmt(m.metrics.recall[p][k]) }}</td>{% endfor %}</tr>{% endfor %}{% endfor %}</table>
<p class="meta">{{ s.methods[0].metrics.queries }} queries in the ground truth.</p>{% endif %}
{% if s.wins %}<h2>Which method wins</h2><table class="metrics" id="wins"><tr><th>protocol</th>
{% for m in s.methods %}<th>{{ m.label }} better</th>{% endfor %}<th>equal</th></tr>
{% for p in protocols %}<tr class="only-{{ p }}"><td>{{ p }}</td>{% for w in s.wins[p].wins %}<td>{{ w }}</td>{% endfor %}
<td>{{ s.wins[p].ties[0] }}</td></tr>{% endfor %}</table>
<p class="meta">Queries of this page with positives, counted by strictly higher AP.</p>{% endif %}
{% if s.plots %}<div class="plots">{% for key, src in s.plots.items() %}<img src="{{ src }}" alt="{{ key }} plot"
 id="plot-{{ key }}">{% endfor %}</div>{% endif %}
<div id="controls">
{% if protocols %}<span>protocol: {% for p in protocols %}<label><input type="radio" name="protocol" value="{{ p }}"
{% if p == protocol %}checked{% endif %}> {{ p|capitalize }}</label> {% endfor %}</span>{% endif %}
<label>sort <select id="sort">{% if protocols %}<option value="ap">worst AP first</option>{% endif %}
{% if protocols and s.methods|length > 1 %}<option value="diff">largest AP difference first</option>{% endif %}
<option value="name">name</option><option value="file">ranks file order</option></select></label>
<label>find <input id="filter" type="search" placeholder="query name"></label>
<span><button class="prev">◀</button> <span class="pageinfo"></span> <button class="next">▶</button></span>
{% if protocols %}<span class="legend"><span class="pe">easy positive</span><span class="ph">hard positive</span>
<span class="j">junk / ignored</span><span class="w">wrong</span></span>{% endif %}
</div>
<main id="rows"></main>
<p><button class="prev">◀</button> <span class="pageinfo"></span> <button class="next">▶</button></p>
<noscript><p class="warn">This page draws its rows with JavaScript; turn it on to see them.</p></noscript>
<script type="application/json" id="rkit-data">{{ data_json|safe }}</script>
<script>{{ js|safe }}</script>
{% endblock %}""",
    "copydetect.html": """{% extends "base.html" %}{% block body %}
<p class="meta">predictions: {{ s.result }}<br>ground truth: {{ s.gnd }}<br>queries: {{ s.queries_dir }}<br>
database (references): {{ s.database_dir }}</p>
{% if s.missing %}<p class="warn">{{ s.missing|length }} images were not found (e.g. {{ s.missing[0] }}); they show
as grey tiles.</p>{% endif %}
<h2>Metrics (DISC21)</h2>
<table class="metrics" id="metrics"><tr><th>µAP</th><th>recall@P90</th><th>threshold@P90</th><th>predictions</th>
<th>true pairs</th><th>queries</th></tr>
<tr><td>{{ '%.4f'|format(s.metrics.uap) }}</td><td>{{ '%.4f'|format(s.metrics.recall_at_p90) }}</td>
<td>{{ s.metrics.threshold_at_p90 if s.metrics.threshold_at_p90 is not none else '–' }}</td>
<td>{{ s.metrics.predictions }}</td><td>{{ s.metrics.positives }}</td><td>{{ s.metrics.queries }}</td></tr></table>
<div class="plots"><img src="{{ s.plot }}" alt="precision-recall plot" id="plot-pr"></div>
{% for sec in sections %}<h2 id="{{ sec.id }}">{{ sec.title }}</h2><p class="meta">{{ sec.note }}</p>
<div class="pairs" id="list-{{ sec.id }}">{% for p in sec.pairs %}
<div class="pair" data-query="{{ p.query }}" data-reference="{{ p.reference }}">
<figure class="tile q"><img loading="lazy" src="{{ p.qimg }}" alt="{{ p.query }}" title="{{ p.query }}"
 onerror="this.classList.add('broken')"><figcaption>{{ p.query }}</figcaption></figure>
<figure class="tile {{ p.cls }}"><img loading="lazy" src="{{ p.rimg }}" alt="{{ p.reference }}"
 title="{{ p.reference }}" onerror="this.classList.add('broken')"><figcaption>{{ p.reference }}</figcaption></figure>
{% if p.other %}<figure class="tile w"><img loading="lazy" src="{{ p.oimg }}" alt="{{ p.other }}" title="{{ p.other }}"
 onerror="this.classList.add('broken')"><figcaption>top prediction {{ p.other }}
 ({{ p.other_score }})</figcaption></figure>{% endif %}
<div class="info">{% for line in p.info %}{{ line }}<br>{% endfor %}</div></div>
{% else %}<p>none</p>{% endfor %}</div>{% endfor %}
{% endblock %}""",
}


def files_folder(output: str | os.PathLike) -> Path:
    """The folder beside a report that holds its thumbnails and plots: ``report.html`` → ``report_files/``."""
    output = Path(output)
    return output.parent / f"{output.stem}_files"


def _json_for_script(data) -> str:
    """JSON that cannot end its ``<script>`` element early, whatever the image names hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def render_page(kind: str, data: dict | None, summary: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    metrics = [m["metrics"] for m in summary.get("methods", []) if m.get("metrics")]
    ctx = {
        "title": summary.get("title") or ("rkit show: " + ", ".join(m["label"] for m in summary["methods"])
                                          if kind == "ranks" else "rkit show"),
        "version": __version__,
        "css": CSS,
        "js": JS,
        "s": summary,
        "protocol": (data or {}).get("protocol", "medium"),
        "protocols": (data or {}).get("protocols", []),
        "metrics": bool(metrics),
        "kappas": list(metrics[0]["mp"]["medium"].keys()) if metrics else [],
        "fmt": _fmt,
        "data_json": _json_for_script(data) if data is not None else "",
        "sections": summary.get("sections", []),
    }
    return env.get_template(f"{kind}.html").render(**ctx)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_page(output: str | os.PathLike, kind: str, data: dict | None, summary: dict) -> Path:
    """Render and write the report page atomically; return its path."""
    return write_text_atomic(Path(output), render_page(kind, data, summary))
