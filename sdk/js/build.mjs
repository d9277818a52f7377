// Builds dist/ from the one source module, with no tooling: the ES module as
// is, and an IIFE for a <script> tag that puts the same exports on
// window.skillstream.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = readFileSync(join(here, 'src', 'skillstream.js'), 'utf8');
const exportBlock = /^export \{([^}]*)\};\s*$/m;
const match = src.match(exportBlock);
if (!match || (src.match(/^\s*export\b/gm) || []).length !== 1) {
  throw new Error('src/skillstream.js must end with a single `export { ... };` block');
}
if (/^\s*import\b/m.test(src)) throw new Error('src/skillstream.js must not import anything');
const names = match[1].split(',').map((n) => n.trim()).filter(Boolean);
const version = src.match(/const VERSION = '([^']+)'/)[1];
const body = src.replace(exportBlock, `globalThis.skillstream = Object.freeze({ ${names.join(', ')} });\n`);
const iife = `/*! SkillStream browser SDK ${version} */\n(function () {\n'use strict';\n${body}})();\n`;

const dist = join(here, 'dist');
mkdirSync(dist, { recursive: true });
writeFileSync(join(dist, 'skillstream.iife.js'), iife);
copyFileSync(join(here, 'src', 'skillstream.js'), join(dist, 'skillstream.mjs'));
copyFileSync(join(here, 'src', 'skillstream.d.ts'), join(dist, 'skillstream.d.ts'));
console.log(`built dist/ (skillstream ${version}; IIFE ${iife.length} bytes)`);
