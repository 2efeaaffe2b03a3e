// Shaobing (哨兵) SOC console. Plain JavaScript, no dependencies, served
// from the collector binary. Untrusted values (everything that came from
// sensors) only ever reach the page as text nodes or attribute values set
// through the DOM API: this file never assigns inner or outer HTML, never builds HTML
// strings, never evaluates strings as code. The CSRF token lives in this
// module's memory only; the session itself is an HttpOnly cookie.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const PAGE = 50;

  const I18N = {
    zh: {
      title: '哨兵', overview: '概览', incidents: '事件', sensors: '传感器',
      logout: '退出', lang: 'English', login: '登录', token: '分析员令牌',
      login_hint: '使用分析员令牌登录。令牌仅用于换取会话，不会保存在浏览器中。',
      login_failed: '登录失败', sensor_token: '传感器令牌不能登录控制台', unknown_token: '令牌无效',
      range: '时间范围', all: '全部', total: '事件总数', by_kind: '按类型', by_severity: '按严重级别',
      timeline: '事件趋势（每小时）', attacks_live: '进行中的攻击', attacks_ended: '最近结束的攻击',
      top_targets: '受攻击最多的主机', top_prefixes: '受攻击最多的网段', top_leakers: '泄露最多的内部主机',
      top_signatures: '命中最多的特征', none: '无', attack: '攻击', vector: '攻击向量', target: '目标',
      sensor: '传感器', rate: '当前速率', peak: '峰值', started: '开始', last_seen: '最近', ended: '结束',
      in_progress: '进行中', ip: 'IP', incidents_n: '事件数', attacks_n: '攻击数', matches: '匹配数',
      signature: '特征', prefix: '网段', time: '时间', kind: '类型', event: '事件', severity: '严重级别',
      source: '源', destination: '目的', community_id: 'Community ID', dst_net: '受攻击网段', detail: '详情', apply: '筛选',
      reset: '清除', since: '起始', until: '截止', any: '任意', next: '下一页', first: '第一页',
      no_more: '没有更多', attack_detail: '攻击详情', lifecycle: '生命周期', duration: '持续时间',
      chart_rate: '速率曲线（来自存储的更新）', evidence: '证据', top_sources: '主要来源',
      distinct_sources: '不同来源（估计）', dst_ports: '目的端口', src_ports: '源端口',
      packet_size: '包长（最小/平均/最大）', ttl: 'TTL（最小/最大）', ttl_top: '常见 TTL',
      samples: '包头样本', events: '事件记录', packets: '包数', bytes: '字节数', leak_detail: '泄露详情',
      excerpt: '脱敏摘录', flow: '流', app_proto: '应用协议', direction: '方向', match_count: '匹配次数',
      host_incidents: '该主机的其他事件', more_of_host: '该主机的全部事件', status: '状态',
      stale: '失联', ok: '正常', last_heartbeat: '最近心跳', age: '距今', version: '版本', uptime: '运行时长',
      kernel_drops: '内核丢包', loss: '丢包率', spool: '缓存队列', signature_hits: '特征命中',
      loss_incidents: '采集丢失事件', never: '从未', updated: '更新于', end_reason: '结束原因',
      threshold: '阈值', group: '主机组', volumetric: '流量攻击', leak: '数据泄露', sensor_health: '传感器健康',
      critical: '严重', high: '高', medium: '中', low: '低', attack_started: '攻击开始',
      attack_update: '攻击更新', attack_ended: '攻击结束', capture_loss: '采集丢失',
      inbound: '入站', outbound: '出站', internal: '内部', external: '外部', not_found: '未找到',
      loading: '加载中…', error: '错误', session_expired: '会话已过期，请重新登录', port: '端口',
    },
    en: {
      title: 'Shaobing', overview: 'Overview', incidents: 'Incidents', sensors: 'Sensors',
      logout: 'Log out', lang: '中文', login: 'Log in', token: 'Analyst token',
      login_hint: 'Log in with an analyst token. The token is only exchanged for a session; the browser does not keep it.',
      login_failed: 'Login failed', sensor_token: 'A sensor token cannot log in to the console', unknown_token: 'Invalid token',
      range: 'Time range', all: 'All', total: 'Incidents', by_kind: 'By kind', by_severity: 'By severity',
      timeline: 'Incidents over time (hourly)', attacks_live: 'Attacks in progress', attacks_ended: 'Recently ended attacks',
      top_targets: 'Top targeted hosts', top_prefixes: 'Top targeted prefixes', top_leakers: 'Top leaking internal hosts',
      top_signatures: 'Top signatures', none: 'None', attack: 'Attack', vector: 'Vector', target: 'Target',
      sensor: 'Sensor', rate: 'Current rate', peak: 'Peak', started: 'Started', last_seen: 'Last seen', ended: 'Ended',
      in_progress: 'in progress', ip: 'IP', incidents_n: 'Incidents', attacks_n: 'Attacks', matches: 'Matches',
      signature: 'Signature', prefix: 'Prefix', time: 'Time', kind: 'Kind', event: 'Event', severity: 'Severity',
      source: 'Source', destination: 'Destination', community_id: 'Community ID', dst_net: 'Attacked prefix', detail: 'Detail', apply: 'Apply',
      reset: 'Reset', since: 'Since', until: 'Until', any: 'any', next: 'Next page', first: 'First page',
      no_more: 'No more', attack_detail: 'Attack', lifecycle: 'Lifecycle', duration: 'Duration',
      chart_rate: 'Rate (from the stored updates)', evidence: 'Evidence', top_sources: 'Top sources',
      distinct_sources: 'Distinct sources (estimate)', dst_ports: 'Destination ports', src_ports: 'Source ports',
      packet_size: 'Packet size (min/mean/max)', ttl: 'TTL (min/max)', ttl_top: 'Common TTLs',
      samples: 'Sampled headers', events: 'Events', packets: 'Packets', bytes: 'Bytes', leak_detail: 'Leak',
      excerpt: 'Masked excerpt', flow: 'Flow', app_proto: 'Application protocol', direction: 'Direction', match_count: 'Matches',
      host_incidents: 'Other incidents of this host', more_of_host: 'All incidents of this host', status: 'Status',
      stale: 'stale', ok: 'ok', last_heartbeat: 'Last heartbeat', age: 'Age', version: 'Version', uptime: 'Uptime',
      kernel_drops: 'Kernel drops', loss: 'Capture loss', spool: 'Spool depth', signature_hits: 'Signature hits',
      loss_incidents: 'Capture-loss incidents', never: 'never', updated: 'Updated', end_reason: 'End reason',
      threshold: 'Threshold', group: 'Host group', volumetric: 'volumetric', leak: 'leak', sensor_health: 'sensor health',
      critical: 'critical', high: 'high', medium: 'medium', low: 'low', attack_started: 'attack started',
      attack_update: 'attack update', attack_ended: 'attack ended', capture_loss: 'capture loss',
      inbound: 'inbound', outbound: 'outbound', internal: 'internal', external: 'external', not_found: 'Not found',
      loading: 'Loading…', error: 'Error', session_expired: 'Session expired: log in again', port: 'port',
    },
  };
  const KINDS = ['volumetric', 'leak', 'sensor_health'];
  const SEVERITIES = ['critical', 'high', 'medium', 'low'];
  const EVENTS = ['attack_started', 'attack_update', 'attack_ended', 'leak', 'capture_loss'];
  const RANGES = ['1h', '24h', '7d', '30d', 'all'];
  const FILTERS = ['since', 'until', 'kind', 'event', 'severity', 'signature', 'vector', 'sensor', 'ip', 'community_id', 'dst_net'];
  const SVG = 'http://www.w3.org/2000/svg';

  let lang = readLang();
  let csrf = null;
  let analyst = null;
  let timer = null;
  let generation = 0;

  function readLang() {
    try {
      const l = window.localStorage.getItem('sb_lang');
      return l === 'en' ? 'en' : 'zh';
    } catch (_) {
      return 'zh';
    }
  }

  function t(key) {
    const v = I18N[lang][key];
    return v === undefined ? key : v;
  }

  // Builds an element. `attrs` values are set as attributes/properties
  // (never as HTML); children are nodes or strings (text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c) e.appendChild(c);
    return e;
  }

  function link(hash, text, cls) {
    return el('a', { href: '#' + hash, class: cls }, text);
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function pivot(name, value) {
    if (value === null || value === undefined || value === '') return '';
    return link('/incidents' + query({ since: 'all', [name]: value }), String(value), 'pivot pivot-' + name);
  }

  function fmtNum(n) {
    if (n === null || n === undefined) return '';
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(2) + ' G';
    if (a >= 1e6) return (n / 1e6).toFixed(2) + ' M';
    if (a >= 1e4) return (n / 1e3).toFixed(1) + ' k';
    return String(n);
  }
  function fmtPps(n) { return fmtNum(n) + ' pps'; }
  function fmtBps(n) { return fmtNum(n) + 'bit/s'; }
  function fmtTime(s) {
    if (!s) return '';
    return String(s).replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function fmtDur(secs) {
    if (secs === null || secs === undefined) return '';
    secs = Math.max(0, Math.round(secs));
    const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + s + 's';
  }
  function sev(s) { return el('span', { class: 'sev sev-' + s }, t(s)); }

  function setStatus(msg) {
    document.getElementById('status').textContent = msg || '';
  }

  class HttpError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  async function api(path, opts) {
    const o = Object.assign({ credentials: 'same-origin', headers: {} }, opts || {});
    if (o.method && o.method !== 'GET' && csrf) o.headers['X-CSRF-Token'] = csrf;
    const r = await fetch(path, o);
    if (r.status === 204) return null;
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) throw new HttpError(r.status, (body && body.error) || r.statusText);
    return body;
  }

  // ---- routing ----

  function route() {
    const h = window.location.hash.replace(/^#/, '') || '/overview';
    const [path, qs] = h.split('?');
    const parts = path.split('/').filter(Boolean);
    return { name: parts[0] || 'overview', arg: parts[1] ? decodeURIComponent(parts[1]) : null, params: new URLSearchParams(qs || '') };
  }

  function setNav(active) {
    const nav = document.getElementById('nav');
    nav.replaceChildren(
      link('/overview', t('overview'), active === 'overview' ? 'active' : ''),
      link('/incidents' + query({ since: '24h' }), t('incidents'), active === 'incidents' ? 'active' : ''),
      link('/sensors', t('sensors'), active === 'sensors' ? 'active' : ''));
    document.getElementById('lang').textContent = t('lang');
    document.getElementById('logout').textContent = t('logout');
    document.getElementById('who').textContent = analyst ? analyst : '';
    document.title = t('title') + ' · ' + t(active === 'attack' ? 'attack_detail' : active === 'incident' ? 'leak_detail' : active);
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }

  async function render() {
    const gen = ++generation;
    if (timer) { clearInterval(timer); timer = null; }
    if (!csrf) {
      try {
        const s = await api('/api/v1/session');
        if (!s.authenticated) {
          if (gen === generation) showLogin('');
          return;
        }
        csrf = s.csrf_token;
        analyst = s.analyst;
      } catch (e) {
        if (gen === generation) showLogin(e.message);
        return;
      }
    }
    document.getElementById('top').hidden = false;
    const r = route();
    setNav(r.name);
    const views = { overview: viewOverview, incidents: viewIncidents, attack: viewAttack, incident: viewIncident, sensors: viewSensors };
    const view = views[r.name] || viewOverview;
    const main = document.getElementById('main');
    const refresh = async (first) => {
      try {
        const node = await view(r);
        if (gen !== generation) return;
        // Replace the page only when something changed: no flicker, and
        // nothing the analyst is pointing at disappears under the cursor.
        if (first || main.textContent !== node.textContent) {
          main.replaceChildren(node);
          main.setAttribute('data-view', r.name);
        }
        document.getElementById('updated').textContent = t('updated') + ' ' + new Date().toISOString().slice(11, 19) + 'Z';
        setStatus('');
      } catch (e) {
        if (gen !== generation) return;
        if (e.status === 401) { csrf = null; showLogin(t('session_expired')); return; }
        if (first) main.replaceChildren(el('p', { class: 'empty' }, t('error') + ': ' + e.message));
        else setStatus(t('error') + ': ' + e.message);
      }
    };
    main.replaceChildren(el('p', { class: 'empty' }, t('loading')));
    await refresh(true);
    if (gen !== generation) return;
    if (view.live) timer = setInterval(() => refresh(false), REFRESH_MS);
    else if (view.partial) {
      // Only the part that changes, so that nothing typed is lost.
      timer = setInterval(async () => {
        try {
          await view.partial(r, () => gen === generation);
          setStatus('');
        } catch (e) {
          if (gen !== generation) return;
          if (e.status === 401) { csrf = null; showLogin(t('session_expired')); return; }
          setStatus(t('error') + ': ' + e.message);
        }
      }, REFRESH_MS);
    }
  }

  // ---- login ----

  function showLogin(msg) {
    if (timer) { clearInterval(timer); timer = null; }
    csrf = null;
    analyst = null;
    document.getElementById('top').hidden = true;
    const err = el('p', { class: 'sev-critical', id: 'login-error', role: 'alert' }, msg || '');
    const input = el('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true });
    const form = el('form', { class: 'card login', id: 'login-form' },
      el('div', { class: 'brand' }, '哨兵 Shaobing'),
      el('p', { class: 'muted' }, t('login_hint')),
      el('label', { for: 'token' }, t('token')),
      input,
      el('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('login')),
      ' ',
      el('button', { type: 'button', class: 'plain', id: 'login-lang', onclick: () => { switchLang(); showLogin(''); } }, t('lang')),
      err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = input.value;
      input.value = '';
      try {
        const s = await api('/api/v1/session', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
        });
        csrf = s.csrf_token;
        analyst = s.analyst;
        render();
      } catch (e) {
        err.textContent = t('login_failed') + ': ' + (e.status === 403 ? t('sensor_token') : e.status === 401 ? t('unknown_token') : e.message);
      }
    });
    const main = document.getElementById('main');
    main.replaceChildren(form);
    main.setAttribute('data-view', 'login');
    input.focus();
  }

  async function logout() {
    try { await api('/api/v1/session', { method: 'DELETE' }); } catch (_) { /* gone already */ }
    csrf = null;
    analyst = null;
    showLogin('');
  }

  function switchLang() {
    lang = lang === 'zh' ? 'en' : 'zh';
    try { window.localStorage.setItem('sb_lang', lang); } catch (_) { /* private mode */ }
  }

  // ---- tables ----

  function table(id, heads, rows) {
    if (!rows.length) return el('p', { class: 'empty', id }, t('none'));
    return el('table', { id },
      el('thead', {}, el('tr', {}, heads.map(([h, num]) => el('th', { class: num ? 'num' : '' }, t(h))))),
      el('tbody', {}, rows.map((cells) => el('tr', { class: cells.rowClass || '' },
        cells.map((c, i) => el('td', { class: heads[i] && heads[i][1] ? 'num' : (heads[i] && heads[i][2]) || '' }, c))))));
  }

  function card(title, body, wide, id) {
    return el('section', { class: 'card' + (wide ? ' wide' : ''), id }, el('h2', {}, title), body);
  }

  // ---- charts (hand-written SVG) ----

  // Stacked hourly bars of `timeline` grouped by `key` (kind or severity).
  function stackedChart(id, timeline, key, order) {
    const W = 640, H = 180, L = 40, B = 24, T = 8, R = 8;
    const hours = [...new Set(timeline.map((r) => r.hour))].sort();
    if (!hours.length) return el('p', { class: 'empty', id }, t('none'));
    const start = Date.parse(hours[0]), end = Date.parse(hours[hours.length - 1]);
    let step = 3600e3;
    while ((end - start) / step > 240) step *= 24;
    const buckets = [];
    for (let x = start; x <= end; x += step) buckets.push(x);
    const data = buckets.map(() => ({}));
    for (const r of timeline) {
      const i = Math.floor((Date.parse(r.hour) - start) / step);
      if (i >= 0 && i < data.length) data[i][r[key]] = (data[i][r[key]] || 0) + r.incidents;
    }
    const max = Math.max(1, ...data.map((d) => Object.values(d).reduce((a, b) => a + b, 0)));
    const bw = Math.min(48, (W - L - R) / buckets.length);
    const g = svg('g');
    data.forEach((d, i) => {
      let y = H - B;
      for (const k of order) {
        const n = d[k] || 0;
        if (!n) continue;
        const h = (H - B - T) * n / max;
        y -= h;
        g.appendChild(svg('rect', {
          x: (L + i * bw + bw * 0.1).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw * 0.8).toFixed(1),
          height: Math.max(0.5, h).toFixed(1), class: 'bar c-' + k, 'data-n': n, 'data-k': k,
        }, svg('title', { text: fmtTime(new Date(buckets[i]).toISOString()) + ' ' + t(k) + ': ' + n })));
      }
    });
    const labels = svg('g');
    const every = Math.max(1, Math.ceil(buckets.length / 6));
    buckets.forEach((b, i) => {
      if (i % every) return;
      const iso = new Date(b).toISOString();
      labels.appendChild(svg('text', { x: L + i * bw, y: H - 8, text: step > 3600e3 ? iso.slice(5, 10) : iso.slice(5, 10) + ' ' + iso.slice(11, 16) }));
    });
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id, role: 'img' },
      svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }),
      svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }),
      svg('text', { x: 2, y: T + 8, text: fmtNum(max) }),
      svg('text', { x: 2, y: H - B, text: '0' }),
      g, labels);
    const legend = el('div', { class: 'legend' }, order.filter((k) => timeline.some((r) => r[key] === k))
      .map((k) => el('span', {}, el('i', { class: 'c-' + k }), t(k))));
    return el('div', {}, chart, legend);
  }

  // pps and bps of an attack's stored events over time: one point per
  // event, on two scales.
  function rateChart(events) {
    const W = 720, H = 240, L = 56, R = 64, T = 10, B = 28;
    const pts = events.map((e) => ({ ts: Date.parse(e.ts), pps: e.pps || 0, bps: e.bps || 0, id: e.id, ev: e.event }));
    if (!pts.length) return el('p', { class: 'empty' }, t('none'));
    const t0 = pts[0].ts, t1 = Math.max(pts[pts.length - 1].ts, t0 + 1);
    const maxP = Math.max(1, ...pts.map((p) => p.pps)), maxB = Math.max(1, ...pts.map((p) => p.bps));
    const x = (ts) => L + (W - L - R) * (ts - t0) / (t1 - t0);
    const yP = (v) => H - B - (H - B - T) * v / maxP;
    const yB = (v) => H - B - (H - B - T) * v / maxB;
    const line = (f, k) => pts.map((p) => x(p.ts).toFixed(1) + ',' + f(p[k]).toFixed(1)).join(' ');
    const dots = (f, k) => pts.map((p) => svg('circle', {
      cx: x(p.ts).toFixed(1), cy: f(p[k]).toFixed(1), r: 3.5, class: 'pt-' + k,
      'data-ts': new Date(p.ts).toISOString(), 'data-value': p[k], 'data-event': p.ev, 'data-id': p.id,
    }, svg('title', { text: fmtTime(new Date(p.ts).toISOString()) + ' ' + t(p.ev) + ': ' + (k === 'pps' ? fmtPps(p.pps) : fmtBps(p.bps)) })));
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id: 'attack-chart', role: 'img', 'data-points': pts.length },
      svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }),
      svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }),
      svg('line', { x1: W - R, y1: T, x2: W - R, y2: H - B, class: 'axis' }),
      svg('text', { x: 2, y: T + 8, text: fmtPps(maxP) }),
      svg('text', { x: W - R + 4, y: T + 8, text: fmtBps(maxB) }),
      svg('text', { x: L, y: H - 8, text: fmtTime(new Date(t0).toISOString()) }),
      svg('text', { x: W - R - 120, y: H - 8, text: fmtTime(new Date(t1).toISOString()) }),
      svg('polyline', { points: line(yP, 'pps'), class: 'line-pps' }),
      svg('polyline', { points: line(yB, 'bps'), class: 'line-bps' }),
      svg('g', {}, dots(yP, 'pps')), svg('g', {}, dots(yB, 'bps')));
    return el('div', {}, chart, el('div', { class: 'legend' },
      el('span', {}, el('i', { class: 'c-pps' }), 'pps'), el('span', {}, el('i', { class: 'c-bps' }), 'bit/s')));
  }

  // ---- views ----

  function rangeLinks(base, current, extra) {
    return el('div', { class: 'ranges', id: 'ranges' }, t('range') + ': ',
      RANGES.map((r) => link(base + query(Object.assign({}, extra || {}, { since: r })), r === 'all' ? t('all') : r,
        r === current ? 'active' : '')));
  }

  function attackRows(list) {
    return list.map((a) => [
      link('/attack/' + encodeURIComponent(a.attack_id), a.attack_id.slice(0, 13) + '…', 'attack-link'),
      a.vector, pivot('ip', a.dst_ip), pivot('sensor', a.sensor), sev(a.severity),
      a.in_progress ? el('span', { class: 'live' }, fmtPps(a.pps)) : fmtPps(a.peak_pps),
      fmtBps(a.in_progress ? a.bps : a.peak_bps), fmtTime(a.first_seen), fmtTime(a.last_seen),
    ]);
  }
  const ATTACK_HEADS = [['attack'], ['vector'], ['target'], ['sensor'], ['severity'], ['rate', true], ['bit/s', true], ['started'], ['last_seen']];

  async function viewOverview(r) {
    const since = r.params.get('since') || '24h';
    const o = await api('/api/v1/overview' + query({ since, top: 10 }));
    const live = o.attacks.filter((a) => a.in_progress);
    const ended = o.attacks.filter((a) => !a.in_progress).slice(0, 20);
    const kinds = Object.fromEntries(o.by_kind.map((c) => [c.value, c.incidents]));
    return el('div', { id: 'overview' },
      el('h1', {}, t('overview')),
      rangeLinks('/overview', since),
      el('div', { class: 'grid' },
        card(t('total'), el('div', { class: 'kpis' },
          el('div', { class: 'kpi' }, el('b', { id: 'kpi-total' }, fmtNum(o.total)), el('span', {}, t('total'))),
          KINDS.map((k) => el('div', { class: 'kpi' }, el('b', { id: 'kpi-' + k }, fmtNum(kinds[k] || 0)), el('span', {}, t(k)))),
          el('div', { class: 'kpi' }, el('b', { id: 'kpi-live', class: live.length ? 'live' : '' }, String(live.length)), el('span', {}, t('attacks_live'))),
        ), true),
        card(t('timeline') + ' · ' + t('by_kind'), stackedChart('chart-kind', o.timeline, 'kind', KINDS)),
        card(t('timeline') + ' · ' + t('by_severity'), stackedChart('chart-severity', o.timeline, 'severity', SEVERITIES)),
        card(t('attacks_live'), table('attacks-live', ATTACK_HEADS, attackRows(live)), true),
        card(t('attacks_ended'), table('attacks-ended', ATTACK_HEADS, attackRows(ended)), true),
        card(t('top_targets'), table('top-targets', [['ip'], ['attacks_n', true], ['incidents_n', true]],
          o.top_targets.map((h) => [pivot('ip', h.ip), fmtNum(h.score), fmtNum(h.incidents)]))),
        card(t('top_prefixes'), table('top-prefixes', [['prefix'], ['attacks_n', true], ['incidents_n', true]],
          o.top_prefixes.map((p) => [p.prefix, fmtNum(p.attacks), fmtNum(p.incidents)]))),
        card(t('top_leakers'), table('top-leakers', [['ip'], ['incidents_n', true], ['matches', true]],
          o.top_leak_sources.map((h) => [pivot('ip', h.ip), fmtNum(h.incidents), fmtNum(h.score)]))),
        card(t('top_signatures'), table('top-signatures', [['signature'], ['incidents_n', true]],
          o.by_signature.map((s) => [pivot('signature', s.value), fmtNum(s.incidents)]))),
      ));
  }
  viewOverview.live = true;

  function detailLink(i) {
    if (i.kind === 'volumetric' && i.attack_id) return link('/attack/' + encodeURIComponent(i.attack_id), t('attack'), 'detail-link');
    return link('/incident/' + encodeURIComponent(i.id), t('detail'), 'detail-link');
  }

  function incidentRows(list) {
    return list.map((i) => [
      detailLink(i), fmtTime(i.ts), t(i.kind), t(i.event), sev(i.severity), pivot('signature', i.signature),
      i.src_ip ? el('span', {}, pivot('ip', i.src_ip), i.src_port !== null && i.src_port !== undefined ? ':' + i.src_port : '') : '',
      i.dst_ip ? el('span', {}, pivot('ip', i.dst_ip), i.dst_port !== null && i.dst_port !== undefined ? ':' + i.dst_port : '') : '',
      pivot('sensor', i.sensor), pivot('community_id', i.community_id),
    ]);
  }
  const INCIDENT_HEADS = [['detail'], ['time'], ['kind'], ['event'], ['severity'], ['signature'], ['source'], ['destination'], ['sensor'], ['community_id']];

  function incidentParams(r) {
    const params = {};
    for (const f of FILTERS) if (r.params.get(f)) params[f] = r.params.get(f);
    return params;
  }

  // The result card of the incident list: one page and the pager.
  async function incidentResults(r) {
    const params = incidentParams(r);
    const cursor = r.params.get('cursor');
    const page = await api('/api/v1/incidents' + query(Object.assign({}, params, { limit: PAGE, cursor })));
    const pager = el('div', { class: 'pager' },
      cursor ? link('/incidents' + query(params), t('first'), 'plain') : '',
      page.next_cursor ? link('/incidents' + query(Object.assign({}, params, { cursor: page.next_cursor })), t('next'), 'next-page') : el('span', { class: 'muted' }, t('no_more')));
    return el('div', { class: 'card', id: 'incident-results' }, table('incident-table', INCIDENT_HEADS, incidentRows(page.incidents)), pager);
  }

  async function viewIncidents(r) {
    const params = incidentParams(r);
    const results = await incidentResults(r);
    const input = (name, value) => el('label', {}, t(name), el('input', { name, id: 'f-' + name, value: value || '' }));
    const select = (name, options, value) => el('label', {}, t(name), el('select', { name, id: 'f-' + name },
      el('option', { value: '' }, t('any')),
      options.map((o) => { const opt = el('option', { value: o }, t(o)); if (o === value) opt.selected = true; return opt; })));
    const form = el('form', { class: 'filters', id: 'filters' },
      input('since', params.since), input('until', params.until),
      select('kind', KINDS, params.kind), select('event', EVENTS, params.event),
      select('severity', SEVERITIES, params.severity),
      input('signature', params.signature), input('vector', params.vector), input('sensor', params.sensor),
      input('ip', params.ip), input('community_id', params.community_id), input('dst_net', params.dst_net),
      el('button', { type: 'submit', class: 'primary', id: 'apply' }, t('apply')),
      el('button', { type: 'button', class: 'plain', onclick: () => { window.location.hash = '#/incidents' + query({ since: '24h' }); } }, t('reset')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = {};
      for (const f of FILTERS) {
        const v = form.elements[f].value.trim();
        if (v) q[f] = v;
      }
      window.location.hash = '#/incidents' + query(q);
    });
    return el('div', { id: 'incidents' }, el('h1', {}, t('incidents')), form, results);
  }
  viewIncidents.live = false;
  // The first page follows new incidents; later pages stay put.
  viewIncidents.partial = async (r, current) => {
    if (r.params.get('cursor')) return;
    const results = await incidentResults(r);
    const old = document.getElementById('incident-results');
    if (current() && old && old.textContent !== results.textContent) old.replaceWith(results);
    document.getElementById('updated').textContent = t('updated') + ' ' + new Date().toISOString().slice(11, 19) + 'Z';
  };

  function facts(pairs) {
    return el('dl', { class: 'facts' }, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== '')
      .map(([k, v]) => [el('dt', {}, t(k)), el('dd', {}, v)]));
  }

  async function viewAttack(r) {
    const a = await api('/api/v1/attacks/' + encodeURIComponent(r.arg));
    const ev = a.events;
    const first = ev[0], last = ev[ev.length - 1];
    const startTs = a.started_at || first.ts;
    const endTs = a.ended_at;
    const dur = ((endTs ? Date.parse(endTs) : Date.parse(last.ts)) - Date.parse(startTs)) / 1000;
    const peakP = Math.max(...ev.map((e) => e.peak_pps || 0)), peakB = Math.max(...ev.map((e) => e.peak_bps || 0));
    const psz = last.packet_size, ttl = last.ttl;
    const ports = (list) => (list || []).map((p) => p.port + ' (' + fmtNum(p.packets) + ')').join(', ');
    viewAttack.live = !endTs;
    return el('div', { id: 'attack', 'data-attack': a.attack_id },
      el('h1', {}, t('attack_detail') + ' ', el('span', { class: 'muted' }, a.attack_id)),
      el('div', { class: 'grid' },
        card(t('chart_rate'), rateChart(ev), true),
        card(t('lifecycle'), facts([
          ['vector', last.vector], ['target', pivot('ip', last.dst_ip)], ['sensor', pivot('sensor', last.sensor)],
          ['severity', sev(last.severity)], ['group', last.group],
          ['started', fmtTime(startTs)],
          ['ended', endTs ? fmtTime(endTs) : el('span', { class: 'live', id: 'attack-live' }, t('in_progress'))],
          ['duration', fmtDur(dur)], ['end_reason', last.end_reason],
          ['rate', fmtPps(last.pps) + ' · ' + fmtBps(last.bps)], ['peak', fmtPps(peakP) + ' · ' + fmtBps(peakB)],
          ['packets', fmtNum(last.packets)], ['bytes', fmtNum(last.bytes)],
          ['threshold', last.threshold ? fmtPps(last.threshold.pps) + ' · ' + fmtBps(last.threshold.bps) : ''],
        ])),
        card(t('evidence'), facts([
          ['distinct_sources', last.distinct_sources !== undefined ? fmtNum(last.distinct_sources) : ''],
          ['dst_ports', ports(last.top_dst_ports)], ['src_ports', ports(last.top_src_ports)],
          ['packet_size', psz ? psz.min + ' / ' + psz.mean + ' / ' + psz.max : ''],
          ['ttl', ttl ? ttl.min + ' / ' + ttl.max : ''],
          ['ttl_top', ttl && ttl.top ? ttl.top.map((x) => x.ttl + ' (' + x.packets + ')').join(', ') : ''],
        ])),
        card(t('top_sources'), table('top-sources', [['ip'], ['packets', true]],
          (last.top_sources || []).map((s) => [pivot('ip', s.ip), fmtNum(s.packets)]))),
        card(t('samples'), table('samples', [['time'], ['source'], ['destination'], ['port'], ['ttl', true], ['bytes', true]],
          (last.samples || []).map((s) => [fmtTime(s.ts), String(s.src_ip || ''), String(s.dst_ip || ''),
            String(s.dst_port === undefined ? '' : s.dst_port), String(s.ttl === undefined ? '' : s.ttl), String(s.wire_len === undefined ? '' : s.wire_len)])), true),
        card(t('events'), table('attack-events', [['time'], ['event'], ['rate', true], ['bit/s', true], ['peak', true]],
          ev.map((e) => [fmtTime(e.ts), t(e.event), fmtPps(e.pps), fmtBps(e.bps), fmtPps(e.peak_pps)])), true),
      ));
  }
  viewAttack.live = true;

  async function viewIncident(r) {
    const d = await api('/api/v1/incidents/' + encodeURIComponent(r.arg));
    const i = d.incident;
    const flow = el('span', {}, pivot('ip', i.src_ip), i.src_port !== undefined && i.src_port !== null ? ':' + i.src_port : '',
      ' → ', pivot('ip', i.dst_ip), i.dst_port !== undefined && i.dst_port !== null ? ':' + i.dst_port : '', ' ', i.proto || '');
    return el('div', { id: 'incident', 'data-id': i.id },
      el('h1', {}, (i.kind === 'leak' ? t('leak_detail') : t(i.kind)) + ' ', el('span', { class: 'muted' }, i.id)),
      el('div', { class: 'grid' },
        card(t('excerpt'), el('pre', { class: 'excerpt', id: 'excerpt' }, i.excerpt || '')),
        card(t('detail'), facts([
          ['time', fmtTime(i.ts)], ['signature', pivot('signature', i.signature)], ['severity', sev(i.severity)],
          ['event', t(i.event)], ['flow', flow], ['app_proto', i.app_proto], ['direction', i.direction ? t(i.direction) : ''],
          ['match_count', i.match_count !== undefined ? String(i.match_count) : ''], ['sensor', pivot('sensor', i.sensor)],
          ['community_id', pivot('community_id', i.community_id)],
          ['attack', i.attack_id ? link('/attack/' + encodeURIComponent(i.attack_id), i.attack_id, 'attack-link') : ''],
        ])),
        card(t('host_incidents') + (d.host ? ' · ' + d.host : ''), el('div', {},
          table('host-incidents', INCIDENT_HEADS, incidentRows(d.host_incidents)),
          d.host ? el('p', {}, link('/incidents' + query({ since: 'all', ip: d.host }), t('more_of_host'), 'pivot')) : ''), true),
      ));
  }
  viewIncident.live = false;

  async function viewSensors() {
    const s = await api('/api/v1/sensors');
    const rows = s.sensors.map((x) => {
      const hits = (x.signature_hits || []).slice(0, 5).map((h) => h.signature + ' ' + fmtNum(h.hits)).join(', ');
      const row = [
        pivot('sensor', x.name),
        x.stale ? el('span', { class: 'badge-stale' }, t('stale')) : el('span', { class: 'badge-ok' }, t('ok')),
        x.last_heartbeat ? fmtTime(x.last_heartbeat) : t('never'),
        x.heartbeat_age_s !== undefined ? fmtDur(x.heartbeat_age_s) : '',
        x.version || '', x.uptime_s !== undefined ? fmtDur(x.uptime_s) : '',
        x.pps !== undefined ? fmtPps(x.pps) : '', x.bps !== undefined ? fmtBps(x.bps) : '',
        x.kernel_drops !== undefined ? fmtNum(x.kernel_drops) : '',
        x.capture_loss_ratio !== undefined ? (x.capture_loss_ratio * 100).toFixed(3) + ' %' : '',
        x.spool_depth !== undefined ? fmtNum(x.spool_depth) : '',
        fmtNum(x.capture_loss_incidents), fmtNum(x.incidents), hits,
      ];
      row.rowClass = x.stale ? 'stale' : '';
      return row;
    });
    return el('div', { id: 'sensors' }, el('h1', {}, t('sensors')),
      el('p', { class: 'muted' }, t('stale') + ' > ' + s.stale_after_s + ' s · ' + t('incidents_n') + ': 24h'),
      el('div', { class: 'card' }, table('sensor-table',
        [['sensor'], ['status'], ['last_heartbeat'], ['age'], ['version'], ['uptime'], ['pps', true], ['bit/s', true],
          ['kernel_drops', true], ['loss', true], ['spool', true], ['loss_incidents', true], ['incidents_n', true], ['signature_hits', false, 'wrap']],
        rows)));
  }
  viewSensors.live = true;

  // ---- start ----

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('lang').addEventListener('click', () => { switchLang(); render(); });
    document.getElementById('logout').addEventListener('click', logout);
    window.addEventListener('hashchange', render);
    render();
  });
}());
