#!/usr/bin/env bash
# One run of every benchmark scenario, as the README's Performance table reports it: builds the benchmark in Release
# once, then runs each scenario in turn (one at a time: they share the machine) and prints every result line.
# Extra arguments (e.g. --n 50000 --warmup 5) are passed to every scenario. Takes about 17 minutes; needs redis-server
# for the Redis Streams comparison and the Redis engine line, nats-server for the NATS JetStream comparison (the
# scenarios that need one say so and skip without it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build -c Release tests/HookBroker.Benchmarks -v quiet -nologo >/dev/null
# The broker as its Docker image has it: published for this platform, ReadyToRun (the start scenario compares the two).
published=$(mktemp -d)
trap 'rm -rf "$published"' EXIT
dotnet publish src/Broker/HookBroker.Broker.csproj -c Release --use-current-runtime --self-contained false -p:UseAppHost=false \
  -o "$published/ready-to-run" -v quiet -nologo >/dev/null
bench() {
  echo "# $*"
  dotnet tests/HookBroker.Benchmarks/bin/Release/net10.0/HookBroker.Benchmarks.dll "$@" | grep -E '^(scenario=|ratio_|round_ratios_)'
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), .NET $(dotnet --version)"
# The throughput comparisons run four rounds of each system, alternating: one round's ratio moves by several percent
# from the next on a shared VM, so the ratio is of the means and each round's is printed too.
bench e2e --compare redis --rounds 4 "$@"
bench e2e --compare redis --rounds 4 --producer raw --consumer raw "$@"
bench e2e --compare nats "$@"
bench e2e --rate 5000 --compare redis "$@"
bench e2e --rate 5000 --compare redis --producer raw --consumer raw "$@"
bench raise --bare --rounds 3 "$@"
bench fanout "$@"
bench subscribers "$@"
bench backlog "$@"
bench start --broker "build,$published/ready-to-run" --rounds 3 "$@"
bench e2e --engine redis --compare redis --producer raw --consumer raw "$@"
bench e2e --compare redis --durability fsync "$@"
