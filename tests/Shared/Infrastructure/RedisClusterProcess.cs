using System.Globalization;

namespace HookBroker.Tests.Infrastructure;

/// <summary>
/// A real 3-master Redis Cluster: three <c>redis-server --cluster-enabled yes</c> processes on free loopback ports (and
/// free cluster-bus ports, <c>cluster-port</c>), joined with <c>redis-cli --cluster create ... --cluster-replicas 0</c>,
/// ready once <c>CLUSTER INFO</c> says <c>cluster_state:ok</c> on every node. Disposing kills every node and deletes
/// their directories. Tests call <see cref="StartNewAsync"/>, which skips the test when redis-server is not installed.
/// </summary>
internal sealed class RedisClusterProcess : IAsyncDisposable
{
    public const int MasterCount = 3;
    private static readonly TimeSpan CreateTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private static readonly SemaphoreSlim SharedGate = new(1, 1);
    private static RedisClusterProcess? shared;

    private RedisClusterProcess(IReadOnlyList<RedisServerProcess> nodes) => Nodes = nodes;

    /// <summary>The masters, in the order given to <c>redis-cli --cluster create</c> (slots 0–5460, 5461–10922, 10923–16383).</summary>
    public IReadOnlyList<RedisServerProcess> Nodes { get; }

    /// <summary>The StackExchange.Redis configuration string listing every node (<c>HookBroker:Redis:Configuration</c>).</summary>
    public string Configuration => string.Join(',', Nodes.Select(n => n.Configuration));

    /// <summary>Every node's log tail, for failure messages.</summary>
    public string LogTail => string.Join("\n", Nodes.Select(n => $"--- node :{n.Port} ---\n{n.LogTail}"));

    /// <summary>Skips the test when redis-server is missing; otherwise starts three masters, creates the cluster and waits until it is ok.</summary>
    public static async Task<RedisClusterProcess> StartNewAsync(RedisPersistence persistence, CancellationToken cancellationToken)
    {
        RedisServerProcess.SkipIfNotInstalled();
        var ports = FreePorts.Reserve(MasterCount * 2);
        var nodes = Enumerable.Range(0, MasterCount)
            .Select(i => new RedisServerProcess(
                persistence,
                ports[i],
                [
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-port", ports[MasterCount + i].ToString(CultureInfo.InvariantCulture),
                    "--cluster-node-timeout", "5000",
                ]))
            .ToList();
        var cluster = new RedisClusterProcess(nodes);
        try
        {
            await Task.WhenAll(nodes.Select(n => n.StartAsync(cancellationToken)));
            await cluster.CreateAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// One cluster (no persistence) shared by every test of this test process that asks for it, started on first use
    /// and killed when the process exits; tests keep apart by key prefix. Never kill or stop its nodes.
    /// </summary>
    public static async Task<RedisClusterProcess> GetSharedAsync(CancellationToken cancellationToken)
    {
        RedisServerProcess.SkipIfNotInstalled();
        await SharedGate.WaitAsync(cancellationToken);
        try
        {
            if (shared is not null)
            {
                return shared.Nodes.All(n => n.IsRunning)
                    ? shared
                    : throw new InvalidOperationException($"A node of the shared Redis Cluster exited (never kill or stop them).\n{shared.LogTail}");
            }

            var cluster = await StartNewAsync(RedisPersistence.None, cancellationToken);
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var node in cluster.Nodes)
                {
                    node.KillAtExit();
                }
            };
            shared = cluster;
            return cluster;
        }
        finally
        {
            SharedGate.Release();
        }
    }

    /// <summary>Keys held by each master (<c>DBSIZE</c>), in <see cref="Nodes"/> order.</summary>
    public async Task<long[]> DbSizesAsync(CancellationToken cancellationToken) =>
        await Task.WhenAll(Nodes.Select(n => n.DbSizeAsync(cancellationToken)));

    /// <summary>Waits until <c>CLUSTER INFO</c> on every running node says <c>cluster_state:ok</c> with all three masters known.</summary>
    public async Task WaitUntilOkAsync(CancellationToken cancellationToken)
    {
        var last = new string[Nodes.Count];
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    var infos = await Task.WhenAll(Nodes.Select(n => n.TryCliAsync(["CLUSTER", "INFO"], cancellationToken)));
                    for (var i = 0; i < infos.Length; i++)
                    {
                        last[i] = infos[i]?.StdOut.Trim() ?? "(redis-cli missing)";
                    }

                    return last.All(info =>
                        info.Contains("cluster_state:ok", StringComparison.Ordinal)
                        && info.Contains("cluster_slots_assigned:16384", StringComparison.Ordinal)
                        && info.Contains($"cluster_known_nodes:{MasterCount}", StringComparison.Ordinal));
                },
                ReadyTimeout,
                "CLUSTER INFO to say cluster_state:ok on every node",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            var infos = string.Join("\n", Nodes.Select((n, i) => $"--- CLUSTER INFO on :{n.Port} ---\n{last[i]}"));
            throw new TimeoutException($"{e.Message}\n{infos}\n{LogTail}", e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
    }

    private async Task CreateAsync(CancellationToken cancellationToken)
    {
        var create = await ExternalCommand.RunAsync(
            RedisServerProcess.CliPath,
            ["--cluster", "create", .. Nodes.Select(n => n.Configuration), "--cluster-replicas", "0", "--cluster-yes"],
            CreateTimeout,
            cancellationToken);
        if (create.ExitCode != 0 || !create.StdOut.Contains("[OK] All 16384 slots covered", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"redis-cli --cluster create failed: {create}\n{LogTail}");
        }

        await WaitUntilOkAsync(cancellationToken);
    }
}
