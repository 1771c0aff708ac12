using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using HookBroker.Wire;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Core;

/// <summary>What became of one raise once stored (or refused).</summary>
/// <param name="Error">Why it was refused, or null.</param>
/// <param name="EventId">The stored (or first, for a duplicate) event id; 0 when unrouted or refused.</param>
/// <param name="Groups">The groups it was routed to.</param>
/// <param name="Duplicate">True when its idempotency key was seen inside the window.</param>
/// <param name="Wait">Wait mode's timeout, or null.</param>
public sealed record RaiseItemResult(BrokerException? Error, long EventId, IReadOnlyList<string> Groups, bool Duplicate, TimeSpan? Wait)
{
    /// <summary>Wait mode: the waiter registered as the event was stored (<see cref="RaiseCoordinator.CompleteAsync"/> owns it).</summary>
    public OutcomeWaiter? Waiter { get; init; }

    /// <summary>A refused raise.</summary>
    public static RaiseItemResult Refused(BrokerException error) => new(error, 0, [], false, null);
}

/// <summary>
/// Raising: checks each raise, routes it to the groups whose patterns match, stores the routed ones in one batch (the
/// engine turns concurrent batches into group commits), and in wait mode waits for each group's first outcome.
/// </summary>
public sealed class RaiseCoordinator(
    IHookStore store,
    GroupRouter router,
    OutcomeWaiters waiters,
    GroupPolicies policies,
    RaiseValidator validator,
    BrokerMetrics metrics,
    TimeProvider time,
    IOptions<BrokerOptions> options)
{
    private readonly TimeSpan _idempotencyWindow = options.Value.IdempotencyWindow;

    /// <summary>
    /// Checks, routes and stores one raise (the unary Raise): the path of <see cref="StoreAsync"/> for a single request,
    /// without its lists. Concurrent calls still share group commits: the engine batches whatever is queued.
    /// </summary>
    internal async ValueTask<RaiseItemResult> StoreOneAsync(RawRaiseRequest request, TimeSpan? timeLeft, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (Prepare(request, timeLeft, now, out var error, out var wait) is not { } newEvent)
        {
            metrics.OnUnrouted(error is null ? 1 : 0);
            return NotStored(error);
        }

        // Wait mode: keep outcomes published between the commit and the waiters' registration.
        using var window = wait is not null ? waiters.OpenWindow() : null;
        var appended = await store.AppendAsync([newEvent], now, cancellationToken);
        var result = ToResult(appended[0], wait);
        metrics.OnRaised(appended[0].Status == AppendStatus.Stored ? 1 : 0);
        metrics.OnDuplicates(appended[0].Status == AppendStatus.Duplicate ? 1 : 0);
        return result;
    }

    /// <summary>Checks, routes and stores a batch of raises; one result per request, in order.</summary>
    internal async Task<IReadOnlyList<RaiseItemResult>> StoreAsync(IReadOnlyList<RawRaiseRequest> requests, TimeSpan? timeLeft, CancellationToken cancellationToken)
    {
        var results = new RaiseItemResult[requests.Count];
        var toStore = new List<NewEvent>(requests.Count);
        var positions = new List<(int Index, TimeSpan? Wait)>(requests.Count);
        var now = time.GetUtcNow();
        var unrouted = 0;
        for (var i = 0; i < requests.Count; i++)
        {
            if (Prepare(requests[i], timeLeft, now, out var error, out var wait) is { } newEvent)
            {
                toStore.Add(newEvent);
                positions.Add((i, wait));
            }
            else
            {
                results[i] = NotStored(error);
                unrouted += error is null ? 1 : 0;
            }
        }

        metrics.OnUnrouted(unrouted);
        if (toStore.Count == 0)
        {
            return results;
        }

        // Wait mode: keep outcomes published between the commit and the waiters' registration.
        using var window = positions.Exists(p => p.Wait is not null) ? waiters.OpenWindow() : null;
        var appended = await store.AppendAsync(toStore, now, cancellationToken);
        int stored = 0, duplicates = 0;
        for (var k = 0; k < appended.Count; k++)
        {
            var (index, wait) = positions[k];
            var result = appended[k];
            results[index] = ToResult(result, wait);
            stored += result.Status == AppendStatus.Stored ? 1 : 0;
            duplicates += result.Status == AppendStatus.Duplicate ? 1 : 0;
        }

        metrics.OnRaised(stored);
        metrics.OnDuplicates(duplicates);
        return results;
    }

    /// <summary>
    /// The response of a raise stored without wait mode (or routed nowhere), built at once: no waiting, so no token to
    /// watch. Null when it is in wait mode (<see cref="CompleteAsync"/> answers it).
    /// </summary>
    public static RaiseResponse? ImmediateResponse(RaiseItemResult stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        return stored.Wait is null || stored.Groups.Count == 0 ? NewResponse(stored) : null;
    }

    /// <summary>The response of a stored raise; in wait mode, once every group has an outcome or the wait timed out.</summary>
    public async Task<RaiseResponse> CompleteAsync(RaiseItemResult stored, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var response = NewResponse(stored);
        if (stored.Wait is not { } wait || stored.Groups.Count == 0)
        {
            return response;
        }

        // Registered as the event was stored (see StoreAsync); then the stored state fills in what happened before that,
        // e.g. for a duplicate of an older event.
        using var waiter = stored.Waiter ?? waiters.Register(stored.EventId, stored.Groups);
        try
        {
            foreach (var outcome in await store.GetOutcomesAsync(stored.EventId, stored.Groups, cancellationToken))
            {
                waiter.Offer(outcome);
            }

            await waiter.Completed.WaitAsync(wait, time, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Groups without an outcome are reported as timed out.
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Waiting was stopped (the broker is shutting down): report what is known; the rest as timed out.
        }

        var outcomes = waiter.Snapshot();
        for (var g = 0; g < stored.Groups.Count; g++)
        {
            response.Outcomes.Add(ToWire(stored.Groups[g], outcomes[g]));
        }

        return response;
    }

    private static RaiseResponse NewResponse(RaiseItemResult stored) => new()
    {
        EventId = stored.EventId == 0 ? string.Empty : DeliveryId.FormatEventId(stored.EventId),
        RoutedGroups = stored.Groups.Count,
        Duplicate = stored.Duplicate,
    };

    /// <summary>The result of a raise that was not stored: refused with <paramref name="error"/>, or (null) routed nowhere.</summary>
    private static RaiseItemResult NotStored(BrokerException? error) =>
        error is null ? new RaiseItemResult(null, 0, [], false, null) : RaiseItemResult.Refused(error);

    /// <summary>
    /// Checks and routes one raise. Returns the event to store, or null when there is nothing to store: refused
    /// (<paramref name="error"/> says why) or routed nowhere (the caller counts it as unrouted).
    /// </summary>
    private NewEvent? Prepare(RawRaiseRequest request, TimeSpan? timeLeft, DateTimeOffset now, out BrokerException? error, out TimeSpan? wait)
    {
        wait = null;
        ValidRaise raise;
        try
        {
            raise = validator.Validate(request, timeLeft);
        }
        catch (BrokerException ex)
        {
            error = ex;
            return null;
        }

        error = null;
        var groups = router.Route(raise.Label);
        if (groups.Length == 0)
        {
            // Like an in-process event with no hooks: a no-op, counted, not stored.
            return null;
        }

        var routed = new RoutedGroup[groups.Length];
        for (var g = 0; g < groups.Length; g++)
        {
            var policy = policies.For(groups[g]);
            routed[g] = new RoutedGroup(groups[g], now + policy.Retention, policy.MaxBacklog);
        }

        wait = raise.WaitTimeout;
        return new NewEvent(raise.Label, raise.Payload, raise.OrderingKey, raise.IdempotencyKey, now + _idempotencyWindow, raise.Source, now, routed);
    }

    private RaiseItemResult ToResult(AppendResult result, TimeSpan? wait) => result.Status switch
    {
        AppendStatus.Stored or AppendStatus.Duplicate => new RaiseItemResult(null, result.EventId, result.Groups, result.Status == AppendStatus.Duplicate, wait)
        {
            Waiter = wait is not null && result.Groups.Count > 0 ? waiters.Register(result.EventId, result.Groups) : null,
        },
        _ => RaiseItemResult.Refused(BrokerException.Exhausted(
            $"group '{result.FullGroup}' has reached its backlog limit of {policies.For(result.FullGroup ?? string.Empty).MaxBacklog} waiting events (HookBroker:Groups:<group>:MaxBacklog, default HookBroker:Defaults:MaxBacklog); retry later")),
    };

    private static GroupOutcome ToWire(string group, OutcomeNotice? outcome) => outcome is null
        ? new GroupOutcome { Group = group, Outcome = Outcome.TimedOut }
        : new GroupOutcome
        {
            Group = group,
            Outcome = outcome.Kind switch
            {
                OutcomeKind.Handled => Outcome.Handled,
                OutcomeKind.Failed => Outcome.Failed,
                _ => Outcome.DeadLettered,
            },
            Error = outcome.Error ?? string.Empty,
            Attempt = outcome.Attempt,
            WillRetry = outcome.WillRetry,
        };
}
