// Baseline for the POST benchmark: a bare in-memory node:http server doing the minimum a document
// host must do (parse the JSON body, assign a link, keep it, answer the JSON). Runs in its own process.
import { createServer } from 'node:http';

const store = new Map();
let seq = 0;
const server = createServer((req, res) => {
  let text = '';
  req.on('data', (d) => (text += d));
  req.on('end', () => {
    const doc = { ...JSON.parse(text), documentSelfLink: `/core/examples/${String(seq++).padStart(12, '0')}` };
    const json = JSON.stringify(doc);
    store.set(doc.documentSelfLink, json);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  });
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
