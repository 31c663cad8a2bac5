# shellcheck shell=bash
# Shared set-up for ./isobridge and ./scripts/test. Source it, don't run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It finds a Python >= 3.11, creates a virtualenv (installing Debian's python3-venv when
# `python3 -m venv` cannot work), installs the project into it, and knows how to start the
# services that later test suites need (RabbitMQ, PostgreSQL). Every message goes to stderr,
# so the stdout of `./isobridge ...` stays the command's own output.
#
# Non-interactive throughout: no prompt from apt, dpkg or pip, with or without a terminal.
# Colour only on a terminal, and never when CI is set (CI=true) or NO_COLOR is set.

ISOBRIDGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
ISOBRIDGE_MIN_PYTHON="3.11" # keep in step with requires-python in pyproject.toml

# The Erlang runtime flags of every RabbitMQ node these scripts start. The broker shares a
# small machine with the hub, the simulator and the tests: its schedulers neither busy-wait
# (+sbwt none ...) nor stay pinned to one CPU each (+stbt u; RabbitMQ's default, db, pins
# them, so broker work waits behind whatever runs on that CPU while the other one is idle).
# shellcheck disable=SC2034
IB_RABBITMQ_ERL_ARGS="+stbt u +sbwt none +sbwtdcpu none +sbwtdio none"

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

ib_is_ci() {
    [[ -n "${CI:-}" && "${CI:-}" != "false" && "${CI:-}" != "0" ]]
}

# IB_COLOR (1 or 0) is read by the scripts that source this file.
# shellcheck disable=SC2034
if [[ -z "${NO_COLOR:-}" ]] && ! ib_is_ci && [[ -t 2 ]]; then
    IB_COLOR=1
    _ib_bold=$'\033[1m' _ib_red=$'\033[31m' _ib_green=$'\033[32m' _ib_yellow=$'\033[33m'
    _ib_reset=$'\033[0m'
else
    IB_COLOR=0
    _ib_bold='' _ib_red='' _ib_green='' _ib_yellow='' _ib_reset=''
    # Tell the tools too (ruff, pytest, pip and others honour NO_COLOR).
    export NO_COLOR=1
fi

ib_info() { printf '%s\n' "${_ib_bold}==>${_ib_reset} $*" >&2; }
ib_ok() { printf '%s\n' "${_ib_green}ok${_ib_reset}: $*" >&2; }
ib_warn() { printf '%s\n' "${_ib_yellow}warning${_ib_reset}: $*" >&2; }
ib_die() {
    printf '%s\n' "${_ib_red}error${_ib_reset}: $*" >&2
    exit 1
}

# --- running things quietly ---------------------------------------------------------------

# ib_quiet LOGFILE CMD...: run CMD with its output in LOGFILE; on failure, print the log
# and return CMD's exit status. Quiet when all is well, complete when it is not.
ib_quiet() {
    local log=$1 rc=0
    shift
    "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        printf '%s\n' "${_ib_red}failed${_ib_reset} (exit $rc): $*" >&2
        sed 's/^/    /' "$log" >&2
    fi
    return "$rc"
}

# --- apt ------------------------------------------------------------------------------------

IB_APT_UPDATED=0

# ib_apt_install PACKAGE...: install Debian packages, non-interactively, as root (or through
# a password-less sudo). Runs `apt-get update` once per process first.
ib_apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        ib_die "apt-get not found: install $* with this system's package manager, then run again"
    local -a as_root=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            ib_die "installing $* needs root: run 'apt-get install -y $*' as root, then run again"
        fi
    fi
    local log
    log="$(mktemp)"
    if ((IB_APT_UPDATED == 0)); then
        ib_info "apt-get update"
        ib_quiet "$log" "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update ||
            { rm -f "$log"; ib_die "apt-get update failed"; }
        IB_APT_UPDATED=1
    fi
    ib_info "apt-get install -y $*"
    ib_quiet "$log" "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" ||
        { rm -f "$log"; ib_die "apt-get install $* failed"; }
    rm -f "$log"
}

# --- Python -----------------------------------------------------------------------------------

# ib_python_ok PYTHON: true when PYTHON runs and is at least ISOBRIDGE_MIN_PYTHON.
ib_python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$ISOBRIDGE_MIN_PYTHON'.split('.'))))" \
        >/dev/null 2>&1
}

# ib_find_python: set IB_PYTHON to the first Python >= 3.11 among $PYTHON, python3,
# python3.13, python3.12 and python3.11; install Debian's python3 if there is none.
ib_find_python() {
    local candidate path
    local -a candidates=()
    [[ -n "${PYTHON:-}" ]] && candidates+=("$PYTHON")
    candidates+=(python3 python3.13 python3.12 python3.11)
    for candidate in "${candidates[@]}"; do
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        if ib_python_ok "$path"; then
            IB_PYTHON="$path"
            return 0
        fi
    done
    if command -v apt-get >/dev/null 2>&1; then
        ib_warn "no Python >= $ISOBRIDGE_MIN_PYTHON found; installing Debian's python3"
        ib_apt_install python3 python3-venv
        path="$(command -v python3 2>/dev/null)" || true
        if [[ -n "$path" ]] && ib_python_ok "$path"; then
            IB_PYTHON="$path"
            return 0
        fi
    fi
    ib_die "isobridge needs Python >= $ISOBRIDGE_MIN_PYTHON (tried: ${candidates[*]}); set PYTHON=/path/to/python3 to choose one"
}

# ib_install_venv_support: Debian splits venv/ensurepip out of python3 (packages python3-venv
# and python3.X-venv); install them so that `python3 -m venv` works.
ib_install_venv_support() {
    local minor packages=(python3-venv)
    minor="$("$IB_PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    # The versioned package is what the python3.X binary needs when it is not the default.
    if command -v apt-cache >/dev/null 2>&1 && apt-cache show "python$minor-venv" >/dev/null 2>&1; then
        packages+=("python$minor-venv")
    fi
    ib_apt_install "${packages[@]}"
}

# ib_venv_ok VENV: true when VENV has a working Python >= 3.11 with pip.
ib_venv_ok() {
    [[ -x "$1/bin/python" ]] && ib_python_ok "$1/bin/python" &&
        "$1/bin/python" -c 'import pip' >/dev/null 2>&1
}

# ib_install_stamp SPEC: what the install of SPEC depends on. The install is redone when this
# changes: pyproject.toml (dependencies, package list) and the top-level packages on disk (the
# editable install maps each top-level package when it is installed).
ib_install_stamp() {
    local spec=$1
    printf 'spec: %s\n' "$spec"
    sha256sum "$ISOBRIDGE_ROOT/pyproject.toml" | cut -d' ' -f1
    (cd "$ISOBRIDGE_ROOT" && compgen -G '*/__init__.py' | sort) || true
}

# ib_ensure_venv VENV SPEC: make VENV a working virtualenv with `pip install -e SPEC` done
# (SPEC is '.' or '.[test]'). Creates VENV when it is missing, recreates it when it is broken
# (a Python that moved or was removed, a venv made without pip), and reinstalls the project
# only when ib_install_stamp changed, so the second run starts at once.
ib_ensure_venv() {
    local venv=$1 spec=$2
    local name="${venv#"$ISOBRIDGE_ROOT"/}"
    if ! ib_venv_ok "$venv"; then
        if [[ -e "$venv" ]]; then
            ib_warn "$name is broken (no working Python >= $ISOBRIDGE_MIN_PYTHON with pip): recreating it"
            rm -rf -- "$venv"
        fi
        ib_find_python
        ib_info "creating $name with $IB_PYTHON ($("$IB_PYTHON" -c 'import platform; print(platform.python_version())'))"
        local log
        log="$(mktemp)"
        if ! "$IB_PYTHON" -m venv "$venv" >"$log" 2>&1; then
            ib_warn "'$IB_PYTHON -m venv' failed (on Debian: python3-venv is missing):"
            sed 's/^/    /' "$log" >&2
            rm -rf -- "$venv"
            ib_install_venv_support
            ib_quiet "$log" "$IB_PYTHON" -m venv "$venv" ||
                { rm -f "$log"; rm -rf -- "$venv"; ib_die "cannot create $name"; }
        fi
        rm -f "$log"
        ib_venv_ok "$venv" || ib_die "$name was created but has no working pip"
    fi

    local stamp_file="$venv/.isobridge-install" stamp
    stamp="$(ib_install_stamp "$spec")"
    if [[ -f "$stamp_file" && "$(<"$stamp_file")" == "$stamp" ]] &&
        "$venv/bin/python" -c 'import importlib.metadata as m; m.version("isobridge")' >/dev/null 2>&1; then
        return 0
    fi
    ib_info "installing isobridge into $name: pip install -e '$spec'"
    rm -f "$stamp_file"
    (cd "$ISOBRIDGE_ROOT" &&
        ib_quiet "$venv/pip-install.log" "$venv/bin/python" -m pip install --no-input -q -e "$spec") ||
        ib_die "pip install -e '$spec' failed (log: $name/pip-install.log)"
    printf '%s\n' "$stamp" >"$stamp_file"
}

# --- services for the tests that need them ------------------------------------------------
#
# Not called yet: no current test needs a broker or a database. scripts/test calls them from
# start_services once the RabbitMQ routing tests and the SQLAlchemy vault / journal storage
# tests land. Each is idempotent: a service already listening is left as it is.

# ib_port_open HOST PORT: true when something accepts TCP connections on HOST:PORT.
ib_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# ib_wait_port HOST PORT SECONDS: wait until HOST:PORT accepts connections.
ib_wait_port() {
    local host=$1 port=$2 deadline=$((SECONDS + $3))
    until ib_port_open "$host" "$port"; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# ensure_rabbitmq: a RabbitMQ broker on 127.0.0.1:5672 (guest/guest works from loopback).
ensure_rabbitmq() {
    if ib_port_open 127.0.0.1 5672; then
        ib_ok "RabbitMQ is listening on 127.0.0.1:5672"
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/rabbitmq-server ]]; then
        ib_apt_install rabbitmq-server
    fi
    export PATH="$PATH:/usr/sbin"
    # Installing the package may have started the broker already (init script, no systemd).
    if ! rabbitmqctl -q status >/dev/null 2>&1; then
        ib_info "starting RabbitMQ (rabbitmq-server -detached)"
        local log
        log="$(mktemp)"
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-$IB_RABBITMQ_ERL_ARGS}" \
            ib_quiet "$log" rabbitmq-server -detached || { rm -f "$log"; ib_die "rabbitmq-server did not start"; }
        rm -f "$log"
    fi
    # await_startup fails at once until the new node has registered with epmd: retry it.
    local log deadline=$((SECONDS + 120))
    log="$(mktemp)"
    until rabbitmqctl await_startup --timeout 60 >"$log" 2>&1; do
        if ((SECONDS >= deadline)); then
            sed 's/^/    /' "$log" >&2
            rm -f "$log"
            ib_die "RabbitMQ did not finish starting (logs: /var/log/rabbitmq/)"
        fi
        sleep 2
    done
    rm -f "$log"
    ib_wait_port 127.0.0.1 5672 60 || ib_die "RabbitMQ is running but 127.0.0.1:5672 does not answer"
    ib_ok "RabbitMQ is listening on 127.0.0.1:5672"
}

# ensure_postgresql: a PostgreSQL server on 127.0.0.1 (Debian's cluster, e.g. 15/main on
# Debian 12). Sets IB_PG_PORT to its port.
ensure_postgresql() {
    IB_PG_PORT=5432
    if ib_port_open 127.0.0.1 "$IB_PG_PORT"; then
        ib_ok "PostgreSQL is listening on 127.0.0.1:$IB_PG_PORT"
        return 0
    fi
    local cluster=""
    command -v pg_lsclusters >/dev/null 2>&1 && cluster="$(pg_lsclusters --no-header 2>/dev/null | head -n 1)"
    if [[ -z "$cluster" ]]; then
        # Debian's postgresql package creates the cluster (<version> main) as it installs.
        ib_apt_install postgresql
        cluster="$(pg_lsclusters --no-header 2>/dev/null | head -n 1)"
        [[ -n "$cluster" ]] || ib_die "postgresql is installed but has no cluster (pg_createcluster)"
    fi
    local version name port status
    read -r version name port status _ <<<"$cluster"
    IB_PG_PORT=$port
    if [[ "$status" != online* ]]; then
        ib_info "starting PostgreSQL (pg_ctlcluster $version $name start)"
        local log
        log="$(mktemp)"
        ib_quiet "$log" pg_ctlcluster "$version" "$name" start ||
            { rm -f "$log"; ib_die "PostgreSQL $version/$name did not start"; }
        rm -f "$log"
    fi
    ib_wait_port 127.0.0.1 "$IB_PG_PORT" 60 ||
        ib_die "PostgreSQL $version/$name is running but 127.0.0.1:$IB_PG_PORT does not answer"
    ib_ok "PostgreSQL $version/$name is listening on 127.0.0.1:$IB_PG_PORT"
}

# ensure_postgresql_test_database: after ensure_postgresql, a role and a database for the
# tests (created as the postgres superuser over the local socket, idempotently), and
# ISOBRIDGE_TEST_POSTGRES_URL exported for them. Each test works in a schema of its own.
ensure_postgresql_test_database() {
    local role=isobridge password=isobridge database=isobridge_test
    local as_postgres=(runuser -u postgres --)
    command -v runuser >/dev/null 2>&1 || as_postgres=(su postgres -c)
    "${as_postgres[@]}" psql -p "$IB_PG_PORT" -v ON_ERROR_STOP=1 -qtAc \
        "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN PASSWORD '$password'; END IF; END \$\$;" >/dev/null ||
        ib_die "could not create the PostgreSQL role $role"
    if ! "${as_postgres[@]}" psql -p "$IB_PG_PORT" -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
        "${as_postgres[@]}" createdb -p "$IB_PG_PORT" -O "$role" "$database" ||
            ib_die "could not create the PostgreSQL database $database"
    fi
    export ISOBRIDGE_TEST_POSTGRES_URL="postgresql+psycopg://$role:$password@127.0.0.1:$IB_PG_PORT/$database"
    ib_ok "PostgreSQL test database $database (role $role)"
}

# ensure_chromium: Debian's headless-capable chromium and its chromedriver, which the
# operations console's browser tests (tests/gateway/console) drive through Selenium. Where
# they cannot be installed (no root, no apt), those tests skip with the reason; under CI
# that is an error here, and the tests would fail rather than skip.
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        ib_ok "chromium: $(chromium --version 2>/dev/null | head -n 1)"
        return 0
    fi
    # In a subshell: ib_apt_install exits on failure, and outside CI that is not fatal here.
    if ! (ib_apt_install chromium chromium-driver); then
        if ib_is_ci; then
            ib_die "chromium and chromium-driver could not be installed: the browser tests need them"
        fi
        ib_warn "chromium could not be installed: the console's browser tests will be skipped"
        return 0
    fi
    command -v chromedriver >/dev/null 2>&1 ||
        ib_die "chromium-driver is installed but chromedriver is not on PATH"
    ib_ok "chromium: $(chromium --version 2>/dev/null | head -n 1)"
}

# ensure_gnucobol: the GnuCOBOL compiler (cobc), which the fixed-width tests use to write and
# read records with a real COBOL runtime.
ensure_gnucobol() {
    if command -v cobc >/dev/null 2>&1; then
        ib_ok "GnuCOBOL: $(cobc --version | head -n 1)"
        return 0
    fi
    ib_apt_install gnucobol3
    command -v cobc >/dev/null 2>&1 || ib_die "gnucobol3 is installed but cobc is not on PATH"
    ib_ok "GnuCOBOL: $(cobc --version | head -n 1)"
}
