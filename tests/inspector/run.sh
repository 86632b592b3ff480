#!/usr/bin/env bash
# Drive the server over stdio with the official MCP Inspector CLI (`mcp-inspector --cli`,
# @modelcontextprotocol/inspector 2.x on Node 22) against the conformance fixture catalogue.
# Needs mcp-inspector and node on PATH: scripts/test-deps.sh, then PATH=$PWD/.deps/bin:$PATH.
# CHM_BIN overrides the binary (default target/debug/cluster-health-mcp).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CHM_BIN:-$root/target/debug/cluster-health-mcp}"
[ -d "$root/.deps/bin" ] && PATH="$root/.deps/bin:$PATH"

die() { echo "inspector: FAIL: $*" >&2; exit 1; }
command -v mcp-inspector >/dev/null || die "mcp-inspector not on PATH (run scripts/test-deps.sh; it installs into .deps/bin)"
command -v node >/dev/null || die "node not on PATH (Node 22 comes with scripts/test-deps.sh)"
[ -x "$bin" ] || die "binary $bin missing or not executable: cargo build first (or set CHM_BIN)"

server=("$bin" --replace-catalogue --specs "$root/tests/conformance/catalogue.yaml" --mode conformance serve --no-reload)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0

# inspect NAME ARGS...: run one inspector call; stdout/stderr/exit code land in $tmp/NAME.{out,err,rc}.
# CHM_BIN is removed from the environment: the server treats every CHM_* variable as a setting
# and refuses to start on an unknown one.
inspect() {
  local name=$1; shift
  local rc=0
  env -u CHM_BIN timeout 60 mcp-inspector --cli "${server[@]}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
  echo "$rc" >"$tmp/$name.rc"
}

# check NAME WANT_RC JS_EXPR DESCRIPTION: the exit code must be WANT_RC and JS_EXPR must be true,
# with `out` = parsed stdout JSON (null if empty) and `err` = stderr text.
check() {
  local name=$1 want_rc=$2 expr=$3 what=$4 rc
  rc="$(cat "$tmp/$name.rc")"
  if [ "$rc" != "$want_rc" ]; then
    echo "--- stdout:" >&2; cat "$tmp/$name.out" >&2; echo "--- stderr:" >&2; tail -20 "$tmp/$name.err" >&2
    die "$what: exit code $rc, expected $want_rc"
  fi
  if ! node -e '
    const fs = require("fs");
    const raw = fs.readFileSync(process.argv[1], "utf8").trim();
    const out = raw ? JSON.parse(raw) : null;
    const err = fs.readFileSync(process.argv[2], "utf8");
    if (!(eval(process.argv[3]))) process.exit(1);
  ' "$tmp/$name.out" "$tmp/$name.err" "$expr"; then
    echo "--- stdout:" >&2; cat "$tmp/$name.out" >&2; echo "--- stderr:" >&2; tail -20 "$tmp/$name.err" >&2
    die "$what: expected $expr"
  fi
  echo "ok  $what"
  passed=$((passed + 1))
}

inspect list -q --method tools/list
check list 0 'out.tools.some(t => t.name === "test_simple_text" && t.description && t.inputSchema.type === "object")' \
  "tools/list contains test_simple_text"

inspect call -q --method tools/call --tool-name test_simple_text
check call 0 'out.isError === false && out.content[0].type === "text" && out.content[0].text === "This is a simple text response for testing."' \
  "tools/call test_simple_text returns its text"

inspect read -q --method resources/read --uri test://static-text
check read 0 'out.contents[0].uri === "test://static-text" && out.contents[0].mimeType === "text/plain" && out.contents[0].text === "This is the content of the static text resource."' \
  "resources/read test://static-text"

inspect prompt -q --method prompts/get --prompt-name test_prompt_with_arguments --prompt-args arg1=hello arg2=world
check prompt 0 'out.messages[0].role === "user" && out.messages[0].content.text === "Prompt with arguments: arg1='"'hello'"', arg2='"'world'"'"' \
  "prompts/get test_prompt_with_arguments renders both arguments"

inspect prompt_missing -q --method prompts/get --prompt-name test_prompt_with_arguments --prompt-args arg1=hello
check prompt_missing 1 'err.includes("needs argument `arg2`")' \
  "prompts/get without required arg2 fails naming it"

inspect error -q --method tools/call --tool-name test_error_handling
check error 5 'out.isError === true && out.content[0].text === "This tool intentionally returns an error for testing" && err.includes("tool_is_error")' \
  "tools/call test_error_handling exits 5 (tool_is_error)"

echo "inspector: $passed checks passed"
