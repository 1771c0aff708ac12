using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HookBroker.Tests.Infrastructure;

namespace HookBroker.Benchmarks;

/// <summary>A server process this program starts on a free loopback port and kills at the end.</summary>
internal abstract class LocalServer : IAsyncDisposable
{
    private Process? _process;

    public int Pid => _process?.Id ?? throw new InvalidOperationException("not started");

    public string DataPath { get; } = Directory.CreateTempSubdirectory("hookbroker-bench-").FullName;

    /// <summary>When the process was started (a <see cref="Stopwatch"/> timestamp).</summary>
    public long StartedAt { get; private set; }

    /// <summary>From the process's start to its first ready answer (asked every 10 ms).</summary>
    public TimeSpan ReadyAfter { get; private set; }

    protected async Task StartProcessAsync(ProcessStartInfo start, Func<Task<bool>> ready)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        StartedAt = Stopwatch.GetTimestamp();
        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null && !IsRoutine(e.Data))
            {
                Console.Error.WriteLine($"[{start.FileName}] {e.Data}");
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!await ready())
        {
            if (_process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new InvalidOperationException($"{start.FileName} did not become ready (exited: {_process.HasExited})");
            }

            await Task.Delay(10);
        }

        ReadyAfter = Stopwatch.GetElapsedTime(StartedAt);
    }

    /// <summary>Whether a line the server wrote to stderr is routine (not passed on to this program's stderr).</summary>
    protected virtual bool IsRoutine(string line) => false;

    public virtual async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(DataPath, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Whether something listens on loopback port <paramref name="port"/> (a server that has no health endpoint).</summary>
    protected static async Task<bool> AcceptsConnectionsAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HookBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("HookBroker.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>The real broker as users run it: src/Broker's Release or Debug build output, or another build of it (<c>--broker</c>).</summary>
internal sealed class BrokerServer : LocalServer
{
    // Reserved together: ports looked up one at a time may come back equal (the broker then refuses to start).
    private readonly int[] _ports = FreePorts.Reserve(2);

    public int GrpcPort => _ports[0];

    public int HttpPort => _ports[1];

    public Uri Address => new($"http://127.0.0.1:{GrpcPort}");

    /// <summary>The redis-server this broker stores in (engine redis), started and disposed with it; otherwise null.</summary>
    public RedisServer? Redis { get; private init; }

    /// <summary>
    /// Starts the broker on the engine of <paramref name="options"/>; for engine redis, first its own redis-server
    /// (append-only file, fsynced every second; every write with --durability fsync). Throws
    /// <see cref="System.ComponentModel.Win32Exception"/> when redis-server is not installed.
    /// </summary>
    /// <param name="options">The engine and durability, and the broker build (<see cref="BenchOptions.Brokers"/>).</param>
    /// <param name="build">The broker build to run instead of the first of <see cref="BenchOptions.Brokers"/>.</param>
    public static async Task<BrokerServer> StartAsync(BenchOptions options, string? build = null)
    {
        var redis = options.IsRedisEngine ? await RedisServer.StartAsync(options.Durability.Equals("fsync", StringComparison.OrdinalIgnoreCase)) : null;
        try
        {
            return await StartAsync(options, build ?? options.Brokers[0], redis);
        }
        catch
        {
            if (redis is not null)
            {
                await redis.DisposeAsync();
            }

            throw;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }
    }

    private static async Task<BrokerServer> StartAsync(BenchOptions options, string build, RedisServer? redis)
    {
        var server = new BrokerServer { Redis = redis };
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var folder = build == BenchOptions.BuildOutput ? Path.Combine(RepoRoot(), "src", "Broker", "bin", configuration, "net10.0") : build;
        var dll = Path.Combine(folder, "HookBroker.Broker.dll");
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { dll } };
        start.Environment["HookBroker__GrpcPort"] = server.GrpcPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["HookBroker__HttpPort"] = server.HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["HookBroker__DataPath"] = server.DataPath;
        start.Environment["HookBroker__Storage"] = redis is not null ? "Redis"
            : options.Engine.Equals("memory", StringComparison.OrdinalIgnoreCase) ? "Memory" : "Sqlite";
        if (redis is not null)
        {
            start.Environment["HookBroker__Redis__Configuration"] = $"127.0.0.1:{redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            start.Environment["HookBroker__Redis__KeyPrefix"] = "bench";
        }

        start.Environment["HookBroker__Durability"] = options.Durability.Equals("fsync", StringComparison.OrdinalIgnoreCase) ? "Fsync" : "Normal";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        await server.StartProcessAsync(start, async () =>
        {
            try
            {
                return (await http.GetAsync(new Uri($"http://127.0.0.1:{server.HttpPort}/healthz"))).IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false; // not listening yet, or too slow to answer on a loaded machine: ask again
            }
        });
        return server;
    }
}

/// <summary>
/// redis-server with AOF (appendonly yes, appendfsync everysec; always when <c>fsyncAlways</c>), as users would run it
/// for durable streams. Throws <see cref="System.ComponentModel.Win32Exception"/> when redis-server is not installed.
/// </summary>
internal sealed class RedisServer : LocalServer
{
    public int Port { get; } = FreePorts.Reserve(1)[0];

    public static async Task<RedisServer> StartAsync(bool fsyncAlways = false)
    {
        var server = new RedisServer();
        var start = new ProcessStartInfo("redis-server")
        {
            ArgumentList =
            {
                "--port", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--dir", server.DataPath, "--appendonly", "yes", "--appendfsync", fsyncAlways ? "always" : "everysec", "--save", "",
            },
        };
        await server.StartProcessAsync(start, () => AcceptsConnectionsAsync(server.Port));
        return server;
    }
}

/// <summary>
/// nats-server with JetStream on (file storage in its own folder), as users would run it for durable streams. Throws
/// <see cref="System.ComponentModel.Win32Exception"/> when nats-server is not installed.
/// </summary>
internal sealed class NatsServer : LocalServer
{
    public int Port { get; } = FreePorts.Reserve(1)[0];

    public static async Task<NatsServer> StartAsync()
    {
        var server = new NatsServer();
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        var start = new ProcessStartInfo(File.Exists("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server")
        {
            ArgumentList = { "--jetstream", "--addr", "127.0.0.1", "--port", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--store_dir", server.DataPath },
        };
        await server.StartProcessAsync(start, () => AcceptsConnectionsAsync(server.Port));
        return server;
    }

    /// <inheritdoc />
    /// <remarks>nats-server logs to stderr; its informational lines (the start banner) are left out, warnings and errors kept.</remarks>
    protected override bool IsRoutine(string line) => line.Contains(" [INF] ", StringComparison.Ordinal);
}
