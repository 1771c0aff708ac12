namespace HookBroker.Broker.Storage.Memory;

/// <summary>
/// The in-memory engine: same semantics as the durable engines, nothing survives a restart. For tests and throwaway runs.
/// </summary>
/// <remarks>
/// <para>One lock guards all state; every operation costs O(items · log n), never a scan of a backlog:</para>
/// <list type="bullet">
/// <item>per group, due deliveries that are first of their ordering key sit in a per-label set ordered by event id
/// (<see cref="MemoryGroup.Ready"/>), delayed ones in a set ordered by due time that a lease promotes when due;
/// a delivery behind an earlier one of the same key sits in no candidate index until it becomes first;</item>
/// <item>leases and retention deadlines are in store-wide sets ordered by time, so housekeeping takes only what is due;</item>
/// <item>an event's payload is stored once and shared by its deliveries; it is freed with the last delivery that refers
/// to it (in a backlog or dead letters).</item>
/// </list>
/// <para>Listener calls are made after the lock is released.</para>
/// </remarks>
public sealed class MemoryHookStore : IHookStore
{
    private const string LeaseExpiredError = "lease expired";
    private const string RetentionExpiredError = "expired: retention passed before delivery";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, MemoryGroup> _groups = new(StringComparer.Ordinal);
    private readonly SortedSet<Timed<MemoryDelivery>> _leases = new(TimedComparer<MemoryDelivery>.Instance);
    private readonly SortedSet<Timed<MemoryDelivery>> _retention = new(TimedComparer<MemoryDelivery>.Instance);
    private readonly Dictionary<string, IdempotencyEntry> _keys = new(StringComparer.Ordinal);
    private readonly SortedSet<Timed<string>> _keyExpiry = new(TimedComparer<string>.Instance);
    private IHookStoreListener _listener = NullHookStoreListener.Instance;
    private long _lastEventId;
    private long _lastLeaseNo;
    private long _lastSeq;
    private bool _disposed;

    /// <inheritdoc />
    public ValueTask InitializeAsync(IHookStoreListener listener, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(listener);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            _listener = listener;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            IReadOnlyList<GroupRecord> groups = [.. _groups.Values.OrderBy(g => g.Name, StringComparer.Ordinal).Select(g => g.ToRecord())];
            return ValueTask.FromResult(groups);
        }
    }

    /// <inheritdoc />
    public ValueTask<GroupRecord> AddGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        ArgumentNullException.ThrowIfNull(patterns);
        cancellationToken.ThrowIfCancellationRequested();
        GroupRecord record;
        var changed = false;
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.TryGetValue(group, out var g))
            {
                g = new MemoryGroup(group);
                _groups.Add(group, g);
                changed = true;
            }

            foreach (var pattern in patterns)
            {
                changed |= g.Patterns.Add(pattern);
            }

            record = g.ToRecord();
        }

        if (changed)
        {
            _listener.OnGroupsChanged();
        }

        return ValueTask.FromResult(record);
    }

    /// <inheritdoc />
    public ValueTask<GroupRecord?> RemoveGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(patterns);
        cancellationToken.ThrowIfCancellationRequested();
        GroupRecord record;
        var changed = false;
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.TryGetValue(group, out var g))
            {
                return ValueTask.FromResult<GroupRecord?>(null);
            }

            foreach (var pattern in patterns)
            {
                changed |= g.Patterns.Remove(pattern);
            }

            record = g.ToRecord();
        }

        if (changed)
        {
            _listener.OnGroupsChanged();
        }

        return ValueTask.FromResult<GroupRecord?>(record);
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteGroupAsync(string group, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.Remove(group, out var g))
            {
                return ValueTask.FromResult(false);
            }

            // The group's own indexes go with it; only the store-wide ones need cleaning.
            foreach (var d in g.Backlog.Values)
            {
                if (d.State == DeliveryState.Leased)
                {
                    _leases.Remove(new Timed<MemoryDelivery>(d.LeaseUntil, d.Seq, d));
                }
                else
                {
                    _retention.Remove(new Timed<MemoryDelivery>(d.RetainUntil, d.Seq, d));
                }
            }
        }

        _listener.OnGroupsChanged();
        return ValueTask.FromResult(true);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<NewEvent> events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        cancellationToken.ThrowIfCancellationRequested();
        var results = new AppendResult[events.Count];
        var available = new HashSet<string>(StringComparer.Ordinal);
        lock (_lock)
        {
            ThrowIfDisposed();
            for (var i = 0; i < events.Count; i++)
            {
                results[i] = AppendOne(events[i], now, available);
            }
        }

        if (available.Count > 0)
        {
            _listener.OnEventsAvailable([.. available]);
        }

        return ValueTask.FromResult<IReadOnlyList<AppendResult>>(results);
    }

    /// <inheritdoc />
    public ValueTask<LeaseBatch> LeaseAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfLessThan(request.Max, 1);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.TryGetValue(request.Group, out var g))
            {
                return ValueTask.FromResult(LeaseBatch.Empty);
            }

            PromoteDue(g, request.Now);
            var leased = new List<LeasedEvent>(Math.Min(request.Max, 256));

            // Merge the ready sets of the labels the worker takes, oldest event first.
            var sources = new PriorityQueue<SortedSet<MemoryDelivery>, long>();
            List<string>? emptied = null;
            foreach (var (label, set) in g.Ready)
            {
                if (set.Count > 0 && request.Filter.Matches(label))
                {
                    sources.Enqueue(set, set.Min!.EventId);
                }
            }

            while (leased.Count < request.Max && sources.TryDequeue(out var set, out _))
            {
                var d = set.Min!;
                set.Remove(d);
                d.Index = DeliveryIndex.None;
                if (set.Count > 0)
                {
                    sources.Enqueue(set, set.Min!.EventId);
                }
                else
                {
                    (emptied ??= []).Add(d.Event.Label);
                }

                if (d.DueAt > request.Now)
                {
                    // Promoted by a caller with a later clock than this one: not due for this request.
                    AddDelayed(g, d);
                    continue;
                }

                leased.Add(Lease(g, d, request));
            }

            if (emptied is not null)
            {
                foreach (var label in emptied)
                {
                    if (g.Ready.TryGetValue(label, out var s) && s.Count == 0)
                    {
                        g.Ready.Remove(label);
                    }
                }
            }

            DateTimeOffset? nextDueAt = g.Delayed.Count > 0 ? g.Delayed.Min.At : null;
            return ValueTask.FromResult(new LeaseBatch(leased, nextDueAt));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<SettleResult>> SettleAsync(string group, IReadOnlyList<SettleItem> items, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(items);
        cancellationToken.ThrowIfCancellationRequested();
        var results = new SettleResult[items.Count];
        List<OutcomeNotice>? outcomes = null;
        lock (_lock)
        {
            ThrowIfDisposed();
            _groups.TryGetValue(group, out var g);
            for (var i = 0; i < items.Count; i++)
            {
                var item = items[i];
                if (g is null || !TryGetCurrentLease(g, item.Lease, out var d) || d.LeaseUntil <= now)
                {
                    results[i] = SettleResult.Stale;
                    continue;
                }

                OutcomeNotice? outcome = null;
                switch (item.Kind)
                {
                    case SettleKind.Ack:
                        RemoveFromBacklog(g, d);
                        outcome = new OutcomeNotice(d.EventId, g.Name, OutcomeKind.Handled, d.Attempt, null, false);
                        break;
                    case SettleKind.Nack:
                        outcome = Fail(g, d, item.Until, item.Error, item.MaxAttempts, now);
                        break;
                    case SettleKind.Extend:
                        _leases.Remove(new Timed<MemoryDelivery>(d.LeaseUntil, d.Seq, d));
                        d.LeaseUntil = item.Until;
                        _leases.Add(new Timed<MemoryDelivery>(d.LeaseUntil, d.Seq, d));
                        break;
                    case SettleKind.Reject:
                        RemoveFromBacklog(g, d);
                        DeadLetter(g, d, DeadLetterReasons.Rejected, item.Error, now);
                        outcome = new OutcomeNotice(d.EventId, g.Name, OutcomeKind.DeadLettered, d.Attempt, item.Error, false);
                        break;
                    default:
                        throw new ArgumentOutOfRangeException(nameof(items), item.Kind, "Unknown settle kind.");
                }

                results[i] = new SettleResult(SettleStatus.Confirmed, outcome);
                if (outcome is not null)
                {
                    (outcomes ??= []).Add(outcome);
                }
            }
        }

        if (outcomes is not null)
        {
            _listener.OnOutcomes(outcomes);
        }

        return ValueTask.FromResult<IReadOnlyList<SettleResult>>(results);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutcomeNotice>> ReleaseAsync(string group, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(leases);
        cancellationToken.ThrowIfCancellationRequested();
        var outcomes = new List<OutcomeNotice>();
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_groups.TryGetValue(group, out var g))
            {
                foreach (var item in leases)
                {
                    // Expiry is not required: the worker is gone, the lease is returned whatever its end time.
                    if (TryGetCurrentLease(g, item.Lease, out var d))
                    {
                        outcomes.Add(Fail(g, d, now, reason, item.MaxAttempts, now));
                    }
                }
            }
        }

        if (outcomes.Count > 0)
        {
            _listener.OnOutcomes(outcomes);
        }

        return ValueTask.FromResult<IReadOnlyList<OutcomeNotice>>(outcomes);
    }

    /// <inheritdoc />
    public ValueTask<ExpiryResult> ExpireAsync(DateTimeOffset now, IGroupPolicies policies, int maxItems, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policies);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxItems, 1);
        cancellationToken.ThrowIfCancellationRequested();
        var expired = new List<ExpiredLease>();
        var outcomes = new List<OutcomeNotice>();
        var retentionExpired = 0;
        var keysForgotten = 0;
        bool more;
        lock (_lock)
        {
            ThrowIfDisposed();

            // Leases first: an expired lease whose retention also passed is dead-lettered as expired in the same call.
            while (expired.Count < maxItems && _leases.Count > 0 && _leases.Min.At <= now)
            {
                var d = _leases.Min.Value;
                var g = d.Group;
                expired.Add(new ExpiredLease(g.Name, new LeaseRef(d.EventId, d.LeaseNo)));
                outcomes.Add(Fail(g, d, now, LeaseExpiredError, policies.MaxAttempts(g.Name), now));
            }

            while (retentionExpired < maxItems && _retention.Count > 0 && _retention.Min.At <= now)
            {
                var d = _retention.Min.Value;
                var g = d.Group;
                RemoveFromBacklog(g, d);
                DeadLetter(g, d, DeadLetterReasons.Expired, RetentionExpiredError, now);
                outcomes.Add(new OutcomeNotice(d.EventId, g.Name, OutcomeKind.DeadLettered, d.Attempt, RetentionExpiredError, false));
                retentionExpired++;
            }

            while (keysForgotten < maxItems && _keyExpiry.Count > 0 && _keyExpiry.Min.At <= now)
            {
                var entry = _keyExpiry.Min;
                _keyExpiry.Remove(entry);
                _keys.Remove(entry.Value);
                keysForgotten++;
            }

            more = (_leases.Count > 0 && _leases.Min.At <= now)
                || (_retention.Count > 0 && _retention.Min.At <= now)
                || (_keyExpiry.Count > 0 && _keyExpiry.Min.At <= now);
        }

        if (outcomes.Count > 0)
        {
            _listener.OnOutcomes(outcomes);
        }

        return ValueTask.FromResult(new ExpiryResult(expired, outcomes, retentionExpired, keysForgotten, more));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        cancellationToken.ThrowIfCancellationRequested();
        var outcomes = new OutcomeNotice?[groups.Count];
        lock (_lock)
        {
            ThrowIfDisposed();
            for (var i = 0; i < groups.Count; i++)
            {
                var name = groups[i];
                if (!_groups.TryGetValue(name, out var g))
                {
                    // Neither in a backlog nor in dead letters: nothing is left to happen to it there.
                    outcomes[i] = new OutcomeNotice(eventId, name, OutcomeKind.Handled, 0, null, false);
                }
                else if (g.Backlog.TryGetValue(eventId, out var d))
                {
                    outcomes[i] = d.Attempt > 0 && d.LastError is not null
                        ? new OutcomeNotice(eventId, name, OutcomeKind.Failed, d.Attempt, d.LastError, true)
                        : null;
                }
                else if (g.DeadLetters.TryGetValue(eventId, out d))
                {
                    outcomes[i] = new OutcomeNotice(eventId, name, OutcomeKind.DeadLettered, d.Attempt, d.LastError, false);
                }
                else
                {
                    // Acked: the memory engine keeps no trace of handled deliveries, so the attempt is unknown.
                    outcomes[i] = new OutcomeNotice(eventId, name, OutcomeKind.Handled, 0, null, false);
                }
            }
        }

        return ValueTask.FromResult<IReadOnlyList<OutcomeNotice?>>(outcomes);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            IReadOnlyList<GroupStats> stats =
            [
                .. _groups.Values
                    .OrderBy(g => g.Name, StringComparer.Ordinal)
                    .Select(g => new GroupStats(
                        g.Name,
                        [.. g.Patterns],
                        g.Backlog.Count,
                        g.Leased,
                        g.DeadLetters.Count,
                        g.ByRaisedAt.Count > 0 ? g.ByRaisedAt.Min.At : null)),
            ];
            return ValueTask.FromResult(stats);
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<DeadLetterRecord>?> ListDeadLettersAsync(string group, long afterEventId, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.TryGetValue(group, out var g))
            {
                return ValueTask.FromResult<IReadOnlyList<DeadLetterRecord>?>(null);
            }

            var page = new List<DeadLetterRecord>(Math.Min(limit, g.DeadLetterIds.Count));
            if (limit > 0 && afterEventId < long.MaxValue && g.DeadLetterIds.Count > 0)
            {
                foreach (var id in g.DeadLetterIds.GetViewBetween(afterEventId + 1, long.MaxValue))
                {
                    var d = g.DeadLetters[id];
                    var e = d.Event;
                    page.Add(new DeadLetterRecord(
                        e.Id, e.Label, e.Payload, e.OrderingKey, e.Source, e.RaisedAt,
                        d.Attempt, d.LastError, d.DeadLetterReason ?? string.Empty, d.DeadLetteredAt));
                    if (page.Count == limit)
                    {
                        break;
                    }
                }
            }

            return ValueTask.FromResult<IReadOnlyList<DeadLetterRecord>?>(page);
        }
    }

    /// <inheritdoc />
    public ValueTask<int?> RedriveAsync(string group, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        cancellationToken.ThrowIfCancellationRequested();
        var moved = 0;
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_groups.TryGetValue(group, out var g))
            {
                return ValueTask.FromResult<int?>(null);
            }

            IEnumerable<long> ids = eventIds ?? (IEnumerable<long>)[.. g.DeadLetterIds];
            foreach (var id in ids)
            {
                if (!g.DeadLetters.Remove(id, out var d))
                {
                    continue;
                }

                g.DeadLetterIds.Remove(id);
                d.Attempt = 0;
                d.LastError = null;
                d.DeadLetterReason = null;
                d.DueAt = now;
                d.RetainUntil = retainUntil;
                AddToBacklog(g, d);
                moved++;
            }
        }

        if (moved > 0)
        {
            _listener.OnEventsAvailable([group]);
        }

        return ValueTask.FromResult<int?>(moved);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (!_disposed)
            {
                _disposed = true;
                _groups.Clear();
                _leases.Clear();
                _retention.Clear();
                _keys.Clear();
                _keyExpiry.Clear();
                _listener = NullHookStoreListener.Instance;
            }
        }

        return ValueTask.CompletedTask;
    }

    private AppendResult AppendOne(NewEvent e, DateTimeOffset now, HashSet<string> available)
    {
        if (e.IdempotencyKey is { } key && _keys.TryGetValue(key, out var seen) && seen.Until > now)
        {
            return new AppendResult(AppendStatus.Duplicate, seen.EventId, seen.Groups);
        }

        // Check every limit before storing anything: the item is all or nothing.
        foreach (var routed in e.Groups)
        {
            if (_groups.TryGetValue(routed.Group, out var g) && g.Backlog.Count >= routed.MaxBacklog)
            {
                return AppendResult.Full(routed.Group);
            }
        }

        var evt = new MemoryEvent(++_lastEventId, e.Label, e.Payload.ToArray(), e.OrderingKey, e.Source, e.RaisedAt);
        var stored = new List<string>(e.Groups.Count);
        foreach (var routed in e.Groups)
        {
            // The dispatcher routes to existing groups only; a group deleted meanwhile gets nothing.
            if (!_groups.TryGetValue(routed.Group, out var g) || g.Backlog.ContainsKey(evt.Id))
            {
                continue;
            }

            AddToBacklog(g, new MemoryDelivery(g, evt, ++_lastSeq, routed.RetainUntil));
            stored.Add(g.Name);
            available.Add(g.Name);
        }

        if (e.IdempotencyKey is { } newKey)
        {
            if (_keys.Remove(newKey, out var old))
            {
                _keyExpiry.Remove(new Timed<string>(old.Until, old.Seq, newKey));
            }

            var entry = new IdempotencyEntry(evt.Id, stored, e.IdempotencyUntil, ++_lastSeq);
            _keys.Add(newKey, entry);
            _keyExpiry.Add(new Timed<string>(entry.Until, entry.Seq, newKey));
        }

        return new AppendResult(AppendStatus.Stored, evt.Id, stored);
    }

    private LeasedEvent Lease(MemoryGroup g, MemoryDelivery d, LeaseRequest request)
    {
        _retention.Remove(new Timed<MemoryDelivery>(d.RetainUntil, d.Seq, d));
        d.State = DeliveryState.Leased;
        d.Attempt++;
        d.LeaseNo = ++_lastLeaseNo;
        d.LeaseUntil = request.LeaseUntil;
        d.WorkerId = request.WorkerId;
        _leases.Add(new Timed<MemoryDelivery>(d.LeaseUntil, d.Seq, d));
        g.Leased++;
        var e = d.Event;
        return new LeasedEvent(e.Id, d.LeaseNo, d.Attempt, e.Label, e.Payload, e.OrderingKey, e.Source, e.RaisedAt, d.LeaseUntil);
    }

    /// <summary>A failed attempt of a leased delivery: retry at <paramref name="dueAt"/>, or dead letter past max attempts.</summary>
    private OutcomeNotice Fail(MemoryGroup g, MemoryDelivery d, DateTimeOffset dueAt, string? error, int maxAttempts, DateTimeOffset now)
    {
        if (d.Attempt >= maxAttempts)
        {
            RemoveFromBacklog(g, d);
            DeadLetter(g, d, DeadLetterReasons.MaxAttempts, error, now);
            return new OutcomeNotice(d.EventId, g.Name, OutcomeKind.DeadLettered, d.Attempt, error, false);
        }

        EndLease(g, d);
        d.DueAt = dueAt;
        d.LastError = error;
        MakePending(g, d);
        return new OutcomeNotice(d.EventId, g.Name, OutcomeKind.Failed, d.Attempt, error, true);
    }

    private static bool TryGetCurrentLease(MemoryGroup g, LeaseRef lease, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MemoryDelivery? delivery)
    {
        if (g.Backlog.TryGetValue(lease.EventId, out delivery)
            && delivery.State == DeliveryState.Leased
            && delivery.LeaseNo == lease.LeaseNo)
        {
            return true;
        }

        delivery = null;
        return false;
    }

    private void EndLease(MemoryGroup g, MemoryDelivery d)
    {
        _leases.Remove(new Timed<MemoryDelivery>(d.LeaseUntil, d.Seq, d));
        d.WorkerId = null;
        g.Leased--;
    }

    /// <summary>Adds a new or redriven delivery to the group's backlog, as pending.</summary>
    private void AddToBacklog(MemoryGroup g, MemoryDelivery d)
    {
        g.Backlog.Add(d.EventId, d);
        g.ByRaisedAt.Add(new Timed<MemoryDelivery>(d.Event.RaisedAt, d.Seq, d));
        if (d.Event.OrderingKey is { } key)
        {
            if (!g.OrderingKeys.TryGetValue(key, out var members))
            {
                members = new SortedSet<MemoryDelivery>(ByEventId.Instance);
                g.OrderingKeys.Add(key, members);
            }

            var previousFirst = members.Min;
            members.Add(d);

            // A redriven older event goes before the key's current first one, which must wait again.
            if (previousFirst is not null && ReferenceEquals(members.Min, d) && previousFirst.State == DeliveryState.Pending)
            {
                Unindex(g, previousFirst);
            }
        }

        MakePending(g, d);
    }

    /// <summary>Marks a backlog delivery pending and, when first of its ordering key, a lease candidate.</summary>
    private void MakePending(MemoryGroup g, MemoryDelivery d)
    {
        d.State = DeliveryState.Pending;
        _retention.Add(new Timed<MemoryDelivery>(d.RetainUntil, d.Seq, d));
        if (d.Event.OrderingKey is null || ReferenceEquals(g.OrderingKeys[d.Event.OrderingKey].Min, d))
        {
            Index(g, d);
        }
    }

    private void RemoveFromBacklog(MemoryGroup g, MemoryDelivery d)
    {
        if (d.State == DeliveryState.Leased)
        {
            EndLease(g, d);
        }
        else
        {
            _retention.Remove(new Timed<MemoryDelivery>(d.RetainUntil, d.Seq, d));
            Unindex(g, d);
        }

        g.Backlog.Remove(d.EventId);
        g.ByRaisedAt.Remove(new Timed<MemoryDelivery>(d.Event.RaisedAt, d.Seq, d));
        if (d.Event.OrderingKey is { } key)
        {
            var members = g.OrderingKeys[key];
            var wasFirst = ReferenceEquals(members.Min, d);
            members.Remove(d);
            if (members.Count == 0)
            {
                g.OrderingKeys.Remove(key);
            }
            else if (wasFirst && members.Min is { State: DeliveryState.Pending, Index: DeliveryIndex.None } next)
            {
                Index(g, next);
            }
        }
    }

    private static void DeadLetter(MemoryGroup g, MemoryDelivery d, string reason, string? error, DateTimeOffset now)
    {
        d.State = DeliveryState.DeadLettered;
        d.DeadLetterReason = reason;
        d.LastError = error;
        d.DeadLetteredAt = now;
        g.DeadLetters.Add(d.EventId, d);
        g.DeadLetterIds.Add(d.EventId);
    }

    private static void Index(MemoryGroup g, MemoryDelivery d)
    {
        if (d.DueAt == MemoryDelivery.DueAtOnce)
        {
            if (!g.Ready.TryGetValue(d.Event.Label, out var set))
            {
                set = new SortedSet<MemoryDelivery>(ByEventId.Instance);
                g.Ready.Add(d.Event.Label, set);
            }

            set.Add(d);
            d.Index = DeliveryIndex.Ready;
        }
        else
        {
            AddDelayed(g, d);
        }
    }

    private static void AddDelayed(MemoryGroup g, MemoryDelivery d)
    {
        g.Delayed.Add(new Timed<MemoryDelivery>(d.DueAt, d.Seq, d));
        d.Index = DeliveryIndex.Delayed;
    }

    private static void Unindex(MemoryGroup g, MemoryDelivery d)
    {
        switch (d.Index)
        {
            case DeliveryIndex.Ready:
                if (g.Ready.TryGetValue(d.Event.Label, out var set))
                {
                    set.Remove(d);
                    if (set.Count == 0)
                    {
                        g.Ready.Remove(d.Event.Label);
                    }
                }

                break;
            case DeliveryIndex.Delayed:
                g.Delayed.Remove(new Timed<MemoryDelivery>(d.DueAt, d.Seq, d));
                break;
            case DeliveryIndex.None:
            default:
                break;
        }

        d.Index = DeliveryIndex.None;
    }

    /// <summary>Moves the group's delayed deliveries due at <paramref name="now"/> to the ready sets.</summary>
    private static void PromoteDue(MemoryGroup g, DateTimeOffset now)
    {
        while (g.Delayed.Count > 0 && g.Delayed.Min.At <= now)
        {
            var entry = g.Delayed.Min;
            g.Delayed.Remove(entry);
            var d = entry.Value;
            if (!g.Ready.TryGetValue(d.Event.Label, out var set))
            {
                set = new SortedSet<MemoryDelivery>(ByEventId.Instance);
                g.Ready.Add(d.Event.Label, set);
            }

            set.Add(d);
            d.Index = DeliveryIndex.Ready;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
