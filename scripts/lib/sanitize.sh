# scripts/test --sanitize address|thread|undefined: the suite under one sanitizer.
# shellcheck shell=bash
#
# Release mode, as the plain suite runs, in a build folder of its own (.build-sanitize-KIND) so the normal build is
# never rebuilt. Tests start stt and stt-dev as child processes and often expect a failing exit status from them, so a
# report on a child's stderr could pass unseen: every process writes its reports under the build folder instead
# (log_path), and any report there fails the run after the tests finish.

run_sanitized() {
    local kind="${1:-}"
    case "$kind" in
        address | thread | undefined) ;;
        *) echo "usage: scripts/test --sanitize address|thread|undefined [swift test options]" >&2; return 2 ;;
    esac
    shift
    local scratch="$ROOT/.build-sanitize-$kind"
    local reports="$scratch/reports"
    local suppressions="$ROOT/scripts/sanitizers"
    local flags=(--sanitize="$kind")
    rm -rf "$reports"
    mkdir -p "$reports"
    case "$kind" in
        address)
            export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:detect_stack_use_after_return=1"
            export LSAN_OPTIONS="suppressions=$suppressions/lsan.supp:print_suppressions=0"
            ;;
        thread)
            export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$suppressions/tsan.supp"
            ;;
        undefined)
            # swiftc has no undefined-behaviour sanitizer on Linux (Swift itself traps on overflow and out-of-range
            # access): clang's instruments the C targets, and every link brings in its runtime.
            flags=(-Xcc -fsanitize=undefined -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined)
            export UBSAN_OPTIONS="log_path=$reports/ubsan:halt_on_error=1:print_stacktrace=1"
            ;;
    esac
    local status=0
    swift test -c release "${flags[@]}" --scratch-path "$scratch" "$@" || status=$?
    if compgen -G "$reports/*" >/dev/null; then
        cat "$reports"/* >&2
        echo "$kind sanitizer: reports from $(find "$reports" -type f | wc -l) process(es), above" >&2
        return 1
    fi
    return "$status"
}
