// netctl web view: the pool drawn with cytoscape.js, kept up to date from /events.
//
// Every message (one per interval, netctl/web/events.py) is turned into the full set of
// elements the pool should show right now (`model`); the drawing is then changed in place
// (`apply`): elements that went away are removed, new ones are added next to what they hang
// off, existing ones only get new data and classes. The layout runs once (and when the
// operator asks), so nothing jumps around while rates change every second.
'use strict';

(function () {
  // a node as large as its label (cytoscape's own 'label' size is deprecated)
  const lines = (n) => String(n.data('label') || '').split('\n');
  const labelWidth = (n) => Math.max(24, ...lines(n).map((l) => l.length * 6));
  const labelHeight = (n) => Math.max(18, lines(n).length * 12);
  const STYLE = [
    { selector: 'node', style: {
      'label': 'data(label)', 'font-size': 10, 'text-wrap': 'wrap', 'text-valign': 'center',
      'text-halign': 'center', 'background-color': '#9fb3c8', 'color': '#1d2733',
      'width': labelWidth, 'height': labelHeight, 'padding': 6,
      'shape': 'round-rectangle' } },
    { selector: 'node.host', style: {
      'text-valign': 'top', 'font-size': 14, 'font-weight': 'bold', 'background-color': '#e8eef4',
      'border-width': 2, 'border-color': '#52677f', 'padding': 14 } },
    { selector: 'node.bridge', style: { 'background-color': '#5b7fa6', 'color': '#fff' } },
    { selector: 'node.vlan', style: { 'background-color': '#8e6bb0', 'color': '#fff',
      'shape': 'tag' } },
    { selector: 'node.bond', style: { 'background-color': '#d9a441', 'shape': 'hexagon' } },
    { selector: 'node.member, node.pif', style: { 'background-color': '#cfd8e3',
      'border-width': 2, 'border-color': '#2e8b57', 'font-size': 9 } },
    { selector: 'node.vm', style: { 'background-color': '#4f9d69', 'color': '#fff',
      'shape': 'round-rectangle' } },
    { selector: 'node.vif', style: { 'shape': 'ellipse', 'background-color': '#b7e1c1',
      'font-size': 9, 'border-width': 1, 'border-color': '#4f9d69' } },
    { selector: 'node.down', style: { 'border-color': '#c0392b', 'border-width': 3,
      'background-color': '#f4c7c3' } },
    { selector: 'node:selected', style: { 'border-color': '#1f6feb', 'border-width': 4 } },
    { selector: 'edge', style: { 'width': 2, 'line-color': '#9fb3c8', 'curve-style': 'bezier' } },
    { selector: 'edge[label]', style: { 'label': 'data(label)', 'font-size': 9,
      'text-background-color': '#fff',
      'text-background-opacity': 0.8, 'text-background-padding': 1 } },
    { selector: 'edge.tunnel', style: { 'line-style': 'dashed', 'line-color': '#2e8b57',
      'width': 3, 'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(arc)',
      'control-point-weights': 0.5 } },
    { selector: 'edge.tunnel.down', style: { 'line-color': '#c0392b' } },
    { selector: 'edge.member.down', style: { 'line-color': '#c0392b', 'line-style': 'dotted' } },
  ];

  const cy = cytoscape({ container: document.getElementById('graph'), style: STYLE,
    elements: [], minZoom: 0.05, maxZoom: 4 });
  window.cy = cy; // the drawing's model, for tests and the curious
  window.netctlView = { messages: 0, last: null };
  let laidOut = false;
  let selected = null; // the selected VIF's uuid

  // ------------------------------------------------------------------ formatting
  function rate(bps) {
    if (bps === null || bps === undefined) return '';
    const units = [['G', 1e9], ['M', 1e6], ['k', 1e3]];
    for (const [u, v] of units) if (bps >= v) return (bps / v).toFixed(1) + ' ' + u + 'b/s';
    return Math.round(bps) + ' b/s';
  }
  function rates(row) {
    return row ? '↑' + rate(row.rx_bps) + ' ↓' + rate(row.tx_bps) : '';
  }
  function esc(text) {
    const d = document.createElement('div');
    d.textContent = String(text);
    return d.innerHTML;
  }

  // ------------------------------------------------------------------ message -> elements
  function model(msg) {
    const st = msg.status || {};
    const nets = msg.networks || {};
    const stats = (msg.stats && msg.stats.ports) || [];
    const out = new Map(); // id -> {group, data, classes}
    const node = (id, data, classes) => out.set(id, { group: 'nodes', data: { id, ...data },
      classes });
    const edge = (id, source, target, data, classes) => {
      if (out.has(source) && out.has(target)) {
        out.set(id, { group: 'edges', data: { id, source, target, ...data }, classes });
      }
    };
    const byPort = new Map();
    const byVif = new Map();
    for (const r of stats) {
      byPort.set(r.host + '/' + r.port, r);
      if (r.vif) byVif.set(r.vif, r);
    }
    const switches = new Map();
    for (const s of st.switches || []) switches.set(s.host + '/' + s.bridge, s);
    const nativeNet = {}; // bridge -> network name whose own bridge it is
    for (const [name, n] of Object.entries(nets)) if (n.bridge) nativeNet[n.bridge] = name;
    // the node a network attaches to on a host: its VLAN node, or its bridge
    const netNode = (host, name) => {
      const n = nets[name];
      if (!n) return null;
      const carrier = (n.carriers || {})[host] || n.bridge;
      if (carrier && carrier !== n.bridge) return 'vl:' + host + ':' + name;
      return 'br:' + host + ':' + carrier;
    };

    // what a bridge's OpenFlow side says: its flows, or why this instance shows none
    const bridgeState = (sw) => {
      if (!sw) return '\nno OpenFlow';
      if (sw.flows !== null) return '\n' + sw.flows + ' flows';
      if (sw.role && sw.role.startsWith('slave')) return '\nmastered by another instance';
      return '\ntable not read yet';
    };
    for (const h of st.hosts || []) {
      node('h:' + h.name, { label: h.name + (h.connected ? '' : '\n(OVSDB not connected)'),
        kind: 'host', connected: h.connected }, 'host' + (h.connected ? '' : ' down'));
      // a host another instance masters lists no bridges of its own: its switches do
      const bridges = new Set(h.bridges || []);
      for (const s of st.switches || []) if (s.host === h.name) bridges.add(s.bridge);
      for (const b of [...bridges].sort()) {
        const sw = switches.get(h.name + '/' + b);
        const net = nativeNet[b];
        node('br:' + h.name + ':' + b, { parent: 'h:' + h.name, kind: 'bridge', bridge: b,
          host: h.name, network: net || null, flows: sw ? sw.flows : null,
          label: b + (net ? ' · ' + net : '') + bridgeState(sw) },
          'bridge' + (sw ? '' : ' down'));
      }
    }
    for (const [name, n] of Object.entries(nets)) {
      for (const [host, carrier] of Object.entries(n.carriers || {})) {
        if (carrier === n.bridge || !out.has('h:' + host)) continue;
        const id = 'vl:' + host + ':' + name;
        node(id, { parent: 'h:' + host, kind: 'vlan', network: name, host,
          label: name + '\nVLAN ' + n.bridge + ' on ' + carrier }, 'vlan');
        edge('e:' + id, id, 'br:' + host + ':' + carrier, {}, 'vlan');
      }
    }
    for (const b of st.bonds || []) {
      if (!out.has('h:' + b.host)) continue;
      const id = 'bond:' + b.host + ':' + b.bond;
      node(id, { parent: 'h:' + b.host, kind: 'bond', host: b.host, bond: b.bond,
        mode: b.mode, network: b.network, label: b.bond + ' (' + b.mode + ')' }, 'bond');
      const target = netNode(b.host, b.network);
      if (target) edge('e:' + id, id, target, {}, 'bond');
      for (const [iface, state] of Object.entries(b.members || {})) {
        const mid = 'm:' + b.host + ':' + iface;
        const up = state.includes('link up') && !state.includes('lacp expired');
        const row = byPort.get(b.host + '/' + iface);
        node(mid, { parent: 'h:' + b.host, kind: 'member', host: b.host, iface, state, up,
          rx_bps: row ? row.rx_bps : null, tx_bps: row ? row.tx_bps : null,
          label: iface + '\n' + state + (row ? '\n' + rates(row) : '') },
        'member ' + (up ? 'up' : 'down'));
        edge('e:' + mid, mid, id, { up }, 'member ' + (up ? 'up' : 'down'));
      }
    }
    for (const r of stats) { // NICs outside bonds: only /stats names them
      if (r.kind !== 'pif' || out.has('m:' + r.host + ':' + r.port)) continue;
      const id = 'pif:' + r.host + ':' + r.port;
      if (!out.has('h:' + r.host)) continue;
      node(id, { parent: 'h:' + r.host, kind: 'pif', host: r.host, port: r.port,
        rx_bps: r.rx_bps, tx_bps: r.tx_bps, label: r.port + '\n' + rates(r) }, 'pif');
      edge('e:' + id, id, 'br:' + r.host + ':' + r.bridge, {}, 'pif');
    }
    // the tunnel mesh: one edge per pair of hosts of a private network
    const meshes = new Map();
    for (const t of st.tunnels || []) {
      if (!meshes.has(t.network)) meshes.set(t.network, []);
      meshes.get(t.network).push(t);
    }
    let mesh = 0;
    for (const [name, ends] of meshes) {
      mesh += 1;
      const at = new Map(ends.map((t) => [t.host, t]));
      const hosts = [...at.keys()].sort();
      for (let i = 0; i < hosts.length; i++) {
        for (let j = i + 1; j < hosts.length; j++) {
          const a = at.get(hosts[i]);
          const b = at.get(hosts[j]);
          const pa = (a.peers || []).find((p) => p.peer === b.host);
          const pb = (b.peers || []).find((p) => p.peer === a.host);
          const up = (a.peers || b.peers) ? Boolean((pa && pa.up) || (pb && pb.up)) :
            (a.status || {}).active === 'true' && (b.status || {}).active === 'true';
          const ra = stats.find((r) => r.kind === 'tunnel' && r.host === a.host &&
            r.peer === b.host && r.network === name);
          const id = 'tun:' + name + ':' + a.host + ':' + b.host;
          // arcs, not straight lines through the bridges between: farther apart, higher
          const arc = -(50 + 45 * (j - i - 1) + 20 * mesh);
          edge(id, netNode(a.host, name), netNode(b.host, name), { kind: 'tunnel', arc,
            network: name, up, protocol: a.protocol,
            rx_bps: ra ? ra.rx_bps : null, tx_bps: ra ? ra.tx_bps : null,
            label: name + ' ' + a.protocol + (up ? '' : ' DOWN') +
              (ra ? ' ' + rates(ra) : '') }, 'tunnel ' + (up ? 'up' : 'down'));
        }
      }
    }
    // VMs and their plugged VIFs (an unplugged VIF has no port: not drawn)
    for (const v of st.vifs || []) {
      if (!v.port || !out.has('h:' + v.host)) continue;
      const vm = 'vm:' + v.vm;
      if (!out.has(vm)) {
        node(vm, { parent: 'h:' + v.host, kind: 'vm', vm: v.vm, label: v.vm }, 'vm');
      }
      const row = byVif.get(v.uuid) || byPort.get(v.host + '/' + v.port);
      const id = 'vif:' + v.uuid;
      node(id, { parent: 'h:' + v.host, kind: 'vif', uuid: v.uuid, vm: v.vm, port: v.port,
        sort: v.vm + '/' + String(v.device).padStart(3, '0'),
        network: v.network, locking: v.locking, device: v.device,
        rx_bps: row ? row.rx_bps : null, tx_bps: row ? row.tx_bps : null,
        label: v.port + '\n' + v.network + (row ? '\n' + rates(row) : '') }, 'vif');
      edge('e:' + vm + ':' + v.uuid, vm, id, {}, 'vm');
      const target = netNode(v.host, v.network);
      if (target) edge('e:' + id, id, target, {}, 'vif');
    }
    return out;
  }

  function apply(want) {
    cy.batch(() => {
      cy.elements().forEach((el) => { if (!want.has(el.id())) cy.remove(el); });
      const added = [];
      for (const group of ['nodes', 'edges']) {
        for (const [id, el] of want) {
          if (el.group !== group) continue;
          const have = cy.getElementById(id);
          if (have.nonempty()) {
            if (group === 'nodes' && (have.data('parent') || null) !==
                (el.data.parent || null)) {
              have.move({ parent: el.data.parent || null }); // a migrated VM
              added.push(id);
            }
            have.data(el.data);
            have.classes(el.classes);
          } else {
            cy.add({ group, data: el.data, classes: el.classes });
            added.push(id);
          }
        }
      }
      if (laidOut) place(added);
    });
    if (!laidOut && cy.nodes().nonempty()) arrange();
  }

  // The layout: each host a column, its elements in rows by kind (VMs, VIFs, VLANs,
  // bridges, bonds and NICs, bond members), each row sorted, so the same pool always looks
  // the same. It runs once, when a host appears, and when the operator asks; anything new
  // after that goes to the end of its row and nothing else moves.
  const ROW = { vm: 0, vif: 1, vlan: 2, bridge: 3, bond: 4, pif: 4, member: 5 };
  const DX = 120;
  const DY = 95;
  const rowOf = (n) => ROW[n.data('kind')] ?? 6;
  const sortKey = (n) => String(n.data('sort') || n.id());

  function arrange() {
    laidOut = true;
    let x0 = 0;
    cy.nodes('.host').sort((a, b) => (a.id() < b.id() ? -1 : 1)).forEach((h) => {
      const rows = {};
      h.children().forEach((n) => { (rows[rowOf(n)] = rows[rowOf(n)] || []).push(n); });
      const width = Math.max(1, ...Object.values(rows).map((r) => r.length)) * DX;
      for (const [row, nodes] of Object.entries(rows)) {
        nodes.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1));
        const offset = (width - nodes.length * DX) / 2;
        nodes.forEach((n, i) => n.position({ x: x0 + offset + i * DX + DX / 2, y: row * DY }));
      }
      x0 += width + 100;
    });
    cy.fit(undefined, 20);
  }

  function place(ids) {
    const fresh = new Set(ids);
    const added = ids.map((id) => cy.getElementById(id));
    if (added.some((el) => el.isNode() && el.hasClass('host'))) {
      arrange();
      return;
    }
    const done = new Set();
    for (const el of added) {
      if (!el.isNode() || el.isParent()) continue;
      const row = rowOf(el);
      const settled = (n) => !n.same(el) && (!fresh.has(n.id()) || done.has(n.id()));
      const mates = el.parent().children().filter((n) => settled(n) && rowOf(n) === row);
      const others = el.parent().children().filter(settled);
      const x = mates.nonempty() ? Math.max(...mates.map((n) => n.position('x'))) + DX :
        others.nonempty() ? Math.min(...others.map((n) => n.position('x'))) : 0;
      el.position({ x, y: row * DY });
      done.add(el.id()); // the next new one in this row goes further right
    }
  }

  document.getElementById('relayout').addEventListener('click', arrange);

  // ------------------------------------------------------------------ header and panel
  function header(msg) {
    const c = (msg.status || {}).counts || {};
    const x = (msg.status || {}).xapi || {};
    document.getElementById('summary').textContent =
      `${c.hosts_connected ?? '?'}/${c.hosts ?? '?'} hosts · ${c.switches ?? '?'} switches · ` +
      `${c.vms ?? '?'} VMs · ${c.vifs ?? '?'} VIFs · xapi ${x.connected ? 'connected' :
        'NOT connected'}${x.master ? ' (master ' + x.master + ')' : ''}`;
    const probs = (msg.status || {}).problems || [];
    document.getElementById('problem-count').textContent =
      String((msg.status || {}).problems_total ?? probs.length);
    document.getElementById('problems').innerHTML =
      probs.map((p) => '<li>' + esc(p) + '</li>').join('');
    document.getElementById('rates-note').textContent = msg.stats ?
      `rates: every ${msg.stats.interval} s` + (msg.stats.at ? ', last at ' +
        new Date(msg.stats.at * 1000).toLocaleTimeString() : ', none yet') :
      'no rates: ' + (msg.stats_error || 'no statistics');
    if (!(msg.status || {}).vifs && c.vifs) {
      document.getElementById('rates-note').textContent +=
        ` · ${c.vifs} VIFs: too many to draw; select nothing or use netctl status --vm`;
    }
  }

  function table(rows) {
    return '<table class="kv">' + rows.map(([k, v, num]) => '<tr><th>' + esc(k) +
      '</th><td' + (num ? ' class="num"' : '') + '>' + esc(v) + '</td></tr>').join('') +
      '</table>';
  }

  async function showVif(uuid) {
    const el = cy.getElementById('vif:' + uuid);
    const box = document.getElementById('details');
    if (el.empty()) {
      box.innerHTML = '<h2>Selection</h2><p class="hint">that VIF is gone</p>';
      return;
    }
    const d = el.data();
    let row = null;
    let why = '';
    try {
      const r = await fetch('/status?vm=' + encodeURIComponent(d.vm));
      const doc = await r.json();
      row = (doc.vifs || []).find((v) => v.uuid === uuid) || null;
      if (!r.ok) why = doc.error || r.statusText;
    } catch (e) { why = String(e); }
    let counters = null;
    let statsWhy = '';
    try {
      const r = await fetch('/stats?vm=' + encodeURIComponent(d.vm));
      if (r.ok) counters = ((await r.json()).ports || []).find((p) => p.vif === uuid) || null;
      else statsWhy = r.status === 404 ? 'no statistics in this netctl' : r.statusText;
    } catch (e) { statsWhy = String(e); }
    if (selected !== uuid) return; // another one was selected meanwhile
    const v = row || d;
    const addresses = [['MAC', v.mac ?? '?']];
    for (const k of ['ipv4_allowed', 'ipv6_allowed', 'addresses']) {
      if (v[k] !== undefined) addresses.push([k, [].concat(v[k]).join(', ') || '(none)']);
    }
    let text = '<h2>VIF ' + esc(v.vm) + '/' + esc(v.device) + '</h2>' + table([
      ['port', v.port ?? '-'], ['host', v.host ?? '-'], ['network', v.network],
      ['locking mode', v.locking], ...addresses, ['flows', v.flows ?? '-'],
      ['uuid', uuid]]);
    if (why) text += '<p class="error">/status: ' + esc(why) + '</p>';
    if (counters) {
      text += '<h2>Counters (switch port: rx = sent by the VM)</h2>' + table([
        ['rx', `${counters.rx_packets} pkts · ${counters.rx_bytes} B · ${rate(counters.rx_bps)}`],
        ['tx', `${counters.tx_packets} pkts · ${counters.tx_bytes} B · ${rate(counters.tx_bps)}`],
        ['dropped rx/tx', `${counters.rx_dropped} / ${counters.tx_dropped}`],
        ['errors rx/tx', `${counters.rx_errors} / ${counters.tx_errors}`]]);
      if (counters.drops) {
        text += '<h2>Dropped by locking</h2>' + table(
          Object.entries(counters.drops).map(([k, n]) => [k, String(n), true]));
      }
    } else {
      text += '<p class="hint">counters: ' + esc(statsWhy || 'none yet') + '</p>';
    }
    box.innerHTML = text;
    box.dataset.vif = uuid;
  }

  cy.on('tap', 'node.vif', (evt) => {
    selected = evt.target.data('uuid');
    showVif(selected);
  });
  cy.on('tap', (evt) => {
    if (evt.target === cy) {
      selected = null;
      document.getElementById('details').innerHTML =
        '<h2>Selection</h2><p class="hint">Select a VIF to see its details.</p>';
    }
  });
  window.netctlView.select = (uuid) => { // what a tap does, for tests
    cy.elements().unselect();
    cy.getElementById('vif:' + uuid).select();
    selected = uuid;
    return showVif(uuid);
  };

  // ------------------------------------------------------------------ the stream
  const badge = document.getElementById('stream');
  const source = new EventSource('/events');
  source.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    window.netctlView.messages += 1;
    window.netctlView.last = msg;
    apply(model(msg));
    header(msg);
    badge.textContent = 'live';
    badge.className = 'badge live';
    if (selected && window.netctlView.messages % 5 === 0) showVif(selected);
  };
  source.onerror = () => {
    badge.textContent = 'reconnecting';
    badge.className = 'badge bad';
  };
  source.addEventListener('logout', () => { window.location.href = '/login'; });
})();
