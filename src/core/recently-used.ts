/**
 * `key`'s value in `map`, which is kept in least-recently-used order (a Map iterates in insertion
 * order): moved to the end, or made by `make` and added there. Past `max` entries the least
 * recently used one is dropped, and `dropped` is told of it. The caches and bounded tables of a
 * long-running host (statements, statistics, connection pools, login attempts) all keep to this.
 */
export function useRecent<K, V>(map: Map<K, V>, key: K, make: () => V, max: number, dropped?: (value: V, key: K) => void): V {
  let value = map.get(key);
  if (value !== undefined) map.delete(key);
  else value = make();
  map.set(key, value);
  if (map.size > max) {
    const [oldest, old] = map.entries().next().value as [K, V];
    map.delete(oldest);
    dropped?.(old, oldest);
  }
  return value;
}
