#!/usr/bin/env bash
# Runs the README's test command (`npm test`), or the test files named, on Node 24 LTS, the second
# runtime CI tests (package.json `engines`). test/setup.sh installs Node 24
# from the npm registry's `node` package into .tools/node24.
#
# The suite runs in a copy of the working tree with node_modules of its own:
# native modules (better-sqlite3) are built for one Node ABI, and the
# checkout's stay built for the machine's Node. The checkout's packages are
# copied and npm builds better-sqlite3 again from source (nothing is fetched) against the
# C headers of Node 24.18.1, the headers its published 12.x binaries were
# built with: built against the headers of Node 24.19 or later, better-sqlite3
# 12 aborts the process when the garbage collector frees a statement outside
# JavaScript ("Assertion failed: (env) != nullptr" in
# RemoveEnvironmentCleanupHook; node::ObjectWrap changed in 24.19, fixed in
# better-sqlite3 13, which no longer runs on Node 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools/node24
node24=$tools/node_modules/node/bin/node
if [ ! -x "$node24" ]; then
  echo "Node 24 is not installed: run bash test/setup.sh first" >&2
  exit 1
fi
headers=$root/.tools/node24-headers/node_modules/node-$(uname -s | tr A-Z a-z)-$("$node24" -p process.arch)
if [ ! -f "$headers/include/node/node.h" ]; then
  echo "the Node 24.18.1 headers are not installed: run bash test/setup.sh first" >&2
  exit 1
fi
tree=$tools/tree

# The working tree as it is (uncommitted changes included), without what is built or installed per runtime.
mkdir -p "$tree"
find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
tar -C "$root" --exclude=./node_modules --exclude=./dist --exclude=./dist.next --exclude=./dist.old --exclude=./.tools --exclude=./.git \
  --exclude='./data/*.sqlite*' --exclude=./data/rejected --exclude=./test-output -cf - . | tar -C "$tree" -xf -

cd "$tree"
export PATH="$(dirname "$node24"):$PATH"
echo "node $(node --version) in $tree"
# The lockfile decides; node_modules is reused between runs when it still matches. The checkout's
# packages (test/setup.sh installed them from the lockfile) are copied rather than fetched from the
# registry again, and only better-sqlite3, the one native module, is built again, for Node 24.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.dmarc-rollout-lock; then
  if [ ! -f "$root/node_modules/.package-lock.json" ]; then
    echo "the checkout's node_modules is not installed: run bash test/setup.sh first" >&2
    exit 1
  fi
  rm -rf node_modules
  mkdir node_modules
  cp -a "$root/node_modules/." node_modules/
  rm -rf node_modules/better-sqlite3/build
  npm_config_nodedir=$headers npm_config_build_from_source=true npm rebuild better-sqlite3
  cp package-lock.json node_modules/.dmarc-rollout-lock
fi
if [ $# -eq 0 ]; then
  npm test
else
  # Some test files only (`bash test/node24.sh test/cli-contract.test.ts`), on a fresh build.
  npm run build && node --import tsx --test --test-timeout=900000 "$@"
fi
