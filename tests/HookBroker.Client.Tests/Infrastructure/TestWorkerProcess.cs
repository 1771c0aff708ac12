using System.Globalization;
using System.Text.RegularExpressions;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>What the test worker's hook reported: "HOOK started|finished|canceled job=... event=... attempt=...".</summary>
internal sealed record HookReport(string What, string Job, string EventId, int Attempt);

/// <summary>
/// tests/HookBroker.TestWorker as a separate process: the SDK's worker host (<c>AddHookWorker</c>) with one hook,
/// <c>slow_job(job, holdAttempts = 0)</c>, that reports on stdout and holds attempts up to <c>holdAttempts</c> until
/// <see cref="ReleaseAsync"/>. Disposing kills it.
/// </summary>
internal sealed partial class TestWorkerProcess : IAsyncDisposable
{
    private readonly SampleProcess process;

    private TestWorkerProcess(string name, SampleProcess process)
    {
        Name = name;
        this.process = process;
    }

    public string Name { get; }

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    public string LogTail => process.LogTail;

    /// <summary>The test worker built by the test project's reference (ReferenceOutputAssembly=false).</summary>
    public static string Dll => Path.Combine(
        RepoPaths.Root, "tests", "HookBroker.TestWorker", "bin", RepoPaths.Configuration, new DirectoryInfo(AppContext.BaseDirectory).Name, "HookBroker.TestWorker.dll");

    /// <param name="broker">The broker to subscribe to.</param>
    /// <param name="group">The worker's group.</param>
    /// <param name="name">The worker's name (for the broker's admin views and failure messages).</param>
    /// <param name="settings">More worker settings by key below "HookBroker" (e.g. <c>["DrainTimeout"] = "00:00:00.200"</c>).</param>
    public static TestWorkerProcess Start(BrokerProcess broker, string group, string name, IReadOnlyDictionary<string, string>? settings = null) =>
        Start(new Dictionary<string, string> { ["HookBroker__Address"] = broker.GrpcAddress.ToString() }, group, name, settings);

    /// <summary>A worker configured with several broker nodes, as environment variables <c>HookBroker__Addresses__0</c>, <c>__1</c>….</summary>
    public static TestWorkerProcess Start(IReadOnlyList<BrokerProcess> brokers, string group, string name, IReadOnlyDictionary<string, string>? settings = null) =>
        Start(
            brokers.Select((b, i) => (Key: $"HookBroker__Addresses__{i}", Value: b.GrpcAddress.ToString())).ToDictionary(e => e.Key, e => e.Value),
            group,
            name,
            settings);

    private static TestWorkerProcess Start(Dictionary<string, string> addresses, string group, string name, IReadOnlyDictionary<string, string>? settings)
    {
        var environment = new Dictionary<string, string>(addresses)
        {
            ["HookBroker__Group"] = group,
            ["HookBroker__WorkerName"] = name,
            ["HookBroker__ReconnectInitialDelay"] = "00:00:00.050",
            ["HookBroker__ReconnectMaxDelay"] = "00:00:00.500",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            environment["HookBroker__" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        return new TestWorkerProcess(name, SampleProcess.Start(name, Dll, environment));
    }

    /// <summary>Everything the hook reported so far, in order.</summary>
    public IReadOnlyList<HookReport> Reports()
    {
        var reports = new List<HookReport>();
        foreach (var line in process.OutputLines)
        {
            var match = ReportLine().Match(line);
            if (match.Success)
            {
                reports.Add(new HookReport(
                    match.Groups["what"].Value, match.Groups["job"].Value, match.Groups["event"].Value,
                    int.Parse(match.Groups["attempt"].Value, CultureInfo.InvariantCulture)));
            }
        }

        return reports;
    }

    /// <summary>Whether the hook reported <paramref name="what"/> for <paramref name="job"/>.</summary>
    public bool Reported(string what, string job) => Reports().Any(r => r.What == what && r.Job == job);

    /// <summary>Whether the host has stopped (the program printed "HOOK exited").</summary>
    public bool HostStopped => process.OutputLines.Contains("HOOK exited");

    /// <summary>Lets the held hook of <paramref name="job"/> finish.</summary>
    public Task ReleaseAsync(string job) => process.WriteLineAsync($"release {job}");

    /// <summary>SIGKILL: the worker gets no chance to settle anything.</summary>
    public Task KillAsync(CancellationToken cancellationToken) => process.KillAsync(cancellationToken);

    /// <summary>SIGTERM: the host stops gracefully (the worker drains).</summary>
    public Task TerminateAsync(CancellationToken cancellationToken) => process.TerminateAsync(cancellationToken);

    public Task WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken) => process.WaitForExitAsync(timeout, cancellationToken);

    public void ThrowIfExited() => process.ThrowIfExited();

    public ValueTask DisposeAsync() => process.DisposeAsync();

    [GeneratedRegex(@"^HOOK (?<what>\w+) job=(?<job>\S+) event=(?<event>\S*) attempt=(?<attempt>\d+)$")]
    private static partial Regex ReportLine();
}
