// Types of ingest-bare.mjs (plain JavaScript so the compiled build's probe can run it without tsx).
export function saxesPass(pieces: Iterable<Buffer>): void;
export function walkFiles(dir: string): Generator<string>;
export function bareSmall(dir: string): void;
export function bareFile(path: string): Promise<void>;
