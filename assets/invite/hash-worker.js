// The whole-file SHA-256 of each file the page uploads, computed off the page's thread
// with @noble/hashes (vendored, see README.md) while the upload runs. Streams the file in
// 4 MiB slices, so memory stays flat whatever the file's size. One file at a time, in the
// order asked.
//
// In:  { id, file }            (a File or Blob)
// Out: { id, type: 'progress', done } … then { id, type: 'done', hex } or
//      { id, type: 'error', message }
import { sha256 } from './sha2.js';

const SLICE = 4 * 1024 * 1024;
let queue = Promise.resolve();

self.onmessage = (event) => {
  const { id, file } = event.data;
  queue = queue.then(() => hashOne(id, file));
};

async function hashOne(id, file) {
  try {
    const hasher = sha256.create();
    for (let offset = 0; offset < file.size; offset += SLICE) {
      const end = Math.min(offset + SLICE, file.size);
      hasher.update(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
      self.postMessage({ id, type: 'progress', done: end });
    }
    const digest = hasher.digest();
    let hex = '';
    for (const b of digest) hex += b.toString(16).padStart(2, '0');
    self.postMessage({ id, type: 'done', hex });
  } catch (err) {
    self.postMessage({ id, type: 'error', message: String((err && err.message) || err) });
  }
}
