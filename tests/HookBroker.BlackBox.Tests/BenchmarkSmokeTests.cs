using System.Text.RegularExpressions;
using HookBroker.BlackBox.Tests.Infrastructure;

namespace HookBroker.BlackBox.Tests;

/// <summary>
/// The benchmark program is not a timed test: CI only runs every scenario at a small N (--smoke) and checks that each
/// printed its result line and lost nothing. The figures themselves are read by people, from a full run. `all` includes
/// e2e on the Redis engine (its own redis-server) and the workload on NATS JetStream (its own nats-server), each printed
/// as skipped where its server is not installed.
/// </summary>
public sealed partial class BenchmarkSmokeTests
{
    [Fact(Timeout = 300_000)]
    public async Task Every_scenario_runs_at_a_small_n_and_loses_nothing()
    {
        var dll = Path.Combine(RepoPaths.Root, "tests", "HookBroker.Benchmarks", "bin", RepoPaths.Configuration, "net10.0", "HookBroker.Benchmarks.dll");

        var result = await ExternalCommand.RunAsync("dotnet", [dll, "all", "--smoke"], TimeSpan.FromMinutes(4), TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var scenarios = lines.Where(l => l.StartsWith("scenario=", StringComparison.Ordinal)).ToList();
        foreach (var expected in new[] { "scenario=e2e engine=hookbroker-sqlite mode=throughput", "scenario=e2e engine=hookbroker-sqlite mode=rate", "scenario=raise", "scenario=fanout", "scenario=subscribers", "scenario=backlog", "scenario=start", "scenario=e2e engine=hookbroker-redis", "scenario=nats-jetstream" })
        {
            Assert.Contains(scenarios, l => l.StartsWith(expected, StringComparison.Ordinal));
        }

        foreach (var line in scenarios.Where(l => !l.Contains("skipped=", StringComparison.Ordinal)))
        {
            Assert.Matches(ResultLine(), line);
            Assert.Contains(" lost=0", line, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"^scenario=\S+ engine=\S+ mode=(throughput|rate) events_per_s=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ p999_ms=[\d.]+ broker_rss_mb=\S+ broker_cpu_us_per_event=\S+ n=\d+ lost=\d+")]
    private static partial Regex ResultLine();
}
