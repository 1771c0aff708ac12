using System.Diagnostics;
using System.Globalization;

namespace HookBroker.Tests.Infrastructure;

/// <summary>How a test's redis-server persists its data (snapshots are always off: <c>save ""</c>).</summary>
internal enum RedisPersistence
{
    /// <summary><c>appendonly no</c>: nothing survives a kill (fastest; for tests that never restart Redis).</summary>
    None,

    /// <summary><c>appendonly yes</c>, <c>appendfsync everysec</c>: what the README recommends to users.</summary>
    AppendOnlyEverySec,

    /// <summary><c>appendonly yes</c>, <c>appendfsync always</c>: every write fsynced before Redis answers.</summary>
    AppendOnlyAlways,
}

/// <summary>
/// A real <c>redis-server</c> (Debian's package) as a separate process on a free loopback port, with its own temporary
/// directory. Port and directory stay the same across <see cref="KillAsync"/>, <see cref="StopAsync"/> and
/// <see cref="StartAsync"/>, so a restarted server reloads its append-only file. Disposing kills the process and deletes
/// the directory. Tests call <see cref="StartNewAsync"/>, which skips the test when redis-server is not installed.
/// </summary>
internal sealed class RedisServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(10);
    private static readonly Lazy<string?> LazyServerPath = new(() => FindOnPath("redis-server"));
    private static readonly Lazy<string?> LazyCliPath = new(() => FindOnPath("redis-cli"));
    private static readonly SemaphoreSlim SharedGate = new(1, 1);
    private static RedisServerProcess? shared;
    private const int LogCapacity = 2000;
    private const int LogLinesInMessages = 100;

    private readonly BoundedLog log = new(LogCapacity);
    private readonly IReadOnlyList<string> extraArguments;
    private Process? process;
    private int run;

    /// <param name="persistence">Append-only file or none (RDB snapshots are always off).</param>
    /// <param name="port">The port to listen on; a free loopback port when null.</param>
    /// <param name="extraArguments">More <c>--name value</c> arguments (e.g. cluster mode), appended last.</param>
    public RedisServerProcess(RedisPersistence persistence = RedisPersistence.None, int? port = null, IReadOnlyList<string>? extraArguments = null)
    {
        Persistence = persistence;
        Port = port ?? FreePorts.Reserve(1)[0];
        this.extraArguments = extraArguments ?? [];
        DataPath = Directory.CreateTempSubdirectory("hookbroker-redis-").FullName;
    }

    /// <summary>Why redis-server or redis-cli cannot be used here; null when both are installed.</summary>
    public static string? NotInstalledReason =>
        LazyServerPath.Value is null ? "redis-server is not installed: no redis-server on PATH (apt-get install redis-server; .ci/run does)"
        : LazyCliPath.Value is null ? "redis-server is not installed: redis-cli is missing (apt-get install redis-tools; .ci/run does)"
        : null;

    public RedisPersistence Persistence { get; }

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration string (<c>HookBroker:Redis:Configuration</c>).</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>The server's working directory (<c>--dir</c>): append-only files, cluster config.</summary>
    public string DataPath { get; }

    public bool IsRunning => process is { HasExited: false };

    /// <summary>The end of the server's log (it logs to stdout), across every run of this fixture.</summary>
    public string LogTail => log.Tail(LogLinesInMessages);

    /// <summary>Skips the current test (xunit v3 <see cref="Assert.Skip"/>) when redis-server or redis-cli is missing.</summary>
    public static void SkipIfNotInstalled()
    {
        if (NotInstalledReason is { } reason)
        {
            Assert.Skip(reason);
        }
    }

    /// <summary>A key prefix no other test uses (<c>HookBroker:Redis:KeyPrefix</c>), so tests can share one server.</summary>
    public static string NewKeyPrefix(string hint = "test") => $"hb-{hint}-{Guid.NewGuid():N}";

    /// <summary>Skips the test when redis-server is missing; otherwise starts a new server and waits until it answers PING.</summary>
    public static async Task<RedisServerProcess> StartNewAsync(RedisPersistence persistence, CancellationToken cancellationToken)
    {
        SkipIfNotInstalled();
        var server = new RedisServerProcess(persistence);
        try
        {
            await server.StartAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// One server (no persistence) shared by every test of this test process that asks for it, started on first use and
    /// killed when the process exits; tests keep apart by key prefix (<see cref="NewKeyPrefix"/>). Never kill or stop it.
    /// Skips the test when redis-server is missing.
    /// </summary>
    public static async Task<RedisServerProcess> GetSharedAsync(CancellationToken cancellationToken)
    {
        SkipIfNotInstalled();
        await SharedGate.WaitAsync(cancellationToken);
        try
        {
            if (shared is { IsRunning: true })
            {
                return shared;
            }

            if (shared is not null)
            {
                throw new InvalidOperationException($"The shared redis-server exited (it must never be killed or stopped).\nRedis log:\n{shared.LogTail}");
            }

            var server = new RedisServerProcess(RedisPersistence.None);
            await server.StartAsync(cancellationToken);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => server.KillAtExit();
            shared = server;
            return server;
        }
        finally
        {
            SharedGate.Release();
        }
    }

    /// <summary>Starts redis-server and waits until it answers PING with PONG (after loading its data; 30 s at most).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("redis-server is already running.");
        }

        var serverPath = LazyServerPath.Value ?? throw new InvalidOperationException(NotInstalledReason);
        process?.Dispose();
        var thisRun = ++run;
        var startInfo = new ProcessStartInfo(serverPath) { WorkingDirectory = DataPath };
        foreach (var argument in Arguments())
        {
            startInfo.ArgumentList.Add(argument);
        }

        var started = CapturedProcess.Start(startInfo, log, thisRun);
        process = started;
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    if (started.HasExited)
                    {
                        await started.WaitForExitAsync(cancellationToken);
                        throw new InvalidOperationException(
                            $"redis-server on port {Port} exited with code {started.ExitCode} before answering PING.\nRedis log:\n{LogTail}");
                    }

                    var ping = await TryCliAsync(["PING"], cancellationToken);
                    return ping is { ExitCode: 0 } && ping.StdOut.Trim() == "PONG";
                },
                ReadyTimeout,
                $"redis-server on port {Port} to answer PING",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nRedis log:\n{LogTail}", e);
        }
    }

    /// <summary>SIGKILLs the server and waits until it is gone (what was not yet written to its append-only file is lost).</summary>
    public Task KillAsync(CancellationToken cancellationToken) => Signals.KillAsync(process, cancellationToken);

    /// <summary>Sends SIGTERM (redis-server flushes its append-only file and exits) and waits 30 s at most.</summary>
    public Task StopAsync(CancellationToken cancellationToken) =>
        Signals.StopAsync(process, "redis-server", StopTimeout, () => LogTail, cancellationToken);

    /// <summary>
    /// Runs <c>redis-cli -h 127.0.0.1 -p PORT args...</c> and returns its trimmed output; throws (with the server's log)
    /// when redis-cli fails or Redis answers an error (e.g. <c>["DBSIZE"]</c>, <c>["CLUSTER", "INFO"]</c>).
    /// </summary>
    public async Task<string> CliAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var result = await TryCliAsync(arguments, cancellationToken)
            ?? throw new InvalidOperationException(NotInstalledReason);
        var output = result.StdOut.Trim();
        // redis-cli exits with 0 on an error reply when its output is not a terminal; the reply then starts with ERR etc.
        if (result.ExitCode != 0 || IsErrorReply(output))
        {
            throw new InvalidOperationException($"redis-cli on port {Port} failed: {result}\nRedis log:\n{LogTail}");
        }

        return output;
    }

    /// <summary><c>DBSIZE</c>: how many keys this server holds.</summary>
    public async Task<long> DbSizeAsync(CancellationToken cancellationToken) =>
        long.Parse(await CliAsync(["DBSIZE"], cancellationToken), CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        if (process is { HasExited: false } running)
        {
            running.Kill(entireProcessTree: true);
            await running.WaitForExitAsync(CancellationToken.None);
        }

        process?.Dispose();
        try
        {
            Directory.Delete(DataPath, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp folder left behind is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Kills the process and deletes its folder, synchronously (for <see cref="AppDomain.ProcessExit"/>).</summary>
    internal void KillAtExit()
    {
        try
        {
            if (process is { HasExited: false } running)
            {
                running.Kill(entireProcessTree: true);
            }

            Directory.Delete(DataPath, recursive: true);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            // The test process is exiting: nothing more to do.
        }
    }

    internal static bool IsErrorReply(string output) =>
        output.StartsWith("ERR", StringComparison.Ordinal)
        || output.StartsWith("(error)", StringComparison.Ordinal)
        || output.StartsWith("LOADING", StringComparison.Ordinal)
        || output.StartsWith("CLUSTERDOWN", StringComparison.Ordinal)
        || output.StartsWith("MOVED", StringComparison.Ordinal)
        || output.StartsWith("WRONGTYPE", StringComparison.Ordinal)
        || output.StartsWith("Could not connect", StringComparison.Ordinal);

    /// <summary>redis-cli's result, or null when redis-cli is not installed.</summary>
    internal async Task<CommandResult?> TryCliAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        if (LazyCliPath.Value is not { } cli)
        {
            return null;
        }

        return await ExternalCommand.RunAsync(
            cli, ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), .. arguments], CliTimeout, cancellationToken);
    }

    internal static string CliPath => LazyCliPath.Value ?? throw new InvalidOperationException(NotInstalledReason);

    private List<string> Arguments()
    {
        var appendOnly = Persistence != RedisPersistence.None;
        return
        [
            "--port", Port.ToString(CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--dir", DataPath,
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", appendOnly ? "yes" : "no",
            "--appendfsync", Persistence == RedisPersistence.AppendOnlyAlways ? "always" : "everysec",
            .. extraArguments,
        ];
    }

    private static string? FindOnPath(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        // Debian puts redis-server in /usr/bin; sbin folders are searched too for images with a minimal PATH.
        var folders = path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/bin", "/usr/sbin", "/usr/local/bin"]);
        return folders.Select(folder => Path.Combine(folder, name)).FirstOrDefault(File.Exists);
    }
}
