'use strict';
// Drives the clinic upload page in a real headless Chromium with playwright-core, for
// tests/browser_upload.rs. Reads one JSON config (argv[2]) and prints one JSON result line;
// progress notes go to stderr. It asserts nothing itself beyond "the page got there in
// time": the Rust test checks what it reports against the gateway and the files.
//
// Config: { chromium, base, token, spki, big, small: [paths], bad: [{label, token}],
//           screenshot, patch_delay_ms, batches: [{token, folder, refused_files, screenshot}] }
// The page is opened at 127.0.0.1 (the development certificate names it); Chromium trusts
// the gateway's certificate by its SPKI pin only (--ignore-certificate-errors-spki-list),
// not by ignoring certificate errors wholesale.
const { chromium } = require('playwright-core');
const path = require('path');

const cfg = JSON.parse(process.argv[2]);
const note = (...a) => console.error('[browser]', ...a);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function main() {
  const out = { fatal: {}, console_errors: [], csp_violations: [], page_errors: [] };
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [`--ignore-certificate-errors-spki-list=${cfg.spki}`],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
    // CSP violations, reported by the page itself (an init script is not subject to CSP).
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await routes(context);
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
    page.on('pageerror', (e) => out.page_errors.push(String(e)));
    const collectCsp = async () => {
      const v = await page.evaluate(() => window.__csp || []).catch(() => []);
      out.csp_violations.push(...v);
    };

    // Refused invitations: the page says why, in words.
    for (const bad of cfg.bad) {
      // From a blank page each time: a change of fragment alone is no new page load.
      await page.goto('about:blank');
      await page.goto(`${cfg.base}/invite#${bad.token}`);
      await page.waitForSelector('#fatal:not([hidden])', { timeout: 15000 });
      out.fatal[bad.label] = {
        code: await page.getAttribute('#fatal', 'data-code'),
        title: (await page.textContent('#fatal-title')).trim(),
        text: (await page.textContent('#fatal-text')).trim(),
        axe: (await accessibility(page)).violations,
      };
      await collectCsp();
    }

    // The invitation.
    await page.goto('about:blank');
    await page.goto(`${cfg.base}/invite#${cfg.token}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    out.shown = {
      partner: (await page.textContent('#inv-partner')).trim(),
      expires: (await page.textContent('#inv-expires')).trim(),
      files: (await page.textContent('#inv-files')).trim(),
    };
    const big = path.basename(cfg.big);
    const row = `#file-list li[data-name="${big}"]`;
    const sentOf = async () => Number(await page.getAttribute(row, 'data-sent') || 0);

    // 1. The big file, stopped by a reload part-way.
    await page.setInputFiles('#file-input', [cfg.big]);
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && Number(li.dataset.sent || 0) >= 12 * 1024 * 1024;
    }, row, { timeout: 60000 });
    const before = { url: await page.getAttribute(row, 'data-upload-url'), sent: await sentOf() };
    note('reloading at', before.sent);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    out.resume_note = (await page.textContent('#resume-note')).trim();
    out.resume_note_visible = await page.isVisible('#resume-note');
    await page.setInputFiles('#file-input', [cfg.big]);
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && li.dataset.firstOffset !== undefined;
    }, row, { timeout: 30000 });
    out.reload = {
      url_before: before.url,
      sent_before: before.sent,
      url_after: await page.getAttribute(row, 'data-upload-url'),
      first_offset_after: Number(await page.getAttribute(row, 'data-first-offset')),
    };

    // Pause and resume from the keyboard: nothing moves while paused.
    const toggle = `${row} button.toggle`;
    await page.focus(toggle);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${row}[data-state="paused"]`, { timeout: 10000 });
    await sleep(300); // events already under way when the button was pressed settle
    const pausedAt = await sentOf();
    await sleep(1200);
    out.pause = {
      sent_at_pause: pausedAt,
      sent_after_wait: await sentOf(),
      button: (await page.textContent(toggle)).trim(),
      focus_visible: await page.$eval(toggle, (b) => b.matches(':focus-visible')),
    };
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${row}[data-state="uploading"]`, { timeout: 10000 });

    // 2. The network drops part-way, and comes back.
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && Number(li.dataset.sent || 0) >= 32 * 1024 * 1024;
    }, row, { timeout: 60000 });
    await context.setOffline(true);
    const offlineAt = await sentOf();
    note('offline at', offlineAt);
    await page.waitForSelector(`${row}[data-state="offline"]`, { timeout: 30000 });
    out.offline = {
      sent_at_cut: offlineAt,
      state: await page.getAttribute(row, 'data-state'),
      banner: await page.isVisible('#network'),
    };
    await sleep(1500);
    await context.setOffline(false);
    await page.waitForSelector(`${row}[data-state="done"]`, { timeout: 60000 });
    out.offline.url_after = await page.getAttribute(row, 'data-upload-url');

    // 3. More files, one dropped on the page and the others chosen, then the receipt. The
    // page sends at most three at once: count how many are "uploading" at any moment.
    await page.evaluate(() => {
      window.__maxUploading = 0;
      const count = () => {
        const n = document.querySelectorAll('#file-list li[data-state="uploading"]').length;
        window.__maxUploading = Math.max(window.__maxUploading, n);
      };
      new MutationObserver(count).observe(document.getElementById('file-list'),
        { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
    });
    const fs = require('fs');
    const dropped = cfg.small[0];
    const dataTransfer = await page.evaluateHandle(([name, b64]) => {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { lastModified: 1765000000000 }));
      return dt;
    }, [path.basename(dropped), fs.readFileSync(dropped).toString('base64')]);
    await page.dispatchEvent('#drop', 'dragover', { dataTransfer });
    out.drop_highlight = await page.$eval('#drop', (d) => d.classList.contains('over'));
    await page.dispatchEvent('#drop', 'drop', { dataTransfer });
    await page.setInputFiles('#file-input', cfg.small.slice(1));
    const names = [big, ...cfg.small.map((p) => path.basename(p))];
    await page.waitForFunction((n) => {
      const rows = Array.from(document.querySelectorAll('#receipt-rows tr'));
      return rows.length === n && rows.every((r) => {
        const v = r.querySelector('[data-verdict]');
        return v && v.dataset.verdict !== 'pending';
      });
    }, names.length, { timeout: 60000 });
    out.max_uploading = await page.evaluate(() => window.__maxUploading);
    // "5 of 5" shows as soon as five uploads exist; the used-up note once none is
    // unfinished (after the last file's refresh of the invitation).
    await page.waitForFunction(() => /^5 of/.test(document.getElementById('inv-files').textContent));
    await page.waitForSelector('#full-note:not([hidden])', { timeout: 10000 }).catch(() => {});
    out.shown_after = {
      files: (await page.textContent('#inv-files')).trim(),
      full_note: await page.isVisible('#full-note'),
      drop_zone: await page.isVisible('#drop'),
    };
    out.receipt = await page.$$eval('#receipt-rows tr', (rows) => rows.map((r) => ({
      name: r.dataset.name,
      browser: r.querySelector('.browser').textContent,
      server: r.querySelector('.server').textContent,
      verdict: r.querySelector('[data-verdict]').dataset.verdict,
      text: r.querySelector('[data-verdict]').textContent,
    })));
    out.upload_urls = await page.$$eval('#file-list li', (lis) => lis.map((li) => ({
      name: li.dataset.name, url: li.dataset.uploadUrl, state: li.dataset.state,
    })));
    out.local_storage_has_token = await page.evaluate((t) => {
      for (let i = 0; i < localStorage.length; i += 1) {
        const k = localStorage.key(i);
        if (k.includes(t) || (localStorage.getItem(k) || '').includes(t)) return true;
      }
      return false;
    }, cfg.token.split('~').pop());
    await collectCsp();
    out.axe = await accessibility(page);
    await page.screenshot({ path: cfg.screenshot, fullPage: true });
    // The same page on a narrow screen, for the eye.
    await page.setViewportSize({ width: 380, height: 800 });
    out.axe_narrow = await accessibility(page);
    await page.screenshot({ path: cfg.screenshot.replace(/\.png$/, '-narrow.png'), fullPage: true });
    out.screenshot = cfg.screenshot;
    out.batches = [];
    for (const b of cfg.batches || []) out.batches.push(await batchFlow(context, b));
    if (cfg.revoke_mid) out.revoked_mid = await revokedMidUpload(context, cfg.revoke_mid);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

/**
 * A batch invitation: a file whose size differs from the list and a file not on it are
 * refused before anything is sent; the folder's listed files are uploaded, then sealed.
 */
async function batchFlow(context, b) {
  const page = await context.newPage();
  const res = { page_errors: [] };
  page.on('pageerror', (e) => res.page_errors.push(String(e)));
  try {
    await page.goto(`${cfg.base}/invite#${b.token}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    res.expected = await page.$$eval('#expected-list li', (lis) => lis.map((li) => li.textContent));
    await page.setInputFiles('#file-input', b.refused_files);
    res.refused = await page.$$eval('#refused li', (lis) => lis.map((li) => li.textContent));
    await page.setInputFiles('#folder-input', b.folder);
    const members = res.expected.length;
    await page.waitForFunction((n) => {
      const rows = Array.from(document.querySelectorAll('#receipt-rows tr'));
      return rows.length === n && rows.every((r) => {
        const v = r.querySelector('[data-verdict]');
        return v && v.dataset.verdict !== 'pending';
      });
    }, members, { timeout: 60000 });
    res.refused_after_folder = await page.$$eval('#refused li', (lis) => lis.map((li) => li.textContent));
    res.receipt = await page.$$eval('#receipt-rows tr', (rows) => rows.map((r) => ({
      name: r.dataset.name,
      browser: r.querySelector('.browser').textContent,
      server: r.querySelector('.server').textContent,
      verdict: r.querySelector('[data-verdict]').dataset.verdict,
    })));
    res.upload_urls = await page.$$eval('#file-list li', (lis) => lis.map((li) => ({
      name: li.dataset.name, url: li.dataset.uploadUrl, state: li.dataset.state,
    })));
    await page.waitForSelector('#seal:not([disabled])', { timeout: 15000 });
    await page.click('#seal');
    await page.waitForSelector('#verdict[data-state="released"], #verdict[data-state="quarantined"]', { timeout: 60000 });
    res.verdict = {
      state: await page.getAttribute('#verdict', 'data-state'),
      text: (await page.textContent('#verdict')).trim(),
      findings: await page.$$eval('#verdict li', (lis) => lis.map((li) => li.textContent)),
      pick_hidden: !(await page.isVisible('#pick')),
    };
    res.axe = await accessibility(page);
    if (b.screenshot) await page.screenshot({ path: b.screenshot, fullPage: true });
  } finally {
    await page.close();
  }
  return res;
}

/**
 * An invitation revoked while a file uploads: the issuer revokes it (the admin's DELETE,
 * from here, trusting the gateway's CA through NODE_EXTRA_CA_CERTS), and the page stops
 * with the "withdrawn" message at its next request.
 */
async function revokedMidUpload(context, r) {
  const page = await context.newPage();
  try {
    await page.goto(`${cfg.base}/invite#${r.token}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    await page.setInputFiles('#file-input', [r.file]);
    const row = `#file-list li[data-name="${path.basename(r.file)}"]`;
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && Number(li.dataset.sent || 0) >= 4 * 1024 * 1024;
    }, row, { timeout: 30000 });
    const res = await fetch(r.revoke_url, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${r.admin_token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'sent to the wrong clinic' }),
    });
    const revokedAt = Number(await page.getAttribute(row, 'data-sent'));
    await page.waitForSelector('#fatal:not([hidden])', { timeout: 30000 });
    return {
      revoke_status: res.status,
      sent_at_revoke: revokedAt,
      code: await page.getAttribute('#fatal', 'data-code'),
      title: (await page.textContent('#fatal-title')).trim(),
      upload_url: await page.getAttribute(row, 'data-upload-url'),
      pick_visible: await page.isVisible('#pick'),
    };
  } finally {
    await page.close();
  }
}

/**
 * axe-core's WCAG 2.x A and AA rules on the page as it is. The engine is evaluated through
 * the DevTools protocol, which the page's CSP does not govern (the page itself still loads
 * nothing but its own files). Returns the violations (rule, impact, how many elements) and
 * the rules that passed.
 */
async function accessibility(page) {
  const source = require('fs').readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
    return {
      violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help })),
      passed: r.passes.map((p) => p.id),
    };
  });
}

/** Each PATCH waits a little, so that the reload and the cut land part-way. */
async function routes(context) {
  const delay = cfg.patch_delay_ms || 0;
  if (delay === 0) return;
  await context.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await sleep(delay);
    try {
      await route.continue();
    } catch (_) { /* the request was aborted meanwhile (a reload) */ }
  });
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
