#!/usr/bin/env bash
# CI: the README's two commands, run the way a newcomer runs them. A fresh clone of this
# checkout, HOME set to an empty folder (so npm's cache, Node 24 and code-server all start
# empty), then:
#   1. `npm ci && npm start` in the background until it prints its URL;
#   2. .ci/newcomer-check.mjs against that URL (workbench, Readers view, hello.apdu, 90 00);
#   3. Ctrl-C (SIGINT to npm start's process group) and a check that no process is left;
#   4. `npm ci && npm test` in the same clone and HOME (the type check first).
# Exits with npm test's status; its last line is npm test's summary.
# `--start-only` stops after step 3 (to try npm start from nothing without the whole suite).
set -uo pipefail
start_only=false; [ "${1:-}" = --start-only ] && start_only=true
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/newcomer.XXXXXX)
export HOME="$work/home"
mkdir -p "$HOME"
unset XDG_CACHE_HOME XDG_CONFIG_HOME XDG_DATA_HOME SMARTCARD_CACHE CODE_SERVER_ENTRY CODE_SERVER_NODE REFSTACK_CACHE
t0=$(date +%s)
say() { printf '[newcomer +%ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
fail() { say "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }
pgid=
# Whatever way this ends: nothing of this run keeps running (code-server has its own process
# group, and its processes carry this run's folder in their command lines), and its folder goes
# unless KEEP=1 (to read what a failed run left).
cleanup() {
  [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null
  pkill -KILL -f "$work/(wb|home)/" 2>/dev/null
  cd /
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

git clone -q "$repo" "$work/wb" || fail "git clone"
# The shared data (reader dumps, pcsc-lite sources) lies beside the checkout, as beside this one.
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"
cd "$work/wb"
say "fresh clone in $PWD, HOME=$HOME (empty)"

log="$work/npm-start.log"
say "running: npm ci && npm start"
# Its own session and process group, as a terminal would give it; Ctrl-C goes to the group.
setsid bash -c 'npm ci --no-audit --no-fund && exec npm start' > >(tee "$log") 2>&1 < /dev/null &
pid=$!
sleep 1
pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
[ -n "$pgid" ] || fail "npm ci && npm start exited at once"

url=
deadline=$(( $(date +%s) + 1800 ))
while [ -z "$url" ]; do
  url=$(grep -aoE 'http://127\.0\.0\.1:[0-9]+/\?folder=[^[:space:][:cntrl:]]+' "$log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || fail "npm start ended before printing its URL (see its output above)"
  [ "$(date +%s)" -lt "$deadline" ] || fail "npm start printed no URL in 30 minutes"
  sleep 2
done
say "npm start is serving: $url"

node .ci/newcomer-check.mjs "$url"
check=$?

say "Ctrl-C: SIGINT to npm start's process group $pgid"
kill -INT -- "-$pgid"
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then
  kill -KILL -- "-$pgid" 2>/dev/null
  fail "npm start did not stop within 30 s of Ctrl-C"
fi
wait "$pid"; status=$?
pgid=  # that group is gone; its id may be reused
say "npm start exited with status $status"
sleep 1
# code-server runs in its own process group (npm start stops it by that group's id); its
# processes, the extension host and the helper all carry this folder in their command lines.
left=$(pgrep -f "$work/(wb|home)/" || true)
if [ -n "$left" ]; then
  ps -o pid,pgid,args -p $(echo $left | tr ' ' ',') || true
  kill -KILL $left 2>/dev/null
  fail "processes were left behind after Ctrl-C"
fi
port=$(echo "$url" | sed -E 's#http://127\.0\.0\.1:([0-9]+)/.*#\1#')
if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; then fail "port $port still answers after Ctrl-C"; fi
say "npm start stopped on Ctrl-C and left no process behind; port $port is closed"
[ "$check" -eq 0 ] || fail "the browser check against npm start's URL failed"
# 130 = ended by SIGINT after stopping what it started (what a shell expects of Ctrl-C).
[ "$status" -eq 130 ] || fail "npm start exited with $status on Ctrl-C (expected 130)"
grep -aq 'SIGINT: stopping code-server' "$log" || fail "npm start did not say it stopped code-server"

if $start_only; then say "npm start from nothing: passed"; exit 0; fi

say "running: npm ci && npm test"
npm ci --no-audit --no-fund || fail "npm ci"
npm run -s typecheck || fail "type check"
npm test 2>&1 | tee "$work/npm-test.log"
status=${PIPESTATUS[0]}
say "npm test exited with $status"
summary=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$work/npm-test.log" | tail -1)
[ -n "$summary" ] || fail "npm test printed no summary line"
echo "$summary"
exit "$status"
