namespace HookBroker.Broker.Storage.Memory;

/// <summary>An event stored once and shared by every group's delivery of it; freed when no delivery refers to it.</summary>
internal sealed class MemoryEvent(long id, string label, byte[] payload, string? orderingKey, string? source, DateTimeOffset raisedAt)
{
    public long Id { get; } = id;

    public string Label { get; } = label;

    public byte[] Payload { get; } = payload;

    public string? OrderingKey { get; } = orderingKey;

    public string? Source { get; } = source;

    public DateTimeOffset RaisedAt { get; } = raisedAt;
}

internal enum DeliveryState
{
    Pending,
    Leased,
    DeadLettered,
}

/// <summary>Which lease-candidate index a pending delivery sits in (none while its ordering key is blocked).</summary>
internal enum DeliveryIndex
{
    None,
    Ready,
    Delayed,
}

/// <summary>One event in one group: its delivery state.</summary>
internal sealed class MemoryDelivery(MemoryGroup group, MemoryEvent evt, long seq, DateTimeOffset retainUntil)
{
    /// <summary>Due time of a new event: due for any lease request, whatever its clock.</summary>
    public static readonly DateTimeOffset DueAtOnce = DateTimeOffset.MinValue;

    public MemoryGroup Group { get; } = group;

    public MemoryEvent Event { get; } = evt;

    public long EventId => Event.Id;

    /// <summary>Unique across the store: the tie-breaker of the time-ordered indexes.</summary>
    public long Seq { get; } = seq;

    public DeliveryState State { get; set; } = DeliveryState.Pending;

    public DeliveryIndex Index { get; set; } = DeliveryIndex.None;

    public int Attempt { get; set; }

    public long LeaseNo { get; set; }

    public DateTimeOffset LeaseUntil { get; set; }

    public string? WorkerId { get; set; }

    public DateTimeOffset DueAt { get; set; } = DueAtOnce;

    public DateTimeOffset RetainUntil { get; set; } = retainUntil;

    public string? LastError { get; set; }

    public string? DeadLetterReason { get; set; }

    public DateTimeOffset DeadLetteredAt { get; set; }
}

/// <summary>A value ordered by time, ties broken by a unique sequence number.</summary>
internal readonly record struct Timed<T>(DateTimeOffset At, long Seq, T Value);

internal sealed class TimedComparer<T> : IComparer<Timed<T>>
{
    public static readonly TimedComparer<T> Instance = new();

    public int Compare(Timed<T> x, Timed<T> y)
    {
        var c = x.At.CompareTo(y.At);
        return c != 0 ? c : x.Seq.CompareTo(y.Seq);
    }
}

/// <summary>Orders the deliveries of one group by event id (unique within a group).</summary>
internal sealed class ByEventId : IComparer<MemoryDelivery>
{
    public static readonly ByEventId Instance = new();

    public int Compare(MemoryDelivery? x, MemoryDelivery? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null)
        {
            return -1;
        }

        return y is null ? 1 : x.EventId.CompareTo(y.EventId);
    }
}

/// <summary>A group's patterns and the indexes over its deliveries.</summary>
internal sealed class MemoryGroup(string name)
{
    public string Name { get; } = name;

    public SortedSet<string> Patterns { get; } = new(StringComparer.Ordinal);

    /// <summary>Pending and leased deliveries by event id.</summary>
    public Dictionary<long, MemoryDelivery> Backlog { get; } = [];

    public Dictionary<long, MemoryDelivery> DeadLetters { get; } = [];

    /// <summary>Dead-letter event ids in order, for paging.</summary>
    public SortedSet<long> DeadLetterIds { get; } = [];

    /// <summary>Due, pending deliveries that are first of their ordering key, per label, oldest event first.</summary>
    public Dictionary<string, SortedSet<MemoryDelivery>> Ready { get; } = new(StringComparer.Ordinal);

    /// <summary>Pending deliveries, first of their ordering key, waiting for their due time (promoted to ready when due).</summary>
    public SortedSet<Timed<MemoryDelivery>> Delayed { get; } = new(TimedComparer<MemoryDelivery>.Instance);

    /// <summary>Backlog deliveries with an ordering key, per key: only the first (smallest event id) may be leased.</summary>
    public Dictionary<string, SortedSet<MemoryDelivery>> OrderingKeys { get; } = new(StringComparer.Ordinal);

    /// <summary>Backlog deliveries by raise time, for the oldest-unacked figure.</summary>
    public SortedSet<Timed<MemoryDelivery>> ByRaisedAt { get; } = new(TimedComparer<MemoryDelivery>.Instance);

    public long Leased { get; set; }

    public GroupRecord ToRecord() => new(Name, [.. Patterns]);
}

/// <summary>An idempotency key: the first event it stored, until when it is remembered.</summary>
internal sealed record IdempotencyEntry(long EventId, IReadOnlyList<string> Groups, DateTimeOffset Until, long Seq);

/// <summary>The listener used before <see cref="IHookStore.InitializeAsync"/>: reports go nowhere.</summary>
internal sealed class NullHookStoreListener : IHookStoreListener
{
    public static readonly NullHookStoreListener Instance = new();

    public void OnEventsAvailable(IReadOnlyCollection<string> groups)
    {
    }

    public void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes)
    {
    }

    public void OnGroupsChanged()
    {
    }
}
