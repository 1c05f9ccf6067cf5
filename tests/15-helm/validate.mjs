// validate.mjs NODE_MODULES FILE... — schema check of rendered Kubernetes manifests.
//
// Every YAML document of every FILE is validated by the kubernetes-models class for its
// apiVersion/kind (core and apps types, Gateway API, Istio CRDs): required fields, types,
// enums, formats. Those validators ignore keys they do not know, so the same run also finds
// UNKNOWN KEYS: the document is validated through a Proxy that records which properties the
// validator looked at; a key that was never looked at in an object the validator walked (and
// did not enumerate as a free-form map) is unknown to the schema, e.g. `imagePullPolicyy`.
// The generated validators skip properties without constraints (GatewayClass
// spec.description), so a key flagged that way is accepted when some type of the same
// package declares a property of that name (from the package's .d.ts files): typos are still
// caught, a real key in the wrong place with no constraints is not.
// Prints one line per problem ("<file> #<n> <Kind>/<name>: <path>: <message>") and
// "validated N documents"; exit 1 on any problem or on a kind it has no schema for.
import { createRequire } from "node:module";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, ...files] = process.argv.slice(2);
if (!nodeModules || files.length === 0) {
  console.error("usage: validate.mjs NODE_MODULES FILE...");
  process.exit(2);
}
const YAML = createRequire(join(nodeModules, "noop.js"))("yaml");

// apiVersion -> [package, directory inside it].
function modulePath(apiVersion) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "") return ["kubernetes-models", version];
  if (group.startsWith("gateway.networking")) return ["@kubernetes-models/gateway-api", `${group}/${version}`];
  if (group.endsWith(".istio.io")) return ["@kubernetes-models/istio", `${group}/${version}`];
  return ["kubernetes-models", `${group}/${version}`];
}

async function modelClass(apiVersion, kind) {
  const [pkg, dir] = modulePath(apiVersion);
  const url = pathToFileURL(join(nodeModules, pkg, dir, "index.js")).href;
  let mod;
  try {
    mod = await import(url);
  } catch {
    return null;
  }
  return mod[kind] ?? null;
}

// Wraps `value` (recursively) so that property reads and enumerations are recorded.
function track(value, seen) {
  if (value === null || typeof value !== "object") return value;
  const info = { read: new Set(), enumerated: false, touched: false };
  seen.set(value, info);
  const children = Array.isArray(value) ? value.map((v) => track(v, seen)) : null;
  const wrapped = {};
  if (!Array.isArray(value)) for (const k of Object.keys(value)) wrapped[k] = track(value[k], seen);
  return new Proxy(value, {
    get(target, key) {
      info.touched = true;
      if (typeof key === "string") info.read.add(key);
      if (Array.isArray(target)) return typeof key === "string" && /^\d+$/.test(key) ? children[+key] : target[key];
      return Object.prototype.hasOwnProperty.call(wrapped, key) ? wrapped[key] : target[key];
    },
    has(target, key) {
      info.touched = true;
      if (typeof key === "string") info.read.add(key);
      return key in target;
    },
    ownKeys(target) {
      info.touched = true;
      info.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownKeys(value, seen, path, out) {
  if (value === null || typeof value !== "object") return;
  const info = seen.get(value);
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownKeys(v, seen, `${path}/${i}`, out));
    return;
  }
  for (const k of Object.keys(value)) {
    if (info && info.touched && !info.enumerated && !info.read.has(k)) out.push(`${path}/${k}: unknown key`);
    else unknownKeys(value[k], seen, `${path}/${k}`, out);
  }
}

// Property names declared by any type of a package (its .d.ts files), built on first use.
const declared = new Map();
function declaredNames(pkg) {
  if (declared.has(pkg)) return declared.get(pkg);
  const names = new Set();
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith(".d.ts")) {
        for (const m of readFileSync(join(dir, e.name), "utf8").matchAll(/^\s*"([^"]+)"\??:/gm)) names.add(m[1]);
      }
    }
  };
  walk(join(nodeModules, pkg));
  if (pkg !== "kubernetes-models") for (const n of declaredNames("kubernetes-models")) names.add(n);
  declared.set(pkg, names);
  return names;
}

let problems = 0;
let count = 0;
for (const file of files) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    const where = `${file} #${i + 1}`;
    if (doc.errors.length) {
      console.log(`${where}: YAML error: ${doc.errors[0].message}`);
      problems++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    count++;
    const id = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      console.log(`${where} ${id}: missing apiVersion or kind`);
      problems++;
      continue;
    }
    const Cls = await modelClass(obj.apiVersion, obj.kind);
    if (!Cls) {
      console.log(`${where} ${id}: no schema for ${obj.apiVersion} ${obj.kind}`);
      problems++;
      continue;
    }
    const seen = new Map();
    const tracked = track(obj, seen);
    try {
      Cls.prototype.validate.call(tracked);
    } catch (e) {
      for (const line of String(e.message ?? e).split("\n")) console.log(`${where} ${id}: ${line}`);
      problems++;
    }
    const names = declaredNames(modulePath(obj.apiVersion)[0]);
    const unknown = [];
    unknownKeys(obj, seen, "", unknown);
    for (let j = unknown.length - 1; j >= 0; j--) {
      const key = unknown[j].replace(/: unknown key$/, "").split("/").pop();
      if (names.has(key)) unknown.splice(j, 1);
    }
    for (const u of unknown) console.log(`${where} ${id}: ${u}`);
    problems += unknown.length;
  }
}
console.log(`validated ${count} documents, ${problems} problems`);
process.exit(problems === 0 && count > 0 ? 0 : 1);
