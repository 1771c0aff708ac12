using HookBroker.Broker.Storage;
using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Core;

/// <summary>
/// The dispatcher's side of <see cref="IHookStoreListener"/>: wakes the groups that got events, completes waits in
/// wait mode, counts dead letters, and reloads the routing table when groups change (on any node).
/// </summary>
public sealed class StoreEvents(
    IHookStore store,
    GroupRouter router,
    OutcomeWaiters waiters,
    SubscriptionManager subscriptions,
    ILogger<StoreEvents> logger) : IHookStoreListener, IDisposable
{
    private readonly SemaphoreSlim _reloading = new(1, 1);
    private int _reloadRequested;

    /// <inheritdoc />
    public void OnEventsAvailable(IReadOnlyCollection<string> groups) => subscriptions.Wake(groups);

    /// <inheritdoc />
    public void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes) => waiters.Publish(outcomes);

    /// <inheritdoc />
    public void OnLeasesExpired(IReadOnlyList<ExpiredLease> leases) => subscriptions.OnLeasesExpired(leases);

    /// <inheritdoc />
    public void OnGroupsChanged()
    {
        // Coalesce bursts of changes into one reload at a time.
        if (Interlocked.Exchange(ref _reloadRequested, 1) == 0)
        {
            _ = ReloadAsync();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _reloading.Dispose();

    /// <summary>Loads every group from storage into the routing table.</summary>
    public async Task ReloadAsync()
    {
        await _reloading.WaitAsync();
        try
        {
            Interlocked.Exchange(ref _reloadRequested, 0);
            // A local change while reading makes the read possibly stale: read again.
            for (var tries = 0; tries < 10; tries++)
            {
                var version = router.Version;
                if (router.TryReset(await store.ListGroupsAsync(CancellationToken.None), version))
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            BrokerLog.GroupReloadFailed(logger, ex);
        }
        finally
        {
            _reloading.Release();
        }
    }
}
