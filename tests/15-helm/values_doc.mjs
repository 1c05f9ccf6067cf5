// values_doc.mjs NODE_MODULES CHART_DIR — every value of values.yaml is documented in the
// chart's README.md table, and every documented key exists.
//
// The README table rows start with a key in backticks: | `multiCluster.clusterName` | ...
// Which keys must have a row is decided by values.schema.json: an object whose schema says
// `additionalProperties: false` has fixed keys, each needing its own row (recursively);
// anything else (a scalar, a list, a free-form map such as `env` or `podAnnotations`) is one
// value and needs one row for its own path. Prints the problems and exits 1 when there are any.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [nodeModules, chart] = process.argv.slice(2);
const YAML = createRequire(join(nodeModules, "noop.js"))("yaml");
const values = YAML.parse(readFileSync(join(chart, "values.yaml"), "utf8")) ?? {};
const schema = JSON.parse(readFileSync(join(chart, "values.schema.json"), "utf8"));
const readme = readFileSync(join(chart, "README.md"), "utf8");

const documented = new Set();
for (const m of readme.matchAll(/^\|\s*`([^`]+)`\s*\|/gm)) documented.add(m[1]);

function resolve(s) {
  while (s && s.$ref) s = s.$ref.replace(/^#\//, "").split("/").reduce((o, k) => o[k], schema);
  return s ?? {};
}

const required = [];
function walk(value, s, path) {
  s = resolve(s);
  const fixed = s.type === "object" && s.additionalProperties === false && s.properties;
  const isObj = value !== null && typeof value === "object" && !Array.isArray(value);
  if (path !== "" && !(fixed && isObj)) {
    required.push(path);
    return;
  }
  if (!isObj) return;
  for (const [k, v] of Object.entries(value)) {
    walk(v, (s.properties ?? {})[k] ?? {}, path === "" ? k : `${path}.${k}`);
  }
}
walk(values, schema, "");

let problems = 0;
for (const p of required) {
  if (!documented.has(p)) {
    console.log(`${chart}: value \`${p}\` is not in README.md's values table`);
    problems++;
  }
}
const known = new Set(required);
for (const d of documented) {
  if (!known.has(d)) {
    console.log(`${chart}: README.md documents \`${d}\`, which values.yaml does not have`);
    problems++;
  }
}
console.log(`${chart}: ${required.length} values, ${documented.size} documented, ${problems} problems`);
process.exit(problems === 0 ? 0 : 1);
