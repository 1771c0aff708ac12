using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Core;

/// <summary>
/// Runs storage housekeeping on the dispatcher's clock: expired leases back to pending (or dead letters past max
/// attempts), undelivered events past retention to dead letters as expired, idempotency keys past their window forgotten.
/// </summary>
public sealed class Housekeeping(
    IHookStore store,
    GroupPolicies policies,
    SubscriptionManager subscriptions,
    BrokerMetrics metrics,
    TimeProvider time,
    IOptions<BrokerOptions> options,
    ILogger<Housekeeping> logger) : BackgroundService
{
    /// <summary>Most items of each kind one storage call handles.</summary>
    public const int BatchSize = 1000;

    /// <summary>Runs one full pass (in batches until storage reports nothing more is due).</summary>
    public async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        ExpiryResult result;
        do
        {
            result = await store.ExpireAsync(time.GetUtcNow(), policies, BatchSize, cancellationToken);
            subscriptions.OnLeasesExpired(result.ExpiredLeases);
            metrics.OnDeadLettered(result.Outcomes.Count(o => o.Kind == OutcomeKind.DeadLettered));
            if (result.ExpiredLeases.Count + result.RetentionExpired + result.KeysForgotten > 0)
            {
                BrokerLog.Maintained(logger, result.ExpiredLeases.Count, result.RetentionExpired, result.KeysForgotten);
            }
        }
        while (result.More && !cancellationToken.IsCancellationRequested);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.MaintenanceInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await RunOnceAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    BrokerLog.MaintenanceFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }
}
