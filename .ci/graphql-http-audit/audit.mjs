// The GraphQL-over-HTTP audit of a running /graphql, by tools nobody here wrote:
//
//   1. graphql-http's auditServer (every MUST, SHOULD and MAY of the spec it checks);
//   2. graphql-js's standard introspection query, checked to be the text in
//      graphql/fixtures/introspection.graphql, sent to the server, and its answer turned back
//      into a schema with buildClientSchema (what GraphiQL and codegen tools do).
//
// Usage: node audit.mjs http://127.0.0.1:8080/graphql
// Exits 1 on any MUST or SHOULD failure or when the introspection answer cannot be read; MAY
// failures are listed as notices. tests/e2e/graphql_http.rs runs it against the test server;
// .ci/run installs the pinned modules with `npm ci` (package-lock.json).

import { readFileSync } from 'node:fs';
import { auditServer } from 'graphql-http';
import {
  buildClientSchema,
  getIntrospectionQuery,
  printSchema,
  version as graphqlVersion,
} from 'graphql';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <url of /graphql>');
  process.exit(2);
}

const pkg = JSON.parse(
  readFileSync(new URL('./node_modules/graphql-http/package.json', import.meta.url), 'utf8'),
);
const results = await auditServer({ url });
const by = { ok: [], notice: [], warn: [], error: [] };
for (const r of results) by[r.status].push(r);
const level = { ok: 'pass', notice: 'MAY failed (notice)', warn: 'SHOULD failed', error: 'MUST failed' };

console.log(`graphql-http ${pkg.version} auditServer: ${results.length} audits`);
console.log(
  `  ${by.ok.length} pass, ${by.notice.length} notices (MAY), ` +
    `${by.warn.length} warnings (SHOULD), ${by.error.length} errors (MUST)`,
);
for (const r of results) {
  const mark = r.status === 'ok' ? 'ok  ' : r.status.toUpperCase().padEnd(4);
  console.log(`  ${mark} ${r.id} ${r.name}`);
  if (r.status !== 'ok') {
    let body = '';
    try {
      body = await r.response.text();
    } catch {
      body = '(body already read)';
    }
    console.log(`         ${level[r.status]}: ${r.reason}; status ${r.response.status}`);
    console.log(`         ${body.slice(0, 300)}`);
  }
}

// The standard introspection query, as graphql-js writes it, answered and readable.
let introspectionOk = true;
const fixture = readFileSync(
  new URL('../../graphql/fixtures/introspection.graphql', import.meta.url),
  'utf8',
);
if (fixture !== getIntrospectionQuery()) {
  introspectionOk = false;
  console.log(
    `introspection: graphql/fixtures/introspection.graphql is not graphql-js ${graphqlVersion}'s ` +
      'getIntrospectionQuery() text (regenerate it)',
  );
}
try {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
    },
    body: JSON.stringify({ query: getIntrospectionQuery(), operationName: 'IntrospectionQuery' }),
  });
  const answer = await res.json();
  if (res.status !== 200 || answer.errors) {
    throw new Error(`status ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
  }
  const schema = buildClientSchema(answer.data);
  const sdl = printSchema(schema);
  const types = Object.keys(schema.getTypeMap()).filter((t) => !t.startsWith('__')).length;
  console.log(
    `introspection: graphql-js ${graphqlVersion} getIntrospectionQuery() answered (status ` +
      `${res.status}); buildClientSchema read ${types} types, ${sdl.split('\n').length} lines of SDL`,
  );
} catch (e) {
  introspectionOk = false;
  console.log(`introspection: FAILED: ${e.message}`);
}

const failed = by.warn.length + by.error.length > 0 || !introspectionOk;
console.log(failed ? 'audit FAILED' : 'audit passed: no MUST or SHOULD failure');
process.exit(failed ? 1 : 0);
