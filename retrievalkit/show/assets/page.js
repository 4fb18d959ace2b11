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
    const h = new URLSearchParams();
    if (proto) h.set('protocol', proto);
    h.set('sort', sort); h.set('page', String(page + 1));
    if (filter) h.set('find', filter);
    history.replaceState(null, '', '#' + h.toString());
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
  // the state lives in the address too (#protocol=hard&sort=name&page=2&find=x): links open where they were
  const H = new URLSearchParams(location.hash.slice(1));
  if (proto && D.protocols.includes(H.get('protocol'))) proto = H.get('protocol');
  if ([...sortEl.options].some(o => o.value === H.get('sort'))) sort = H.get('sort');
  if (H.get('find')) { filter = H.get('find').toLowerCase(); document.getElementById('filter').value = filter; }
  page = Math.max(0, (parseInt(H.get('page'), 10) || 1) - 1);
  sortEl.value = sort;
  if (proto) { document.body.className = 'proto-' + proto;
    document.querySelectorAll('input[name=protocol]').forEach(e => { e.checked = e.value === proto; }); }
  if (proto === D.protocol && sort === D.sort && !filter) order = D.queries.map((_, i) => i);  // server's order
  else computeOrder();
  draw();
  document.body.dataset.drawMs = performance.now().toFixed(1);  // navigation start → first rows in the DOM
  document.body.dataset.ready = '1';
})();
