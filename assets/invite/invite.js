// The clinic upload page: reads the invitation token from the URL fragment (it never
// leaves this page except as the Authorization header of requests to this origin; it is
// not stored anywhere), shows the invitation, uploads files with tus-js-client with a
// SHA-256 checksum on every PATCH, hashes each whole file in a worker, and ends with a
// receipt that sets the browser's SHA-256 beside the gateway's. For an invitation with a
// batch it matches files to the manifest before sending anything, and offers "Seal and
// send". See docs/clinic-upload.md.
//
// The page states what it is doing in the DOM (each file's <li> carries data-state and
// data-upload-url), which is also what the browser test reads.
(function () {
  'use strict';

  const CHUNK_SIZE = 4 * 1024 * 1024;
  // Files sent at once; the rest wait their turn (the gateway bounds a client's open
  // uploads, and a few streams already fill a clinic's uplink).
  const PARALLEL = 3;
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000];
  const POLL_MS = 1500;
  const TOKEN_SHAPE = /^inv1~[A-Za-z0-9\-_~.]+$/;

  const $ = (id) => document.getElementById(id);
  // The fragment is the token (never sent to the server by the browser); kept in memory.
  const token = location.hash.slice(1);

  /** Readable messages for the problem codes a clinic can meet. */
  const MESSAGES = {
    'invitation.expired': ['This invitation has expired', 'Ask the person who sent it to you for a new invitation.'],
    'invitation.revoked': ['This invitation was withdrawn', 'The sender has cancelled it. Ask them for a new invitation if you still need to send files.'],
    'invitation.file_limit': ['File limit reached', 'This invitation allows no more files.'],
    'invitation.no_batch': ['Nothing to seal', 'This invitation has no list of expected files to seal.'],
    'invitation.unknown': ['This invitation is not known here', 'This gateway has no record of it. Ask the sender for a new invitation.'],
    'invitation.busy': ['The gateway is busy', 'The invitation is being updated. Please try again in a moment.'],
    'invitation.batch_required': ['Not on the list', 'This invitation only takes the files the sender listed.'],
    'upload.quota_exceeded': ['Size limit reached', 'This file would take the invitation over its total size limit.'],
    'upload.too_many_open': ['Too many unfinished uploads', 'Finish or remove some uploads, then try again.'],
    'batch.member_not_listed': ['Not on the list', 'The sender did not list this file.'],
    'batch.member_size': ['Wrong size', "The file's size differs from the size the sender listed."],
    'batch.member_exists': ['Already sent', 'A file with this name was already sent for this invitation.'],
    'batch.not_open': ['Already sealed', 'The files for this invitation were already sealed and sent.'],
    'tus.checksum_mismatch': ['Damaged in transit', 'A piece of the file arrived damaged; it is sent again.'],
    'tus.expired': ['Upload expired', 'This unfinished upload expired on the gateway; add the file again to start over.'],
    'tus.not_found': ['Upload not found', 'The gateway no longer has this upload; add the file again to start over.'],
  };

  const state = {
    invitation: null,
    items: [],
    nextId: 1,
    worker: null,
    sealing: false,
  };

  // === errors ===

  /** A refusal or failure, with a readable title and text; never a stack or raw body. */
  class PageError extends Error {
    constructor(code, title, text, status) {
      super(title);
      this.code = code;
      this.title = title;
      this.text = text;
      this.status = status;
    }
  }

  function problemError(status, body) {
    const code = body && typeof body.code === 'string' ? body.code : '';
    if (MESSAGES[code]) return new PageError(code, MESSAGES[code][0], MESSAGES[code][1], status);
    if (status === 401 || code.startsWith('auth.')) {
      return new PageError(code || 'auth', 'This invitation link is not valid',
        'Check that you opened the whole link you were sent. If it still does not work, ask the sender for a new invitation.', status);
    }
    if (status === 404 && code === 'request.not_found') {
      return new PageError(code, 'Invitations are not available',
        'This gateway does not offer upload invitations.', status);
    }
    if (status === 429 || status === 503) {
      return new PageError(code, 'The gateway is busy', 'Please try again in a few minutes.', status);
    }
    const title = body && typeof body.title === 'string' ? body.title : 'The gateway refused the request';
    return new PageError(code, title, status ? `(HTTP ${status}${code ? ', ' + code : ''})` : '', status);
  }

  async function api(method, path) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (_) {
      throw new PageError('network', 'No connection to the gateway', 'Check your network connection and reload the page.', 0);
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) throw problemError(res.status, body);
    return body;
  }

  function showFatal(err) {
    $('loading').hidden = true;
    $('fatal-title').textContent = err.title || 'This invitation cannot be used';
    $('fatal-text').textContent = err.text || '';
    $('fatal').hidden = false;
    $('fatal').dataset.code = err.code || '';
    for (const id of ['invitation', 'pick', 'uploads']) $(id).hidden = true;
    for (const item of state.items) {
      if (item.upload && !isFinished(item)) item.upload.abort();
    }
  }

  // === formatting ===

  function bytes(n) {
    if (!Number.isFinite(n)) return '';
    const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '';
    if (seconds < 60) return `${Math.ceil(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.ceil((seconds % 3600) / 60)} min`;
  }

  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function b64(buffer) {
    let s = '';
    for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b);
    return btoa(s);
  }

  // === per-chunk checksums ===

  // An httpStack around tus-js-client's own: a PATCH's body is the exact bytes of that
  // request, so its SHA-256 is computed from the body at send time and attached as
  // `Upload-Checksum: sha256 <base64>` (the gateway answers 460 when they differ).
  class ChecksumRequest {
    constructor(inner) { this.inner = inner; this.aborted = false; }
    getMethod() { return this.inner.getMethod(); }
    getURL() { return this.inner.getURL(); }
    setHeader(name, value) { this.inner.setHeader(name, value); }
    getHeader(name) { return this.inner.getHeader(name); }
    setProgressHandler(handler) { this.inner.setProgressHandler(handler); }
    async send(body = null) {
      if (body !== null && body !== undefined) {
        const data = body instanceof Blob ? await body.arrayBuffer() : body;
        const digest = await crypto.subtle.digest('SHA-256', data);
        if (this.aborted) throw new Error('upload paused');
        this.inner.setHeader('Upload-Checksum', `sha256 ${b64(digest)}`);
      }
      return this.inner.send(body);
    }
    abort() { this.aborted = true; return this.inner.abort(); }
    getUnderlyingObject() { return this.inner.getUnderlyingObject(); }
  }

  class ChecksumStack {
    constructor(inner) { this.inner = inner; }
    createRequest(method, url) {
      const req = this.inner.createRequest(method, url);
      return method === 'PATCH' ? new ChecksumRequest(req) : req;
    }
    getName() { return `Checksum(${this.inner.getName()})`; }
  }

  // === the invitation ===

  async function start() {
    if (!TOKEN_SHAPE.test(token)) {
      showFatal(new PageError('link.incomplete', 'This link is incomplete',
        'Open the whole invitation link you were sent, including the part after “#”.'));
      return;
    }
    if (!window.tus || !tus.isSupported || !window.Worker || !window.crypto || !crypto.subtle) {
      showFatal(new PageError('browser', 'This browser cannot upload here',
        'Please use a current version of Firefox, Chrome, Edge or Safari.'));
      return;
    }
    try {
      state.invitation = await api('GET', '/v1/invitation');
    } catch (err) {
      showFatal(err);
      return;
    }
    state.worker = new Worker('/invite/assets/hash-worker.js', { type: 'module' });
    state.worker.onmessage = onHashMessage;
    wireControls();
    renderInvitation();
    renderResumeNote();
    $('loading').hidden = true;
    $('invitation').hidden = false;
    if (!batchClosed()) $('pick').hidden = false;
    document.body.dataset.ready = 'true';
  }

  function batch() { return state.invitation && state.invitation.batch; }
  function batchClosed() { const b = batch(); return Boolean(b && b.state !== 'open'); }

  function renderInvitation() {
    const inv = state.invitation;
    $('inv-partner').textContent = inv.partner;
    $('inv-expires').textContent = when(inv.expires_at);
    $('inv-files').textContent = `${inv.used.files} of ${inv.limits.max_files} used`;
    $('inv-bytes').textContent = `${bytes(inv.used.bytes)} of ${bytes(inv.limits.max_bytes)} used`;
    // Everything this invitation allows is used: say so instead of offering to add more —
    // unless an upload of an earlier visit is unfinished (it counts as used, and adding its
    // file again is how it continues).
    const full = (inv.used.files >= inv.limits.max_files || inv.used.bytes >= inv.limits.max_bytes)
      && rememberedUploads().length === 0;
    $('drop').hidden = full;
    $('full-note').hidden = !full;
    const b = batch();
    if (b) {
      $('expected').hidden = false;
      const list = $('expected-list');
      list.replaceChildren();
      for (const m of b.members) {
        const li = document.createElement('li');
        const done = state.items.some((i) => i.member === m.name && i.state === 'done');
        li.textContent = `${m.name} (${bytes(m.size)})${done ? ' — sent' : ''}`;
        if (done) li.className = 'done';
        list.append(li);
      }
      if (b.state !== 'open') renderVerdict(b);
    }
  }

  /** Unfinished uploads of this invitation that tus-js-client remembers (localStorage). */
  function rememberedUploads() {
    const prefix = `tus::${fingerprintPrefix()}`;
    const names = [];
    try {
      for (let i = 0; i < localStorage.length; i += 1) {
        const key = localStorage.key(i);
        if (!key || !key.startsWith(prefix)) continue;
        const rec = JSON.parse(localStorage.getItem(key) || '{}');
        const md = rec.metadata || {};
        names.push(md.member || md.filename || 'a file');
      }
    } catch (_) { /* storage unavailable: nothing to resume */ }
    return names;
  }

  function renderResumeNote() {
    const names = rememberedUploads().filter((n) => !state.items.some((i) => i.name === n));
    const note = $('resume-note');
    if (names.length === 0) { note.hidden = true; return; }
    note.textContent = `${names.length} upload${names.length > 1 ? 's' : ''} from an earlier visit did not finish (${names.join(', ')}). Add the same file${names.length > 1 ? 's' : ''} again and ${names.length > 1 ? 'they continue' : 'it continues'} where ${names.length > 1 ? 'they' : 'it'} stopped.`;
    note.hidden = false;
  }

  // === adding files ===

  function wireControls() {
    $('choose-files').addEventListener('click', () => $('file-input').click());
    $('choose-folder').addEventListener('click', () => $('folder-input').click());
    for (const id of ['file-input', 'folder-input']) {
      $(id).addEventListener('change', (e) => {
        const files = Array.from(e.target.files || []).map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
        e.target.value = '';
        addFiles(files);
      });
    }
    const drop = $('drop');
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', async (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      addFiles(await droppedFiles(e.dataTransfer));
    });
    $('pause-all').addEventListener('click', () => state.items.forEach(pause));
    $('resume-all').addEventListener('click', () => state.items.forEach(resume));
    $('seal').addEventListener('click', seal);
    $('print').addEventListener('click', () => window.print());
    window.addEventListener('online', () => {
      $('network').hidden = true;
      state.items.filter((i) => i.state === 'offline').forEach(resume);
    });
    window.addEventListener('offline', () => { $('network').hidden = false; });
    // A dropped connection the browser did not notice: try again every few seconds.
    setInterval(() => {
      if (!navigator.onLine) return;
      state.items.filter((i) => i.state === 'offline').forEach(resume);
    }, 5000);
  }

  /** Files and folders dropped on the page, with their paths relative to what was dropped. */
  async function droppedFiles(dt) {
    const entries = Array.from(dt.items || [])
      .map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null))
      .filter(Boolean);
    if (entries.length === 0) return Array.from(dt.files || []).map((f) => ({ file: f, path: f.name }));
    const out = [];
    const walk = async (entry) => {
      if (entry.isFile) {
        const file = await new Promise((ok, no) => entry.file(ok, no));
        out.push({ file, path: entry.fullPath.replace(/^\//, '') });
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batchOf = await new Promise((ok, no) => reader.readEntries(ok, no));
          if (batchOf.length === 0) break;
          for (const child of batchOf) await walk(child);
        }
      }
    };
    for (const e of entries) await walk(e);
    return out;
  }

  /** The manifest member a file is, or a readable reason why it is none. */
  function matchMember(path, file) {
    const members = batch().members;
    const taken = (m) => state.items.some((i) => i.member === m.name && i.state !== 'removed');
    const withoutTop = path.includes('/') ? path.slice(path.indexOf('/') + 1) : path;
    const byName = members.filter((m) => m.name.split('/').pop() === file.name);
    const member = members.find((m) => m.name === path)
      || members.find((m) => m.name === withoutTop)
      || members.find((m) => m.name === file.name)
      || (byName.length === 1 ? byName[0] : null);
    if (!member) return { reason: 'is not on the list of files the sender expects' };
    if (member.size !== file.size) {
      return { reason: `is ${bytes(file.size)}, but the sender listed ${member.name} as ${bytes(member.size)}` };
    }
    if (taken(member)) return { reason: `was already added (as ${member.name})` };
    return { member };
  }

  function addFiles(list) {
    const refused = $('refused');
    refused.replaceChildren();
    const inv = state.invitation;
    const b = batch();
    if (batchClosed()) return;
    // What this visit already started counts against the limits as the server counted
    // them when the page loaded (resumed uploads were counted then).
    const fresh = state.items.filter((i) => !i.resumed);
    let filesLeft = inv.limits.max_files - inv.used.files - fresh.length;
    let bytesLeft = inv.limits.max_bytes - inv.used.bytes - fresh.reduce((n, i) => n + i.size, 0);
    const refuse = (path, why) => {
      const li = document.createElement('li');
      li.textContent = `${path} ${why}. It was not sent.`;
      refused.append(li);
    };
    for (const { file, path } of list) {
      let member = null;
      if (b) {
        const m = matchMember(path, file);
        if (!m.member) { refuse(path, m.reason); continue; }
        member = m.member.name;
      } else if (state.items.some((i) => i.path === path && i.size === file.size && i.state !== 'removed')) {
        refuse(path, 'was already added');
        continue;
      }
      const item = newItem(file, path, member);
      const resumable = rememberedFor(item);
      if (!resumable) {
        if (filesLeft <= 0) { refuse(path, 'would go over the number of files this invitation allows'); continue; }
        if (file.size > bytesLeft) { refuse(path, `would go over the invitation's size limit (${bytes(Math.max(bytesLeft, 0))} left)`); continue; }
        filesLeft -= 1;
        bytesLeft -= file.size;
      }
      item.resumed = resumable;
      state.items.push(item);
      renderItem(item);
      state.worker.postMessage({ id: item.id, file });
      setState(item, 'queued', 'Waiting to start…');
    }
    $('uploads').hidden = state.items.length === 0;
    renderResumeNote();
    pump();
  }

  function fingerprintPrefix() { return `sallyport:${state.invitation.id}:`; }
  function fingerprintOf(item) {
    return `${fingerprintPrefix()}${encodeURIComponent(item.path)}:${item.size}:${item.file.lastModified}`;
  }
  function rememberedFor(item) {
    const prefix = `tus::${fingerprintOf(item)}::`;
    try {
      for (let i = 0; i < localStorage.length; i += 1) {
        if ((localStorage.key(i) || '').startsWith(prefix)) return true;
      }
    } catch (_) { /* no storage */ }
    return false;
  }

  function newItem(file, path, member) {
    return {
      id: state.nextId++,
      file,
      path,
      name: member || path,
      member,
      size: file.size,
      state: 'queued',
      sent: 0,
      samples: [],
      browserSha: null,
      serverSha: null,
      hashError: null,
      upload: null,
      el: null,
    };
  }

  // === uploading ===

  /** Starts queued files while fewer than PARALLEL are on the wire. */
  function pump() {
    const busy = state.items.filter((i) => i.state === 'uploading' || i.state === 'offline').length;
    const waiting = state.items.filter((i) => i.state === 'queued');
    for (const item of waiting.slice(0, Math.max(PARALLEL - busy, 0))) {
      if (item.upload) {
        setState(item, 'uploading', 'Continuing…');
        item.upload.start();
      } else {
        startUpload(item);
      }
    }
  }

  function startUpload(item) {
    const b = batch();
    const metadata = b
      ? { batch: b.id, member: item.member }
      : { filename: item.path, filetype: item.file.type || 'application/octet-stream' };
    const endpoint = new URL(state.invitation.uploads_url, location.origin).href;
    const upload = new tus.Upload(item.file, {
      endpoint,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      headers: { Authorization: `Bearer ${token}` },
      metadata,
      // Keyed by invitation, path, size and modification time: the same file added
      // again after a reload finds its upload URL and continues from the server's offset.
      fingerprint: () => Promise.resolve(fingerprintOf(item)),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      httpStack: new ChecksumStack(new tus.DefaultHttpStack({})),
      // Retried: no answer, a damaged chunk (460), an offset or lock conflict (409, 423:
      // the HEAD that follows settles it), and a busy or failing gateway. Never a refusal
      // (4xx, 507 over quota): that is shown. Offline, nothing is tried until the network
      // is back (see `failed`).
      onShouldRetry(err) {
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (!navigator.onLine) return false;
        return [0, 409, 423, 429, 460, 500, 502, 503, 504].includes(status);
      },
      onUploadUrlAvailable() {
        item.el.dataset.uploadUrl = upload.url || '';
      },
      onProgress(sent, total) { progress(item, sent, total); },
      onSuccess() { finished(item); },
      onError(err) { failed(item, err); },
    });
    item.upload = upload;
    setState(item, 'uploading', item.resumed ? 'Continuing…' : 'Starting…');
    upload.findPreviousUploads().then((previous) => {
      if (previous.length > 0) {
        upload.resumeFromPreviousUpload(previous[0]);
        item.resumed = true;
      }
      if (item.state === 'uploading') upload.start();
    });
  }

  function progress(item, sent, total) {
    // A late event from a request that was under way when the file was paused.
    if (item.state !== 'uploading') return;
    const now = performance.now();
    if (item.firstOffset === undefined) {
      item.firstOffset = sent;
      item.el.dataset.firstOffset = String(sent);
    }
    item.sent = sent;
    item.samples.push([now, sent]);
    while (item.samples.length > 2 && now - item.samples[0][0] > 5000) item.samples.shift();
    const [t0, b0] = item.samples[0];
    const speed = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
    const eta = speed > 0 ? (total - sent) / speed : NaN;
    const bar = item.el.querySelector('progress');
    bar.max = total;
    bar.value = sent;
    const pct = total > 0 ? Math.floor((sent * 100) / total) : 100;
    item.el.dataset.sent = String(sent);
    item.el.querySelector('.state').textContent = `${pct}% · ${bytes(sent)} of ${bytes(total)}`;
    item.el.querySelector('.speed').textContent = speed > 0
      ? `${bytes(Math.round(speed))}/s · ${duration(eta)} left` : '';
  }

  function failed(item, err) {
    if (!navigator.onLine || (err.originalResponse === undefined || err.originalResponse === null)) {
      // No answer at all: the network, not a refusal. Wait for it and continue.
      setState(item, 'offline', 'Waiting for the connection…');
      $('network').hidden = false;
      return;
    }
    let body = null;
    try { body = JSON.parse(err.originalResponse.getBody()); } catch (_) { body = null; }
    const problem = problemError(err.originalResponse.getStatus(), body);
    item.error = problem;
    item.el.dataset.code = problem.code || '';
    setState(item, 'error', `${problem.title}. ${problem.text}`);
    announce(`${item.name}: ${problem.title}`);
    pump();
    if (['invitation.expired', 'invitation.revoked', 'invitation.unknown'].includes(problem.code) || problem.status === 401) {
      showFatal(problem);
    }
  }

  function pause(item) {
    if (!['uploading', 'offline', 'queued'].includes(item.state)) return;
    if (item.upload) item.upload.abort();
    setState(item, 'paused', `Paused at ${bytes(item.sent)}`);
    pump();
  }

  function resume(item) {
    if (!['paused', 'offline'].includes(item.state)) return;
    item.samples = [];
    if (item.state === 'offline') {
      setState(item, 'uploading', 'Continuing…');
      item.upload.start();
      return;
    }
    // A paused file takes its turn again.
    setState(item, 'queued', 'Waiting to continue…');
    pump();
  }

  async function finished(item) {
    setState(item, 'verifying', 'Uploaded. Getting the gateway’s fingerprint…');
    pump();
    item.el.querySelector('progress').value = item.size;
    item.el.querySelector('.speed').textContent = '';
    try {
      item.serverSha = await serverSha(item);
    } catch (err) {
      item.serverError = err;
    }
    setState(item, 'done', 'Uploaded');
    announce(`${item.name} uploaded`);
    renderReceipt();
    await refreshInvitation();
  }

  /** The invitation again, for what is used now (a failure here changes nothing shown). */
  async function refreshInvitation() {
    try {
      state.invitation = await api('GET', '/v1/invitation');
    } catch (_) {
      return;
    }
    renderInvitation();
    renderSeal();
  }

  /** The SHA-256 the gateway computed from the bytes it stored (the upload's ledger). */
  async function serverSha(item) {
    const path = new URL(item.upload.url, location.origin).pathname;
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const ledger = await api('GET', `${path}/ledger`);
      if (ledger && typeof ledger.sha256 === 'string') return ledger.sha256;
      await new Promise((ok) => setTimeout(ok, 500));
    }
    throw new PageError('ledger', 'No fingerprint yet', 'The gateway has not finished the file.');
  }

  function onHashMessage(event) {
    const { id, type } = event.data;
    const item = state.items.find((i) => i.id === id);
    if (!item) return;
    if (type === 'progress') {
      item.el.querySelector('.hash').textContent = `Computing fingerprint: ${Math.floor((event.data.done * 100) / Math.max(item.size, 1))}%`;
    } else if (type === 'done') {
      item.browserSha = event.data.hex;
      item.el.querySelector('.hash').textContent = 'Fingerprint computed';
      renderReceipt();
    } else {
      item.hashError = event.data.message;
      item.el.querySelector('.hash').textContent = 'The fingerprint could not be computed';
      renderReceipt();
    }
  }

  function isFinished(item) { return item.state === 'done'; }

  // === rendering ===

  function renderItem(item) {
    const li = document.createElement('li');
    li.className = 'file';
    li.dataset.name = item.name;
    const name = document.createElement('div');
    name.className = 'name';
    name.id = `file-${item.id}-name`;
    name.textContent = item.name;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = bytes(item.size) + (item.member && item.member !== item.path ? ` · from ${item.path}` : '');
    const bar = document.createElement('progress');
    bar.max = Math.max(item.size, 1);
    bar.value = 0;
    bar.setAttribute('aria-labelledby', name.id);
    const line = document.createElement('div');
    line.className = 'line';
    const st = document.createElement('span');
    st.className = 'state';
    const speed = document.createElement('span');
    speed.className = 'speed meta';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'toggle';
    button.textContent = 'Pause';
    button.setAttribute('aria-describedby', name.id);
    button.addEventListener('click', () => {
      if (item.state === 'paused' || item.state === 'offline') resume(item); else pause(item);
    });
    line.append(st, speed, button);
    const hash = document.createElement('div');
    hash.className = 'hash meta';
    li.append(name, meta, bar, line, hash);
    item.el = li;
    $('file-list').append(li);
  }

  function setState(item, s, text) {
    item.state = s;
    item.el.dataset.state = s;
    item.el.className = `file ${s}`;
    item.el.querySelector('.state').textContent = text;
    const button = item.el.querySelector('.toggle');
    button.hidden = !['uploading', 'paused', 'offline', 'queued'].includes(s);
    button.textContent = s === 'paused' || s === 'offline' ? 'Resume' : 'Pause';
    if (s === 'paused' || s === 'done' || s === 'error') announce(`${item.name}: ${text}`);
    renderToolbar();
  }

  function announce(text) { $('announce').textContent = text; }

  /** "Pause all" and "Resume all" only while there is something to pause or resume. */
  function renderToolbar() {
    $('pause-all').disabled = !state.items.some((i) => ['uploading', 'offline', 'queued'].includes(i.state));
    $('resume-all').disabled = !state.items.some((i) => i.state === 'paused' || i.state === 'offline');
  }

  function renderReceipt() {
    const done = state.items.filter(isFinished);
    if (done.length === 0) return;
    $('receipt').hidden = false;
    const rows = $('receipt-rows');
    rows.replaceChildren();
    for (const item of done) {
      const tr = document.createElement('tr');
      tr.dataset.name = item.name;
      const cell = (label, text, cls) => {
        const td = document.createElement('td');
        td.textContent = text;
        td.dataset.label = label;
        if (cls) td.className = cls;
        tr.append(td);
        return td;
      };
      cell('File', item.name, 'file-name');
      cell('Size', bytes(item.size), 'size');
      cell("Your browser's SHA-256", item.browserSha || (item.hashError ? 'could not be computed' : 'computing…'), 'hash browser');
      cell("Gateway's SHA-256", item.serverSha || (item.serverError ? 'not available' : '…'), 'hash server');
      let verdict = 'pending';
      let text = 'Checking…';
      if (item.browserSha && item.serverSha) {
        verdict = item.browserSha === item.serverSha ? 'match' : 'mismatch';
        text = verdict === 'match' ? '✓ Match' : '✗ MISMATCH — send this file again';
      } else if (item.hashError || item.serverError) {
        verdict = 'unknown';
        text = 'Could not be checked';
      }
      cell('Check', text, verdict).dataset.verdict = verdict;
      rows.append(tr);
    }
    renderSeal();
  }

  function renderSeal() {
    const b = batch();
    if (!b) return;
    // Once sealed, the verdict takes the button's place.
    $('seal-box').hidden = b.state !== 'open';
    const sent = new Set(state.items.filter((i) => isFinished(i) && i.serverSha === i.browserSha).map((i) => i.member));
    const missing = b.members.filter((m) => !sent.has(m.name));
    const button = $('seal');
    button.disabled = state.sealing || missing.length > 0 || b.state !== 'open';
    $('seal-hint').textContent = b.state !== 'open' ? '' : missing.length > 0
      ? `Still to send: ${missing.map((m) => m.name).join(', ')}.`
      : 'All expected files are here. Sealing sends them: nothing can be added after.';
  }

  async function seal() {
    if (state.sealing) return;
    state.sealing = true;
    renderSeal();
    $('verdict').textContent = 'Sealing: the gateway checks every file against the list…';
    try {
      let inv = await api('POST', '/v1/invitation/seal');
      while (inv.batch && (inv.batch.state === 'open' || inv.batch.state === 'sealing')) {
        await new Promise((ok) => setTimeout(ok, POLL_MS));
        inv = await api('GET', '/v1/invitation');
      }
      state.invitation = inv;
      renderInvitation();
      renderVerdict(inv.batch);
      $('pick').hidden = true;
    } catch (err) {
      $('verdict').textContent = `${err.title || 'Sealing failed'}. ${err.text || ''}`;
      $('verdict').className = 'verdict-bad';
    } finally {
      state.sealing = false;
      renderSeal();
    }
  }

  function renderVerdict(b) {
    const box = $('verdict');
    box.replaceChildren();
    box.dataset.state = b.state;
    const p = document.createElement('p');
    if (b.state === 'released') {
      p.textContent = 'Sent. Every file matched the list, and the recipient can now receive them.';
      box.className = 'verdict-ok';
    } else if (b.state === 'quarantined') {
      p.textContent = 'Held back. The files did not match the list, so nothing was released:';
      box.className = 'verdict-bad';
    } else {
      p.textContent = `The files are ${b.state}.`;
      box.className = '';
    }
    box.append(p);
    if (Array.isArray(b.findings) && b.findings.length > 0) {
      const ul = document.createElement('ul');
      for (const f of b.findings) {
        const li = document.createElement('li');
        li.textContent = f;
        ul.append(li);
      }
      box.append(ul);
    }
    $('receipt').hidden = false;
    $('seal-box').hidden = b.state !== 'open';
  }

  // A new invitation link pasted into the same tab: start over with its token.
  window.addEventListener('hashchange', () => location.reload());
  start();
}());
