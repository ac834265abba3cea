/**
 * Prints the longest functions outside tests and benchmarks, longest first, so "no function over
 * ~120 lines" can be checked by anyone: `npx tsx scripts/longest-functions.ts [count] [--max N]`.
 * With --max, exits 1 when any function is longer than N lines.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

const ROOTS = ["gateway", "agent", "client", "cli", "schemas", "scripts"];
const SKIP = /(^|\/)(node_modules|generated|test|bench)(\/|$)/;

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (SKIP.test(path)) {
      continue;
    }
    if (statSync(path).isDirectory()) {
      yield* sourceFiles(path);
    } else if (path.endsWith(".ts") && !path.endsWith(".d.ts")) {
      yield path;
    }
  }
}

type Found = { file: string; name: string; line: number; lines: number };

function functionsOf(file: string): Found[] {
  const text = readFileSync(file, "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Found[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({ file: relative(process.cwd(), file), name: nameOf(node), line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function nameOf(node: ts.Node): string {
  const named = node as { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) {
    return named.name.text;
  }
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) {
    return parent.name.text;
  }
  if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) {
    return parent.name.text;
  }
  return "(anonymous)";
}

const args = process.argv.slice(2);
const maxAt = args.indexOf("--max");
const max = maxAt >= 0 ? Number(args[maxAt + 1]) : undefined;
const count = Number(args.find((a, i) => /^\d+$/.test(a) && i !== maxAt + 1) ?? 10);
const all = ROOTS.flatMap((root) => [...sourceFiles(root)]).flatMap(functionsOf);
all.sort((a, b) => b.lines - a.lines);
for (const f of all.slice(0, count)) {
  console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`);
}
if (max !== undefined && all.some((f) => f.lines > max)) {
  console.error(`${all.filter((f) => f.lines > max).length} function(s) longer than ${max} lines`);
  process.exit(1);
}
