/**
 * Loads a Node built-in by a name bundlers leave alone, so the browser build of the client never
 * tries to resolve `node:fs` and friends: only the file-path forms of upload and download need them.
 */
export function nodeOnly<T>(name: string): Promise<T> {
  return import(/* @vite-ignore */ name) as Promise<T>;
}
