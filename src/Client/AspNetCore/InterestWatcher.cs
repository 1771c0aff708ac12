using Grpc.Core;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Client.Internal;

/// <summary>
/// Keeps the broker's current interest (every group pattern) in memory from the <c>WatchInterest</c> stream, so the
/// default events can be skipped without a round trip when no group listens. Reconnects with jittered exponential
/// backoff; while disconnected it keeps the last set it saw.
/// </summary>
internal sealed class InterestWatcher
{
    private readonly BrokerApi.HookBrokerClient broker;
    private readonly HookBrokerAppOptions options;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly TaskCompletionSource firstSnapshot = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string[]? patterns;

    public InterestWatcher(BrokerApi.HookBrokerClient broker, HookBrokerAppOptions options, TimeProvider time, ILogger logger)
    {
        this.broker = broker;
        this.options = options;
        this.time = time;
        this.logger = logger;
    }

    /// <summary>True once a snapshot has arrived.</summary>
    public bool IsKnown => patterns is not null;

    /// <summary>False only when a snapshot is known and no pattern in it matches <paramref name="label"/>.</summary>
    public bool MayHaveInterest(string label)
    {
        var current = patterns;
        if (current is null)
        {
            return true;
        }

        foreach (var pattern in current)
        {
            if (LabelMatcher.Matches(pattern, label))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Completes when the first snapshot has arrived.</summary>
    public Task WaitForFirstSnapshotAsync(CancellationToken cancellationToken) => firstSnapshot.Task.WaitAsync(cancellationToken);

    /// <summary>Watches until <paramref name="stoppingToken"/> is canceled.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        var delay = options.ReconnectInitialDelay;
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            string reason;
            try
            {
                using var call = broker.WatchInterest(new WatchInterestRequest(), cancellationToken: stoppingToken);
                while (await call.ResponseStream.MoveNext(stoppingToken))
                {
                    var snapshot = call.ResponseStream.Current;
                    patterns = [.. snapshot.Patterns];
                    firstSnapshot.TrySetResult();
                    AppLog.InterestChanged(logger, snapshot.Patterns.Count, snapshot.Version);
                    delay = options.ReconnectInitialDelay;
                    attempt = 0;
                }

                reason = "the broker ended the stream";
            }
            catch (Exception e) when ((e is OperationCanceledException or RpcException) && stoppingToken.IsCancellationRequested)
            {
                return; // gRPC reports a canceled call as RpcException(Cancelled)
            }
            catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
            {
                reason = $"{e.StatusCode}: {e.Status.Detail}";
            }

            attempt++;
            var wait = Jitter(delay);
            AppLog.InterestReconnecting(logger, reason, attempt, wait);
            try
            {
                await Task.Delay(wait, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.ReconnectMaxDelay.Ticks));
        }
    }

    // ±20% so many apps do not reconnect in step after a broker restart.
#pragma warning disable CA5394 // Jitter needs no cryptographic randomness.
    private static TimeSpan Jitter(TimeSpan delay) => delay * (0.8 + (Random.Shared.NextDouble() * 0.4));
#pragma warning restore CA5394
}
