import { fail } from './errors.js';

/**
 * Parses a request body like Xenon's Gson does: strict JSON first (fast path), then a lenient
 * reading that accepts single-quoted strings, unquoted names and values, `=` or `=>` for `:`,
 * `;` as a separator and `#`, `//`, `/* *\/` comments (the workshop scripts rely on these).
 */
export function parseJsonBody(text: string): unknown {
  if (tooDeep(text)) fail('INVALID_JSON', `Unparseable JSON body: nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch {
    return new LenientParser(text).parseDocument();
  }
}

/**
 * Nesting levels a request body may have. Deeper JSON is refused before anything recursive (this
 * parser, JSON.stringify, replication, validation) meets it: V8's stack ends a few thousand levels down.
 */
export const MAX_JSON_DEPTH = 1000;

/** True when brackets outside strings nest deeper than MAX_JSON_DEPTH (a scan only for texts long enough to). */
function tooDeep(text: string): boolean {
  if (text.length <= MAX_JSON_DEPTH) return false;
  let depth = 0;
  let quote = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === 92 /* \\ */) i++;
      else if (c === quote) quote = 0;
    } else if (c === 34 /* " */ || c === 39 /* ' (lenient) */) quote = c;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > MAX_JSON_DEPTH) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return false;
}

class LenientParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseDocument(): unknown {
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.error('unexpected trailing characters');
    return v;
  }

  private error(what: string): never {
    fail('INVALID_JSON', `Unparseable JSON body: ${what} at position ${this.i}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === ' ' || c === '\n' || c === '\r' || c === '\t') this.i++;
      else if (c === '#' || (c === '/' && s[this.i + 1] === '/')) {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else if (c === '/' && s[this.i + 1] === '*') {
        const end = s.indexOf('*/', this.i + 2);
        if (end < 0) this.error('unterminated comment');
        this.i = end + 2;
      } else return;
    }
  }

  private value(depth = 0): unknown {
    if (depth > 200) this.error('nesting too deep');
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) this.error('unexpected end of input');
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"' || c === "'") return this.string(c);
    return this.literal();
  }

  private object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++;
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      const c = this.s[this.i];
      const key = c === '"' || c === "'" ? this.string(c) : String(this.literal());
      this.ws();
      if (this.s[this.i] === ':') this.i++;
      else if (this.s[this.i] === '=') this.i += this.s[this.i + 1] === '>' ? 2 : 1;
      else this.error("expected ':'");
      if (key === '__proto__') this.error('forbidden key');
      out[key] = this.value(depth + 1);
      this.ws();
      const sep = this.s[this.i];
      if (sep === ',' || sep === ';') this.i++;
      else if (sep !== '}') this.error("expected ',' or '}'");
    }
  }

  private array(depth: number): unknown[] {
    const out: unknown[] = [];
    this.i++;
    for (;;) {
      this.ws();
      if (this.s[this.i] === ']') {
        this.i++;
        return out;
      }
      out.push(this.value(depth + 1));
      this.ws();
      const sep = this.s[this.i];
      if (sep === ',' || sep === ';') this.i++;
      else if (sep !== ']') this.error("expected ',' or ']'");
    }
  }

  private string(quote: string): string {
    let out = '';
    this.i++;
    while (this.i < this.s.length) {
      const c = this.s[this.i++]!;
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.s[this.i++];
      const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '/': '/', '\\': '\\', '"': '"', "'": "'" };
      if (e === 'u') {
        const hex = this.s.slice(this.i, this.i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.error('bad unicode escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.i += 4;
      } else if (e !== undefined && map[e] !== undefined) out += map[e];
      else this.error('bad escape');
    }
    this.error('unterminated string');
  }

  private literal(): unknown {
    const start = this.i;
    while (this.i < this.s.length && !/[\s,;:=}\]{[#'"]/.test(this.s[this.i]!)) {
      if (this.s[this.i] === '/' && (this.s[this.i + 1] === '/' || this.s[this.i + 1] === '*')) break;
      this.i++;
    }
    const text = this.s.slice(start, this.i);
    if (text === '') this.error('unexpected character');
    if (text === 'true') return true;
    if (text === 'false') return false;
    if (text === 'null') return null;
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text)) return Number(text);
    return text;
  }
}
