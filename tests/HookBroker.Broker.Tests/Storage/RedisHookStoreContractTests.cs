using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Redis;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// The shared contract against the Redis engine on a real single redis-server (Debian's package; the test skips with
/// the reason when it is missing). Every store gets its own key prefix on one shared server; a reopened store is a new
/// broker node on the same keys.
/// </summary>
public sealed class RedisHookStoreContractTests : RedisContractTestsBase
{
    protected override async Task<string> ConfigurationAsync(CancellationToken cancellationToken) =>
        (await RedisServerProcess.GetSharedAsync(cancellationToken)).Configuration;
}

/// <summary>The shared contract against the Redis engine on a real 3-master Redis Cluster (one partition per store).</summary>
public sealed class RedisClusterHookStoreContractTests : RedisContractTestsBase
{
    protected override async Task<string> ConfigurationAsync(CancellationToken cancellationToken) =>
        (await RedisClusterProcess.GetSharedAsync(cancellationToken)).Configuration;
}

/// <summary>What the Redis subclasses share: a key prefix per store, deleted after the test.</summary>
public abstract class RedisContractTestsBase : HookStoreContractTests
{
    private string? _configuration;

    protected override bool SurvivesRestart => true;

    /// <summary>The StackExchange.Redis configuration of the server the stores use.</summary>
    protected abstract Task<string> ConfigurationAsync(CancellationToken cancellationToken);

    protected override async ValueTask<IHookStore> CreateStoreAsync(string name) => await OpenAsync(name);

    protected override async ValueTask<IHookStore> ReopenStoreAsync(string name) => await OpenAsync(name);

    protected override async ValueTask DeleteStoreAsync(string name)
    {
        if (_configuration is null)
        {
            return;
        }

        await using var redis = await ConnectionMultiplexer.ConnectAsync(_configuration);
        foreach (var server in redis.GetServers().Where(s => !s.IsReplica))
        {
            await foreach (var key in server.KeysAsync(pattern: "{" + Prefix(name) + "*"))
            {
                await redis.GetDatabase().KeyDeleteAsync(key);
            }
        }
    }

    private static string Prefix(string name) => "hb-" + name;

    private async Task<IHookStore> OpenAsync(string name)
    {
        _configuration ??= await ConfigurationAsync(TestContext.Current.CancellationToken);
        return new RedisHookStore(
            new RedisStoreOptions { Configuration = _configuration, KeyPrefix = Prefix(name), Partitions = 1 },
            NullLogger<RedisHookStore>.Instance);
    }
}
