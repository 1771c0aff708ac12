using System.Diagnostics;
using System.Globalization;
using System.Net;
using Grpc.Net.Client;

namespace HookBroker.Tests.Infrastructure;

/// <summary>
/// The real broker (src/Broker's build output) as a separate process on free loopback ports, with SQLite storage in a
/// temporary data directory, or another engine chosen by its settings (<see cref="RedisSettings"/>; the data
/// directory is then created but unused). Ports and data directory stay the same across <see cref="KillAsync"/>,
/// <see cref="StopAsync"/> and <see cref="StartAsync"/>, so a restarted broker reopens the same data. Disposing kills
/// the process and deletes the data directory.
/// </summary>
internal sealed class BrokerProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private const int LogCapacity = 5000;
    private const int LogLinesInMessages = 200;

    private readonly BoundedLog log = new(LogCapacity);
    private readonly IReadOnlyDictionary<string, string> settings;
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private Process? process;
    private int run;

    /// <param name="settings">
    /// Extra broker settings by configuration key below "HookBroker" (e.g. <c>["Groups:orders:AckDeadline"] = "00:00:10"</c>),
    /// passed as <c>HookBroker__*</c> environment variables.
    /// </param>
    public BrokerProcess(IReadOnlyDictionary<string, string>? settings = null)
    {
        this.settings = settings ?? new Dictionary<string, string>();
        DataPath = Directory.CreateTempSubdirectory("hookbroker-test-").FullName;
        var ports = FreePorts.Reserve(2);
        (GrpcPort, HttpPort) = (ports[0], ports[1]);
    }

    /// <summary>
    /// Settings that put the broker on the Redis engine: <c>Storage=Redis</c>, <c>Redis:Configuration</c>,
    /// <c>Redis:KeyPrefix</c> and, when given, <c>Redis:Partitions</c>, plus <paramref name="more"/>. Nodes given the same
    /// configuration and prefix share one broker state.
    /// </summary>
    public static Dictionary<string, string> RedisSettings(
        string configuration, string keyPrefix, int? partitions = null, IReadOnlyDictionary<string, string>? more = null)
    {
        var settings = new Dictionary<string, string>
        {
            ["Storage"] = "Redis",
            ["Redis:Configuration"] = configuration,
            ["Redis:KeyPrefix"] = keyPrefix,
        };
        if (partitions is { } count)
        {
            settings["Redis:Partitions"] = count.ToString(CultureInfo.InvariantCulture);
        }

        foreach (var (key, value) in more ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        return settings;
    }

    public int GrpcPort { get; }

    public int HttpPort { get; }

    /// <summary>The broker's data directory, kept across restarts of this fixture.</summary>
    public string DataPath { get; }

    public Uri GrpcAddress => new($"http://127.0.0.1:{GrpcPort}");

    public Uri HealthAddress => new($"http://127.0.0.1:{HttpPort}/healthz");

    public bool IsRunning => process is { HasExited: false };

    /// <summary>The exit code of the last process once it has exited; null while it runs or before the first start.</summary>
    public int? ExitCode => process is { HasExited: true } exited ? exited.ExitCode : null;

    /// <summary>Lines the broker logged at error or critical level (console formatter prefixes "fail:" and "crit:").</summary>
    public IReadOnlyList<LogLine> ErrorLines =>
        [.. log.Snapshot().Where(l => l.Text.StartsWith("fail:", StringComparison.Ordinal) || l.Text.StartsWith("crit:", StringComparison.Ordinal))];

    /// <summary>The end of the broker's captured stdout and stderr, across every run of this fixture.</summary>
    public string LogTail => log.Tail(LogLinesInMessages);

    /// <summary>Starts the broker and waits until <c>GET /healthz</c> answers 200 (30 s at most).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("The broker is already running.");
        }

        var brokerDll = RepoPaths.BrokerDll;
        if (!File.Exists(brokerDll))
        {
            throw new FileNotFoundException(
                $"The broker is not built for {RepoPaths.Configuration}; build the solution (./scripts/test.sh does).", brokerDll);
        }

        process?.Dispose();
        var thisRun = ++run;
        var startInfo = new ProcessStartInfo(DotnetHost())
        {
            // appsettings.json is read from the content root, which defaults to the working directory.
            WorkingDirectory = Path.GetDirectoryName(brokerDll)!,
        };
        startInfo.ArgumentList.Add(brokerDll);
        ConfigureEnvironment(startInfo.Environment);

        var started = CapturedProcess.Start(startInfo, log, thisRun);
        process = started;
        await WaitUntilHealthyAsync(started, cancellationToken);
    }

    /// <summary>SIGKILLs the broker (and anything it started) and waits until it is gone.</summary>
    public Task KillAsync(CancellationToken cancellationToken) => Signals.KillAsync(process, cancellationToken);

    /// <summary>Sends SIGTERM and waits (30 s at most) for a graceful exit; kills the process and throws if it hangs.</summary>
    public Task StopAsync(CancellationToken cancellationToken) =>
        Signals.StopAsync(process, "the broker", StopTimeout, () => LogTail, cancellationToken);

    /// <summary>Stops the broker gracefully (if it runs) and starts it again on the same ports and data.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken)
    {
        await StopAsync(cancellationToken);
        await StartAsync(cancellationToken);
    }

    /// <summary>A channel to the broker's gRPC port; the caller disposes it. Make a new one after a restart.</summary>
    public GrpcChannel CreateChannel() => GrpcChannel.ForAddress(GrpcAddress);

    /// <summary>Fails the test when the broker logged anything at error or critical level.</summary>
    public void AssertNoErrorsLogged()
    {
        var errors = ErrorLines;
        Assert.True(
            errors.Count == 0,
            $"The broker logged {errors.Count} error(s):\n{string.Join('\n', errors)}\n\nBroker output:\n{LogTail}");
    }

    public async ValueTask DisposeAsync()
    {
        if (process is { HasExited: false } running)
        {
            running.Kill(entireProcessTree: true);
            await running.WaitForExitAsync(CancellationToken.None);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"Broker output (grpc :{GrpcPort}, http :{HttpPort}):\n{LogTail}");
        process?.Dispose();
        http.Dispose();
        try
        {
            Directory.Delete(DataPath, recursive: true);
        }
        catch (IOException e)
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"Could not delete {DataPath}: {e.Message}");
        }
    }

    private void ConfigureEnvironment(IDictionary<string, string?> environment)
    {
        // Production defaults: nothing from the developer's shell may change the broker under test.
        foreach (var key in environment.Keys.ToList())
        {
            if (key.StartsWith("HookBroker__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)
                || key is "DOTNET_ENVIRONMENT" or "DOTNET_URLS")
            {
                environment.Remove(key);
            }
        }

        environment["HookBroker__ListenAddress"] = "127.0.0.1";
        environment["HookBroker__GrpcPort"] = GrpcPort.ToString(CultureInfo.InvariantCulture);
        environment["HookBroker__HttpPort"] = HttpPort.ToString(CultureInfo.InvariantCulture);
        environment["HookBroker__DataPath"] = DataPath;
        environment["HookBroker__Storage"] = "Sqlite";
        foreach (var (key, value) in settings)
        {
            environment["HookBroker__" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }
    }

    private async Task WaitUntilHealthyAsync(Process started, CancellationToken cancellationToken)
    {
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    if (started.HasExited)
                    {
                        // Waiting again lets the output handlers finish, so the message shows the last lines.
                        await started.WaitForExitAsync(cancellationToken);
                        throw new InvalidOperationException(
                            $"The broker exited with code {started.ExitCode} before /healthz answered.\nBroker output:\n{LogTail}");
                    }

                    try
                    {
                        using var response = await http.GetAsync(HealthAddress, cancellationToken);
                        return response.StatusCode == HttpStatusCode.OK;
                    }
                    catch (HttpRequestException)
                    {
                        return false; // not listening yet
                    }
                    catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
                    {
                        return false; // the request's own timeout
                    }
                },
                ReadyTimeout,
                $"GET {HealthAddress} to answer 200",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nBroker output:\n{LogTail}", e);
        }
    }

    /// <summary>The dotnet host running these tests (falls back to `dotnet` on PATH).</summary>
    internal static string DotnetHost()
    {
        var root = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = Path.Combine(root, "dotnet");
        return File.Exists(host) ? host : "dotnet";
    }
}
