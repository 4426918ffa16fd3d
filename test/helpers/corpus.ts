/**
 * Where the test suite finds the report corpus: real aggregate and failure
 * reports copied unchanged from public repositories, kept in the repository
 * (test/fixtures/corpus/SOURCES.md is their notice of sources and licenses)
 * so the suite passes in a clone with nothing beside it.
 */
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = fileURLToPath(new URL('../fixtures/corpus', import.meta.url));
