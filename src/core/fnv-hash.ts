const MASK = (1n << 64n) - 1n;
const OFFSET = 4695981039346656037n;
const PRIME = 1099511628211n;

/**
 * Xenon's FNV variant (C/FNVHash.java, as used for generated ids): start at 4695981039346656037;
 * for each UTF-16 unit c: h ^= (c + c) << 8; h *= 1099511628211 (64-bit wrap). Unsigned result.
 */
export function xenonFnv64(text: string): bigint {
  let h = OFFSET;
  for (let i = 0; i < text.length; i++) {
    const c = BigInt(text.charCodeAt(i));
    h ^= ((c + c) << 8n) & MASK;
    h = (h * PRIME) & MASK;
  }
  return h;
}
