using System.Collections.Concurrent;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using HookBroker.Wire;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SettleKind = HookBroker.Broker.Storage.SettleKind;
using SettleStatus = HookBroker.Broker.Storage.SettleStatus;
using WireSettleKind = HookBroker.Protocol.V1.SettleKind;
using WireSettleStatus = HookBroker.Protocol.V1.SettleStatus;

namespace HookBroker.Broker.Core;

/// <summary>
/// The workers connected to this node: opens and closes their sessions, runs one <see cref="GroupDispatcher"/> per
/// group with workers, applies their settlements, frees the capacity of expired leases, sends heartbeats on silent
/// streams (one timer for all of them), and ends every stream with UNAVAILABLE when the broker stops.
/// </summary>
public sealed class SubscriptionManager : IAsyncDisposable
{
    private readonly IHookStore _store;
    private readonly GroupRouter _router;
    private readonly GroupPolicies _policies;
    private readonly BrokerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<SubscriptionManager> _logger;
    private readonly BrokerOptions _options;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, GroupDispatcher> _groups = new(StringComparer.Ordinal);
    // Changed under _gate (with _stopping); read without it by the heartbeat timer.
    private readonly ConcurrentDictionary<WorkerSession, byte> _sessions = new();
    private readonly ITimer _heartbeats;
    private long _nextSession;
    private bool _stopping;

    /// <summary>Creates the manager.</summary>
    public SubscriptionManager(
        IHookStore store,
        GroupRouter router,
        GroupPolicies policies,
        BrokerMetrics metrics,
        TimeProvider time,
        IOptions<BrokerOptions> options,
        ILogger<SubscriptionManager> logger)
    {
        _store = store;
        _router = router;
        _policies = policies;
        _metrics = metrics;
        _time = time;
        _options = options.Value;
        _logger = logger;
        // One timer checks every stream a few times per interval, instead of a timer (and linked tokens) per stream: a
        // silent stream gets its heartbeat after one to one and a quarter intervals of silence.
        var check = HeartbeatCheckPeriod(_options.HeartbeatInterval);
        _heartbeats = time.CreateTimer(static state => ((SubscriptionManager)state!).SendHeartbeats(), this, check, check);
    }

    /// <summary>How often silent streams are looked for: a quarter of the heartbeat interval.</summary>
    public static TimeSpan HeartbeatCheckPeriod(TimeSpan interval) => interval / 4;

    /// <summary>Workers of <paramref name="group"/> connected to this node.</summary>
    public int WorkersOf(string group)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(group, out var dispatcher) ? dispatcher.Workers.Count : 0;
        }
    }

    /// <summary>Checks a subscribe message, adds its patterns to the group and starts delivering to the new session.</summary>
    public async Task<WorkerSession> OpenAsync(SubscribeStart start, CancellationToken cancellationToken)
    {
        if (LabelRules.CheckGroup(start.Group) is { } groupProblem)
        {
            throw BrokerException.Invalid($"subscribe.{groupProblem}");
        }

        if (start.Events.Count == 0)
        {
            throw BrokerException.Invalid("subscribe.events is empty; name at least one label or pattern (e.g. 'user_created' or 'user.*')");
        }

        if (start.Events.Count > SubscribeRules.MaxPatterns)
        {
            throw BrokerException.Invalid($"subscribe.events has {start.Events.Count} patterns; at most {SubscribeRules.MaxPatterns}");
        }

        foreach (var pattern in start.Events)
        {
            if (LabelRules.CheckPattern(pattern, "subscribe.events") is { } patternProblem)
            {
                throw BrokerException.Invalid(patternProblem);
            }
        }

        var maxInFlight = start.MaxInFlight == 0 ? _options.DefaultMaxInFlight : start.MaxInFlight;
        if (maxInFlight is < 1 or > SubscribeRules.MaxInFlightLimit)
        {
            throw BrokerException.Invalid($"subscribe.max_in_flight {start.MaxInFlight} is out of range; use 1-{SubscribeRules.MaxInFlightLimit} (0 = the broker's default, {_options.DefaultMaxInFlight})");
        }

        if (start.WorkerName.Length > LabelRules.MaxLabelLength)
        {
            throw BrokerException.Invalid($"subscribe.worker_name is {start.WorkerName.Length} chars; at most {LabelRules.MaxLabelLength}");
        }

        ThrowIfStopping();
        var filter = new PatternSet(start.Events);
        var record = await _store.AddGroupPatternsAsync(start.Group, filter.Patterns.ToList(), _time.GetUtcNow(), cancellationToken);
        _router.Include(record);

        var policy = _policies.For(start.Group);
        var number = Interlocked.Increment(ref _nextSession);
        var id = string.Create(CultureInfo.InvariantCulture, $"w{number}-{Guid.NewGuid():N}")[..20];
        var session = new WorkerSession(id, start.Group, start.WorkerName.Length == 0 ? null : start.WorkerName, filter, maxInFlight, policy, _time.GetTimestamp())
        {
            OmitsConfirmed = start.OmitConfirmed,
        };
        GroupDispatcher dispatcher;
        lock (_gate)
        {
            ThrowIfStopping();
            _sessions.TryAdd(session, 0);
            if (!_groups.TryGetValue(start.Group, out dispatcher!))
            {
                _groups[start.Group] = dispatcher = new GroupDispatcher(start.Group, policy, _store, _metrics, _time, _logger);
            }

            // Under the lock that CloseAsync removes an emptied dispatcher with: a dispatcher found here is never one
            // that the group's last worker is taking down (its loop stopped, it would never deliver to this session).
            dispatcher.Add(session);
        }

        BrokerLog.WorkerSubscribed(_logger, id, session.Name ?? "-", start.Group, string.Join(",", filter.Patterns), maxInFlight);
        return session;
    }

    /// <summary>The message that tells the worker it is subscribed.</summary>
    internal RawSubscribeResponse Subscribed(WorkerSession session) => new()
    {
        Subscribed = new Subscribed
        {
            Group = session.Group,
            WorkerId = session.Id,
            MaxInFlight = session.MaxInFlight,
            AckDeadline = Duration.FromTimeSpan(session.Policy.AckDeadline),
            HeartbeatInterval = Duration.FromTimeSpan(_options.HeartbeatInterval),
        },
    };

    /// <summary>The heartbeat interval of subscriber streams.</summary>
    public TimeSpan HeartbeatInterval => _options.HeartbeatInterval;

    /// <summary>
    /// Applies the acks, nacks, extends and rejects of one request and queues a confirmation for each (for a session that
    /// omits confirmed ones, only for those that changed nothing or were refused).
    /// </summary>
    public async Task SettleAsync(WorkerSession session, SubscribeRequest request, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var policy = session.Policy;
        var count = request.Acks.Count + request.Nacks.Count + request.Extends.Count + request.Rejects.Count;
        if (count == 0)
        {
            return;
        }

        var confirmations = new List<SettleConfirmation>(session.OmitsConfirmed ? 0 : count);
        var items = new List<SettleItem>(count);
        var pending = new List<(string Id, WireSettleKind Kind)>(count);

        SettleConfirmation Confirmation(string id, WireSettleKind kind, WireSettleStatus status, string message = "") =>
            new() { DeliveryId = id, Kind = kind, Status = status, Message = message };

        // Checks an id; adds the item to send to storage, or answers it at once.
        void Add(string id, WireSettleKind kind, Func<LeaseRef, int, SettleItem> item)
        {
            if (!DeliveryId.TryParse(id, out var lease))
            {
                confirmations.Add(Confirmation(id, kind, WireSettleStatus.Invalid, $"'{Shorten(id)}' is not a delivery id issued by this broker"));
            }
            else if (!session.Holds(lease, out var attempt))
            {
                confirmations.Add(Confirmation(id, kind, WireSettleStatus.Stale, "this stream does not hold that lease (expired, redelivered or already settled)"));
            }
            else
            {
                items.Add(item(lease, attempt));
                pending.Add((id, kind));
            }
        }

        foreach (var id in request.Acks)
        {
            Add(id, WireSettleKind.Ack, (lease, _) => new SettleItem(lease, SettleKind.Ack, now, null, policy.MaxAttempts));
        }

        foreach (var nack in request.Nacks)
        {
            if (ReadDuration(nack.Delay, SubscribeRules.MaxNackDelay, "nack.delay", out var delay) is { } problem)
            {
                confirmations.Add(Confirmation(nack.DeliveryId, WireSettleKind.Nack, WireSettleStatus.Invalid, problem));
                continue;
            }

            Add(nack.DeliveryId, WireSettleKind.Nack, (lease, attempt) => new SettleItem(
                lease,
                SettleKind.Nack,
                now + (delay > TimeSpan.Zero ? delay : policy.Backoff(attempt, Random.Shared)),
                SubscribeRules.TrimError(nack.Error) ?? "nacked",
                policy.MaxAttempts));
        }

        foreach (var extend in request.Extends)
        {
            if (ReadDuration(extend.Lease, SubscribeRules.MaxLease, "extend.lease", out var lease) is { } problem)
            {
                confirmations.Add(Confirmation(extend.DeliveryId, WireSettleKind.Extend, WireSettleStatus.Invalid, problem));
                continue;
            }

            var until = now + (lease > TimeSpan.Zero ? lease : policy.AckDeadline);
            Add(extend.DeliveryId, WireSettleKind.Extend, (l, _) => new SettleItem(l, SettleKind.Extend, until, null, policy.MaxAttempts));
        }

        foreach (var reject in request.Rejects)
        {
            Add(reject.DeliveryId, WireSettleKind.Reject, (lease, _) => new SettleItem(
                lease, SettleKind.Reject, now, SubscribeRules.TrimError(reject.Error) ?? "rejected", policy.MaxAttempts));
        }

        if (items.Count > 0)
        {
            var results = await _store.SettleAsync(session.Group, items, now, cancellationToken);
            var freed = false;
            int acked = 0, dead = 0;
            for (var i = 0; i < results.Count; i++)
            {
                var item = items[i];
                var (id, kind) = pending[i];
                if (results[i].Status == SettleStatus.Stale)
                {
                    confirmations.Add(Confirmation(id, kind, WireSettleStatus.Stale, "the lease expired or moved before the settlement arrived; nothing changed"));
                    freed |= session.Forget(item.Lease);
                    continue;
                }

                if (item.Kind != SettleKind.Extend)
                {
                    freed |= session.Forget(item.Lease);
                    acked += item.Kind == SettleKind.Ack ? 1 : 0;
                    dead += results[i].Outcome?.Kind == OutcomeKind.DeadLettered ? 1 : 0;
                }

                if (!session.OmitsConfirmed)
                {
                    var confirmed = Confirmation(id, kind, WireSettleStatus.Confirmed);
                    if (item.Kind == SettleKind.Extend)
                    {
                        confirmed.LeaseExpiresAt = Timestamp.FromDateTimeOffset(item.Until);
                    }

                    confirmations.Add(confirmed);
                }
            }

            _metrics.OnAcked(acked);
            _metrics.OnDeadLettered(dead);
            if (freed)
            {
                Wake(session.Group);
            }
        }

        session.Confirm(confirmations);
    }

    /// <summary>Closes a session: stops delivering to it and releases its leases for redelivery at once.</summary>
    public async Task CloseAsync(WorkerSession session)
    {
        var held = session.Close();
        GroupDispatcher? emptied = null;
        lock (_gate)
        {
            _sessions.TryRemove(session, out _);
            if (_groups.TryGetValue(session.Group, out var dispatcher) && dispatcher.Remove(session) == 0)
            {
                _groups.Remove(session.Group);
                emptied = dispatcher;
            }
        }

        if (emptied is not null)
        {
            await emptied.DisposeAsync();
        }

        if (held.Count > 0)
        {
            try
            {
                var maxAttempts = session.Policy.MaxAttempts;
                await _store.ReleaseAsync(
                    session.Group, [.. held.Select(h => new ReleaseItem(h.Lease, maxAttempts))], "worker disconnected", _time.GetUtcNow(), CancellationToken.None);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                BrokerLog.ReleaseFailed(_logger, ex, session.Id, session.Group);
            }

            Wake(session.Group);
        }

        BrokerLog.WorkerLeft(_logger, session.Id, session.Group, held.Count);
        session.Dispose();
    }

    /// <summary>New events (or freed capacity) in these groups: look for deliveries.</summary>
    public void Wake(IReadOnlyCollection<string> groups)
    {
        foreach (var group in groups)
        {
            Wake(group);
        }
    }

    /// <summary>Frees the capacity of leases that expired in storage.</summary>
    public void OnLeasesExpired(IReadOnlyList<ExpiredLease> expired)
    {
        foreach (var byGroup in expired.GroupBy(e => e.Group, StringComparer.Ordinal))
        {
            GroupDispatcher? dispatcher;
            lock (_gate)
            {
                _groups.TryGetValue(byGroup.Key, out dispatcher);
            }

            if (dispatcher is null)
            {
                continue;
            }

            foreach (var lease in byGroup)
            {
                dispatcher.ForgetExpired(lease.Lease);
            }

            dispatcher.Wake();
        }
    }

    /// <summary>Ends the streams of a deleted group with NOT_FOUND.</summary>
    public void OnGroupDeleted(string group)
    {
        foreach (var session in Sessions().Where(s => string.Equals(s.Group, group, StringComparison.Ordinal)))
        {
            session.Abort(new Status(StatusCode.NotFound, $"group '{group}' was deleted"));
        }
    }

    /// <summary>Stops taking subscriptions and ends every stream with UNAVAILABLE.</summary>
    public void BeginShutdown()
    {
        WorkerSession[] sessions;
        lock (_gate)
        {
            _stopping = true;
            sessions = [.. _sessions.Keys];
        }

        BrokerLog.Stopping(_logger, sessions.Length);
        foreach (var session in sessions)
        {
            session.Abort(new Status(StatusCode.Unavailable, "the broker is shutting down; reconnect with backoff (to this or another node)"));
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _heartbeats.DisposeAsync();
        GroupDispatcher[] dispatchers;
        lock (_gate)
        {
            _stopping = true;
            dispatchers = [.. _groups.Values];
            _groups.Clear();
        }

        foreach (var dispatcher in dispatchers)
        {
            await dispatcher.DisposeAsync();
        }
    }

    private WorkerSession[] Sessions()
    {
        lock (_gate)
        {
            return [.. _sessions.Keys];
        }
    }

    private void SendHeartbeats()
    {
        var now = _time.GetTimestamp();
        foreach (var (session, _) in _sessions)
        {
            session.HeartbeatIfSilent(now, _options.HeartbeatInterval, _time);
        }
    }

    private void Wake(string group)
    {
        GroupDispatcher? dispatcher;
        lock (_gate)
        {
            _groups.TryGetValue(group, out dispatcher);
        }

        dispatcher?.Wake();
    }

    private void ThrowIfStopping()
    {
        if (Volatile.Read(ref _stopping))
        {
            throw BrokerException.ShuttingDown();
        }
    }

    private static string? ReadDuration(Duration? value, TimeSpan max, string field, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (value is null)
        {
            return null;
        }

        if (value.Seconds < 0 || value.Nanos < 0 || value.Nanos >= 1_000_000_000)
        {
            return $"{field} must not be negative";
        }

        return WireDurations.Within(value, max, field, out duration);
    }

    private static string Shorten(string value) => value.Length <= 60 ? value : string.Concat(value.AsSpan(0, 57), "...");
}
