# Shared by the scripts: installs what a fresh Debian machine with Swift lacks, only when it is missing.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the build needs: FFTW (found through pkg-config).
ensure_build_deps() {
    local missing=()
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    pkg-config --exists fftw3f 2>/dev/null || missing+=(libfftw3-dev)
    apt_install "${missing[@]}"
}

# A small venv with pinned onnxruntime + numpy for the parity and benchmark tools (not needed by the tests).
ensure_parity_venv() {
    local venv="$ROOT/.venv-parity"
    local stamp="$venv/.requirements"
    if [ ! -x "$venv/bin/python" ] || ! cmp -s "$ROOT/models/requirements-parity.txt" "$stamp"; then
        echo "creating $venv (onnxruntime, numpy)" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/models/requirements-parity.txt" >&2
        cp "$ROOT/models/requirements-parity.txt" "$stamp"
    fi
    PARITY_PYTHON="$venv/bin/python"
}

# Builds a release binary (stt, or the development tools stt-dev) and prints its path.
build_release() {
    local product="${1:-stt}"
    ensure_build_deps
    (cd "$ROOT" && swift build -c release --product "$product" >&2)
    echo "$ROOT/.build/release/$product"
}

# Installs the given Debian packages (each once) with apt-get; nothing when none is given.
apt_install() {
    [ $# -gt 0 ] || return 0
    local packages
    read -r -a packages <<<"$(printf '%s\n' "$@" | sort -u | tr '\n' ' ')"
    echo "installing ${packages[*]} (apt-get)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Another apt-get (an unattended upgrade, a second script) may hold dpkg's locks: wait for it rather than fail.
    local wait=(-o DPkg::Lock::Timeout=600)
    $sudo apt-get "${wait[@]}" update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get "${wait[@]}" install -y -qq "${packages[@]}" >&2
}

# Commands beyond the build (scripts/install-c, scripts/check-c): installs the Debian package of each missing one,
# given as COMMAND:PACKAGE.
ensure_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    apt_install "${missing[@]}"
}

# Files beyond the build (headers for scripts/check-kernels): installs the Debian package of each missing one, given
# as PATH:PACKAGE.
ensure_files() {
    local missing=() pair
    for pair in "$@"; do
        [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    apt_install "${missing[@]}"
}
