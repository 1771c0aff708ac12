#!/usr/bin/env bash
# The test command: installs what the tests need, builds the solution once, runs every test project
# (tests/*/*.Tests.csproj) and prints per-project totals. The LAST line of output is always
#   N passed, N failed, N skipped
# and the exit code is 0 only when nothing failed and every test project ran and wrote its TRX.
#
# Environment:
#   CI=true                  a tool that cannot be installed counts as a failure (locally it is a warning and the
#                            tests that need it skip)
#   HOOKBROKER_SKIP_DOCKER   set to skip preparing Docker images (see the Docker hook below)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$PWD
configuration=Release
tools_dir="$repo_root/.artifacts/tools"
results_dir="$repo_root/.artifacts/test-results"
buf_version=1.75.0

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Problems found before the tests ran; each one counts as a failure in the totals.
setup_failures=()

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# tool_missing <what> <consequence>: a hard failure on CI, a warning on a developer machine.
tool_missing() {
  if [[ "${CI:-}" == "true" ]]; then
    setup_failures+=("$1 could not be installed ($2)")
  fi
  warn "$1 could not be installed: $2"
}

# buf (for `buf curl`, a grpcurl-like client that uses server reflection) comes from npm into .artifacts/tools.
ensure_buf() {
  local buf="$tools_dir/node_modules/.bin/buf"
  if [[ -x "$buf" && "$("$buf" --version 2>/dev/null || true)" == "$buf_version" ]]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    tool_missing "buf" "npm is not on PATH (install Node.js); the buf curl tests skip"
    return 0
  fi
  log "installing @bufbuild/buf@$buf_version into ${tools_dir#"$repo_root"/} (npm)"
  if npm install --prefix "$tools_dir" --no-audit --no-fund --loglevel=error "@bufbuild/buf@$buf_version" \
    && "$buf" --version >/dev/null 2>&1; then
    return 0
  fi
  tool_missing "buf" "npm install @bufbuild/buf@$buf_version failed; the buf curl tests skip"
}

# ensure_apt_package <command> <package>: installs a Debian package when its command is missing. apt needs root.
ensure_apt_package() {
  local command_name=$1 package=$2
  if command -v "$command_name" >/dev/null 2>&1; then
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    warn "$package is not installed and installing it needs root: run 'sudo apt-get install -y $package' (tests that need it skip)"
    return 0
  fi
  log "installing $package (apt)"
  if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package"; then
    return 0
  fi
  tool_missing "$package" "apt-get install $package failed; tests that need it skip"
}

# The end-to-end test's SMTP server is Debian's aiosmtpd. It is checked with Debian's own python3: a pyenv or venv
# python3 earlier on PATH does not see Debian's packages (the test looks for /usr/bin/python3 first too).
ensure_aiosmtpd() {
  local python=/usr/bin/python3
  [[ -x "$python" ]] || python=python3
  if "$python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    warn "python3-aiosmtpd is not installed and installing it needs root: run 'sudo apt-get install -y python3-aiosmtpd' (the end-to-end email test skips)"
    return 0
  fi
  log "installing python3-aiosmtpd (apt)"
  if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-aiosmtpd \
    && /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    return 0
  fi
  tool_missing "python3-aiosmtpd" "apt-get install python3-aiosmtpd failed; the end-to-end email test skips"
}

ensure_buf
ensure_aiosmtpd
# redis-server (with redis-cli): the benchmark smoke test, the Redis engine's contract tests and the scale-out tests.
ensure_apt_package redis-server redis-server
# nats-server: the benchmark's NATS JetStream comparison, run at a small N by the benchmark smoke test.
ensure_apt_package nats-server nats-server

# Docker: the container tests (tests/HookBroker.Docker.Tests) need a running dockerd and the local stand-ins of the public
# base images, which ../shared/docker/offline-images.sh installs, starts and builds (idempotent, needs root, about two
# minutes on a fresh machine). Without them the Docker tests skip, naming the reason; on CI a failure of the script
# itself counts as a setup failure.
prepare_docker() {
  local script="$repo_root/../shared/docker/offline-images.sh"
  if [[ -n "${HOOKBROKER_SKIP_DOCKER:-}" ]]; then
    log "HOOKBROKER_SKIP_DOCKER is set: the Docker tests skip"
    return 0
  fi
  if [[ ! -f "$script" ]]; then
    warn "no ${script#"$repo_root"/} beside the repository: the Docker tests skip unless Docker and the base images are there"
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    warn "preparing Docker needs root: run 'sudo bash ../shared/docker/offline-images.sh' once (the Docker tests skip until then)"
    return 0
  fi
  log "preparing Docker and the local base images (../shared/docker/offline-images.sh)"
  bash "$script" || tool_missing "docker images" "../shared/docker/offline-images.sh failed; the Docker tests skip"
}
prepare_docker

shopt -s nullglob
projects=(tests/*/*.Tests.csproj)
shopt -u nullglob

rm -rf "$results_dir"
mkdir -p "$results_dir"
exit_codes="$results_dir/exit-codes.tsv"
: >"$exit_codes"

log "building HookBroker.sln ($configuration)"
build_ok=true
dotnet build HookBroker.sln -c "$configuration" -v minimal || build_ok=false

for project in "${projects[@]}"; do
  name=$(basename "$project" .csproj)
  if [[ "$build_ok" != true ]]; then
    printf '%s\t%s\n' "$name" "not run: the build failed" >>"$exit_codes"
    continue
  fi
  log "testing $name"
  rc=0
  # A hung test is aborted after 5 minutes (the run then counts as failed) so CI cannot hang.
  dotnet test "$project" -c "$configuration" --no-build \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results_dir" \
    --blame-hang-timeout 5m --blame-hang-dump-type none || rc=$?
  printf '%s\t%s\n' "$name" "$rc" >>"$exit_codes"
done

log "results (TRX files in ${results_dir#"$repo_root"/})"
# Counts come from each TRX's <Counters>: failed = failed + error + timeout + aborted; skipped = the rest of total
# (xunit's skipped tests are NotExecuted results that the logger counts in total but not in executed or notExecuted).
# A project that wrote no TRX, or whose run failed without a failed test (crash, hang abort), counts as one failure.
python3 - "$results_dir" "$exit_codes" "${setup_failures[@]}" <<'PY'
import os
import sys
import xml.etree.ElementTree as ET

results_dir, exit_codes_path, *setup_failures = sys.argv[1:]
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
totals = {"passed": 0, "failed": 0, "skipped": 0}

for problem in setup_failures:
    print(f"  setup: FAILED: {problem}")
    totals["failed"] += 1

with open(exit_codes_path, encoding="utf-8") as f:
    runs = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]

for name, rc in runs:
    trx = os.path.join(results_dir, f"{name}.trx")
    problems = []
    passed = failed = skipped = 0
    if not os.path.exists(trx):
        problems.append(f"no TRX written (dotnet test: {rc if not rc.isdigit() else 'exit code ' + rc})")
    else:
        root = ET.parse(trx).getroot()
        summary = root.find("t:ResultSummary", ns)
        counters = summary.find("t:Counters", ns) if summary is not None else None
        if counters is None:
            problems.append("TRX has no counters")
        else:
            count = {key: int(value) for key, value in counters.attrib.items() if value.isdigit()}
            passed = count.get("passed", 0)
            failed = sum(count.get(key, 0) for key in ("failed", "error", "timeout", "aborted"))
            skipped = max(0, count.get("total", 0) - passed - failed)
            for result in root.iterfind(".//t:UnitTestResult", ns):
                if result.get("outcome") in ("Failed", "Error", "Timeout", "Aborted"):
                    print(f"  {name}: FAILED {result.get('testName')}")
            outcome = summary.get("outcome", "")
            if failed == 0 and (rc != "0" or outcome in ("Failed", "Aborted", "Error", "Timeout")):
                texts = [t.text.strip() for t in root.iterfind(".//t:RunInfo/t:Text", ns) if t.text and t.text.strip()]
                reason = texts[0].splitlines()[0] if texts else ""
                problems.append(f"the run failed (exit code {rc}, outcome {outcome}) without a failed test"
                                + (f": {reason}" if reason else ""))
    failed += len(problems)
    for problem in problems:
        print(f"  {name}: FAILED: {problem}")
    print(f"  {name}: {passed} passed, {failed} failed, {skipped} skipped")
    totals["passed"] += passed
    totals["failed"] += failed
    totals["skipped"] += skipped

if not runs:
    print("  FAILED: no test project found (tests/*/*.Tests.csproj)")
    totals["failed"] += 1

print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
sys.exit(1 if totals["failed"] else 0)
PY
