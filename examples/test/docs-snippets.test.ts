// Every TypeScript snippet in README.md, docs/ and the packages' READMEs must compile against the code as it is, so
// the docs cannot advertise an API that does not exist. Each ```ts block becomes a module under examples/.snippets
// (relative imports point at examples/src, as the docs' examples do) and the set is type-checked in one program.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, 'examples', '.snippets');

async function markdownFiles(): Promise<string[]> {
  const files = ['README.md'];
  const walk = async (dir: string) => {
    for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  await walk('docs');
  for (const pkg of await readdir(join(root, 'packages'))) {
    const readme = join('packages', pkg, 'README.md');
    if (
      await readFile(join(root, readme)).then(
        () => true,
        () => false,
      )
    )
      files.push(readme);
  }
  return files;
}

interface Snippet {
  readonly source: string;
  readonly line: number;
  readonly code: string;
}

function extract(source: string, text: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    snippets.push({ source, line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return snippets;
}

describe('docs snippets', () => {
  it('every ```ts snippet in README.md, docs/ and package READMEs type-checks', { timeout: 120_000 }, async () => {
    const snippets = (
      await Promise.all((await markdownFiles()).map(async (f) => extract(f, await readFile(join(root, f), 'utf8'))))
    ).flat();
    expect(snippets.length).toBeGreaterThan(10);
    await rm(out, { recursive: true, force: true });
    await mkdir(out, { recursive: true });
    const origin = new Map<string, Snippet>();
    for (const [n, s] of snippets.entries()) {
      const file = join(out, `${s.source.replace(/[^a-zA-Z0-9]+/g, '_')}_L${s.line}_${n}.ts`);
      const code = s.code.replace(/from '\.\/([^']+)'/g, "from '../src/$1'");
      await writeFile(file, `${code}\nexport {};\n`);
      origin.set(file, s);
    }
    const program = ts.createProgram([...origin.keys()], {
      target: ts.ScriptTarget.ES2023,
      lib: ['lib.es2023.d.ts'],
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      customConditions: ['@mlplane/source'],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && origin.has(d.file.fileName))
      .map((d) => {
        const s = origin.get(d.file!.fileName)!;
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${s.source}:${s.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems, `snippets that do not compile (${relative(root, out)} holds them)`).toEqual([]);
  });
});
