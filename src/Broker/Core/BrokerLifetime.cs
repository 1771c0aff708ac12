using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Core;

/// <summary>
/// Opens storage and loads the routing table before the broker serves; when the host starts stopping, ends every
/// subscriber stream with UNAVAILABLE (grpc-dotnet does not end open streams by itself), and once calls have drained
/// stops the group loops. Storage is flushed and closed after, when the container disposes it.
/// </summary>
public sealed class BrokerLifetime(
    IHookStore store,
    StoreEvents storeEvents,
    SubscriptionManager subscriptions,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    IOptions<BrokerOptions> options,
    ILogger<BrokerLifetime> logger) : IHostedService
{
    private CancellationTokenRegistration _onStopping;

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await store.InitializeAsync(storeEvents, time.GetUtcNow(), cancellationToken);
        await storeEvents.ReloadAsync();
        var groups = await store.ListGroupsAsync(cancellationToken);
        BrokerLog.Started(logger, groups.Count, options.Value.Storage.ToString());
        _onStopping = lifetime.ApplicationStopping.Register(subscriptions.BeginShutdown);
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _onStopping.DisposeAsync();
        subscriptions.BeginShutdown();
        await subscriptions.DisposeAsync();
    }
}
