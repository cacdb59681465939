# Sourced by the benchmark scripts: checks the tools they need and sets `bin` to the release
# build of runbook (or to $RUNBOOK_BIN). Expects `root` to be the repository root.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "error: \`$tool\` is needed (apt-get install $tool)" >&2; exit 2; }
    done
}

release_bin() {
    if [[ -z "${RUNBOOK_BIN:-}" ]]; then
        cargo build --release --quiet
        RUNBOOK_BIN="$root/target/release/runbook"
    fi
    bin="$(realpath "$RUNBOOK_BIN")"
}
