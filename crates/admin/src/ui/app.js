// interpose admin UI: a view of the admin API. Nothing here is not also an
// API call (see /openapi.json); the token stays in this tab's sessionStorage.
'use strict';
const $ = (id) => document.getElementById(id);
let logsOf = null;

function token() { return sessionStorage.getItem('interpose-token') || ''; }

async function api(method, path) {
  const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
  const r = await fetch(path, { method, headers });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.reason) || `${method} ${path}: ${r.status}`);
  return body;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? '-' : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function button(label, onClick) {
  const b = el('button', label);
  b.type = 'button';
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await onClick(); showError(null); } catch (e) { showError(e.message); }
    b.disabled = false;
    refresh();
  });
  return b;
}

function showError(message) {
  $('error').hidden = !message;
  $('error').textContent = message || '';
}

function lines(items) {
  const d = document.createElement('div');
  for (const i of items) d.appendChild(el('div', i));
  return d;
}

async function refresh() {
  try {
    const [ready, instances, routes, events, dead, quarantine] = await Promise.all([
      api('GET', '/ready'), api('GET', '/api/instances'), api('GET', '/api/routes'),
      api('GET', '/api/events'), api('GET', '/api/events/dead'), api('GET', '/api/quarantine'),
    ]);
    $('ready').textContent = `${ready.status}: ${ready.enabled_instances} enabled, registry version ${ready.registry_version}, storage ${ready.storage}`;
    const ib = $('instances').tBodies[0];
    ib.replaceChildren(...instances.map((i) => {
      const actions = document.createElement('span');
      if (i.source !== 'config') {
        const enabled = i.state === 'enabled';
        actions.appendChild(button(enabled ? 'disable' : 'enable', () => api('POST', `/api/instances/${encodeURIComponent(i.id)}/${enabled ? 'disable' : 'enable'}`)));
      }
      actions.appendChild(button('log', async () => { logsOf = i.id; }));
      return row([el('code', i.id), i.name, i.version, i.level, i.team, el('span', i.state, 'state-' + i.state), i.source, actions]);
    }));
    if (!instances.length) ib.replaceChildren(row(['no plugin installed']));
    const rb = $('routes').tBodies[0];
    rb.replaceChildren(...routes.map((r) => {
      const tr = row([el('code', `${r.method} ${r.pattern} (${r.scope})`), r.context, lines(r.hooks)]);
      tr.cells[2].className = 'hooks';
      return tr;
    }));
    if (!routes.length) rb.replaceChildren(row(['no hooks: every request is proxied untouched']));
    $('events').textContent = events.durable
      ? `durable: ${events.pending} pending, ${events.delivered} delivered, ${events.retried} retried, ${events.dead} dead`
      : 'in memory (no durable store)';
    $('dead').tBodies[0].replaceChildren(...dead.map((d) => row([d.id, d.instance, `${d.function}() (${d.type})`, d.attempts, d.last_error,
      button('replay', () => api('POST', `/api/events/${d.id}/replay`))])));
    $('quarantine').textContent = quarantine.length
      ? 'quarantined: ' + quarantine.map((q) => `${q.plugin} (${q.seconds_left} s)`).join(', ') : '';
    if (logsOf) {
      const logs = await api('GET', `/api/instances/${encodeURIComponent(logsOf)}/logs`);
      $('logs-section').hidden = false;
      $('logs-of').textContent = logsOf;
      $('logs').textContent = logs.map((l) => `${new Date(l.time_ms).toISOString()} ${l.level.toUpperCase().padEnd(5)} ${l.request_id ? '[' + l.request_id + '] ' : ''}${l.message}`).join('\n') || '(nothing yet)';
    }
    showError(null);
  } catch (e) {
    showError(e.message);
  }
}

$('token').value = token();
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('interpose-token', $('token').value);
  refresh();
});
$('logs-close').addEventListener('click', () => { logsOf = null; $('logs-section').hidden = true; });
refresh();
setInterval(refresh, 5000);
