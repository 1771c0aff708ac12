namespace HookBroker.BlackBox.Tests;

/// <summary>
/// The Redis process fixtures the Redis engine's tests stand on: a server that answers, persists when asked and dies on
/// SIGKILL, and a 3-master cluster that is ok on every node and spreads keys over its masters.
/// </summary>
public sealed class RedisFixtureTests
{
    [Fact(Timeout = 60_000)]
    public async Task A_server_answers_PING_on_its_port_and_is_gone_after_SIGKILL()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var redis = await RedisServerProcess.StartNewAsync(RedisPersistence.None, cancellationToken);

        Assert.Equal($"127.0.0.1:{redis.Port}", redis.Configuration);
        Assert.Equal("PONG", await redis.CliAsync(["PING"], cancellationToken));
        Assert.Equal("no", (await redis.CliAsync(["CONFIG", "GET", "appendonly"], cancellationToken)).Split('\n')[^1].Trim());

        await redis.KillAsync(cancellationToken);

        Assert.False(redis.IsRunning);
        await Assert.ThrowsAsync<InvalidOperationException>(() => redis.CliAsync(["PING"], cancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task An_append_only_server_keeps_a_write_across_SIGKILL_and_restart_on_the_same_port()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        // appendfsync always: the write is on disk before Redis answers it, so the kill cannot race the fsync.
        await using var redis = await RedisServerProcess.StartNewAsync(RedisPersistence.AppendOnlyAlways, cancellationToken);
        Assert.Equal("OK", await redis.CliAsync(["SET", "fixture-key", "kept"], cancellationToken));

        await redis.KillAsync(cancellationToken);
        await redis.StartAsync(cancellationToken);

        Assert.Equal("kept", await redis.CliAsync(["GET", "fixture-key"], cancellationToken));
        await redis.StopAsync(cancellationToken);
        Assert.False(redis.IsRunning);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_three_master_cluster_is_ok_on_every_node_and_spreads_keys_over_every_master()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var cluster = await RedisClusterProcess.StartNewAsync(RedisPersistence.None, cancellationToken);

        Assert.Equal(RedisClusterProcess.MasterCount, cluster.Nodes.Count);
        Assert.Equal(string.Join(',', cluster.Nodes.Select(n => $"127.0.0.1:{n.Port}")), cluster.Configuration);
        foreach (var node in cluster.Nodes)
        {
            var info = await node.CliAsync(["CLUSTER", "INFO"], cancellationToken);
            Assert.Contains("cluster_state:ok", info, StringComparison.Ordinal);
            Assert.Contains("cluster_size:3", info, StringComparison.Ordinal);
        }

        Assert.All(await cluster.DbSizesAsync(cancellationToken), size => Assert.Equal(0, size));
        // -c follows MOVED redirections: each key lands on the master owning its slot.
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal("OK", await cluster.Nodes[0].CliAsync(["-c", "SET", $"fixture-{i}", "v"], cancellationToken));
        }

        var sizes = await cluster.DbSizesAsync(cancellationToken);
        Assert.Equal(30, sizes.Sum());
        Assert.All(sizes, size => Assert.True(size > 0, $"A master holds no key: DBSIZE per master = {string.Join(", ", sizes)}"));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_cluster_node_restarted_after_SIGKILL_rejoins_and_every_node_is_ok_again()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var cluster = await RedisClusterProcess.StartNewAsync(RedisPersistence.AppendOnlyEverySec, cancellationToken);

        await cluster.Nodes[2].KillAsync(cancellationToken);
        Assert.False(cluster.Nodes[2].IsRunning);
        await cluster.Nodes[2].StartAsync(cancellationToken);   // same port, same nodes.conf: it rejoins as itself

        await cluster.WaitUntilOkAsync(cancellationToken);
    }
}
