namespace HookBroker.Broker.Storage;

/// <summary>A group and the union of its patterns.</summary>
public sealed record GroupRecord(string Name, IReadOnlyList<string> Patterns);

/// <summary>A group an event is routed to, with the limits that apply to it there.</summary>
/// <param name="Group">The group name.</param>
/// <param name="RetainUntil">When the event, still undelivered in this group, goes to dead letters as expired.</param>
/// <param name="MaxBacklog">The group's backlog limit; the append is rejected when the backlog is at it.</param>
public sealed record RoutedGroup(string Group, DateTimeOffset RetainUntil, long MaxBacklog);

/// <summary>An event to append.</summary>
/// <param name="Label">The validated label.</param>
/// <param name="Payload">Args and headers, serialized; opaque to engines.</param>
/// <param name="OrderingKey">Null or the ordering key.</param>
/// <param name="IdempotencyKey">Null or the idempotency key.</param>
/// <param name="IdempotencyUntil">When the key is forgotten (ignored without a key).</param>
/// <param name="Source">Null or who raised it.</param>
/// <param name="RaisedAt">When the broker accepted it.</param>
/// <param name="Groups">The groups it is routed to (at least one).</param>
public sealed record NewEvent(
    string Label,
    ReadOnlyMemory<byte> Payload,
    string? OrderingKey,
    string? IdempotencyKey,
    DateTimeOffset IdempotencyUntil,
    string? Source,
    DateTimeOffset RaisedAt,
    IReadOnlyList<RoutedGroup> Groups);

/// <summary>What happened to one appended event.</summary>
public enum AppendStatus
{
    /// <summary>Stored under a new id.</summary>
    Stored,
    /// <summary>Its idempotency key was seen inside the window: the first event's id, nothing stored.</summary>
    Duplicate,
    /// <summary>A group's backlog is at its limit; nothing stored.</summary>
    BacklogFull,
}

/// <summary>The result of one appended event.</summary>
/// <param name="Status">Stored, duplicate or rejected.</param>
/// <param name="EventId">The new id, or the first event's id for a duplicate; 0 when rejected.</param>
/// <param name="Groups">The groups it went to (the first event's for a duplicate).</param>
/// <param name="FullGroup">For <see cref="AppendStatus.BacklogFull"/>: the group at its limit.</param>
public sealed record AppendResult(AppendStatus Status, long EventId, IReadOnlyList<string> Groups, string? FullGroup = null)
{
    /// <summary>A rejection because <paramref name="group"/>'s backlog is full.</summary>
    public static AppendResult Full(string group) => new(AppendStatus.BacklogFull, 0, [], group);
}

/// <summary>Decides whether a worker takes a label (its own patterns).</summary>
public interface ILabelFilter
{
    /// <summary>True when the worker declared a pattern matching <paramref name="label"/>.</summary>
    bool Matches(string label);
}

/// <summary>A worker asking for deliveries.</summary>
/// <param name="Group">The worker's group.</param>
/// <param name="WorkerId">Unique per stream (kept with the lease for diagnostics).</param>
/// <param name="Filter">The worker's patterns.</param>
/// <param name="Max">At most this many leases (1 or more).</param>
/// <param name="Now">Due time cut-off.</param>
/// <param name="LeaseUntil">When the new leases expire.</param>
/// <param name="MaxAttempts">The group's max attempts: an event waiting with that many attempts made (its last one was
/// in flight when a broker stopped) is dead-lettered instead of leased once more.</param>
public sealed record LeaseRequest(string Group, string WorkerId, ILabelFilter Filter, int Max, DateTimeOffset Now, DateTimeOffset LeaseUntil, int MaxAttempts = int.MaxValue);

/// <summary>Leased deliveries, and when the next delayed one (retry backoff) of the group becomes due.</summary>
public sealed record LeaseBatch(IReadOnlyList<LeasedEvent> Deliveries, DateTimeOffset? NextDueAt)
{
    /// <summary>Nothing to deliver.</summary>
    public static readonly LeaseBatch Empty = new([], null);
}

/// <summary>One delivery leased to a worker.</summary>
public sealed record LeasedEvent(
    long EventId,
    long LeaseNo,
    int Attempt,
    string Label,
    ReadOnlyMemory<byte> Payload,
    string? OrderingKey,
    string? Source,
    DateTimeOffset RaisedAt,
    DateTimeOffset LeaseUntil);

/// <summary>Identifies one lease: the event and the lease number it was leased under.</summary>
public readonly record struct LeaseRef(long EventId, long LeaseNo);

/// <summary>How a delivery is settled.</summary>
public enum SettleKind
{
    /// <summary>Handled: the event is done for the group.</summary>
    Ack,
    /// <summary>Failed: retry at <see cref="SettleItem.Until"/>, or dead-letter past max attempts.</summary>
    Nack,
    /// <summary>Still working: the lease now ends at <see cref="SettleItem.Until"/>.</summary>
    Extend,
    /// <summary>Poison: dead-letter at once.</summary>
    Reject,
}

/// <summary>One settlement.</summary>
/// <param name="Lease">Which lease.</param>
/// <param name="Kind">Ack, nack, extend or reject.</param>
/// <param name="Until">Nack: when to retry. Extend: the new lease end. Otherwise ignored.</param>
/// <param name="Error">Nack and reject: the handler's error.</param>
/// <param name="MaxAttempts">Nack: dead-letter instead of retrying once the attempt is at least this.</param>
public sealed record SettleItem(LeaseRef Lease, SettleKind Kind, DateTimeOffset Until, string? Error, int MaxAttempts);

/// <summary>Whether a settlement took effect.</summary>
public enum SettleStatus
{
    /// <summary>Applied durably.</summary>
    Confirmed,
    /// <summary>The lease expired, moved or was already settled: nothing changed.</summary>
    Stale,
}

/// <summary>The result of one settlement, with the outcome it produced (if any).</summary>
public sealed record SettleResult(SettleStatus Status, OutcomeNotice? Outcome = null)
{
    /// <summary>The shared stale result.</summary>
    public static readonly SettleResult Stale = new(SettleStatus.Stale);
}

/// <summary>A lease to release, with the group's max attempts.</summary>
public sealed record ReleaseItem(LeaseRef Lease, int MaxAttempts);

/// <summary>The outcome kinds that wait mode reports.</summary>
public enum OutcomeKind
{
    /// <summary>Acked.</summary>
    Handled,
    /// <summary>A failed attempt (the first one is what wait mode reports).</summary>
    Failed,
    /// <summary>Dead-lettered.</summary>
    DeadLettered,
}

/// <summary>An event's outcome in a group.</summary>
public sealed record OutcomeNotice(long EventId, string Group, OutcomeKind Kind, int Attempt, string? Error, bool WillRetry);

/// <summary>What housekeeping did.</summary>
/// <param name="ExpiredLeases">Leases that expired (per group), so the dispatcher frees the workers' capacity.</param>
/// <param name="Outcomes">Failures and dead letters it produced (also reported to the listener).</param>
/// <param name="RetentionExpired">Events moved to dead letters as expired.</param>
/// <param name="KeysForgotten">Idempotency keys removed.</param>
/// <param name="More">True when a limit was hit and another call has more to do.</param>
public sealed record ExpiryResult(
    IReadOnlyList<ExpiredLease> ExpiredLeases,
    IReadOnlyList<OutcomeNotice> Outcomes,
    int RetentionExpired,
    int KeysForgotten,
    bool More);

/// <summary>A lease that expired in a group.</summary>
public readonly record struct ExpiredLease(string Group, LeaseRef Lease);

/// <summary>Counts of one group.</summary>
/// <param name="Name">The group.</param>
/// <param name="Patterns">Its patterns.</param>
/// <param name="Backlog">Events not yet acked or dead-lettered, in flight included.</param>
/// <param name="InFlight">Events leased now.</param>
/// <param name="DeadLetters">Events in its dead letters.</param>
/// <param name="OldestUnackedRaisedAt">When the oldest backlog event was raised; null with an empty backlog.</param>
public sealed record GroupStats(string Name, IReadOnlyList<string> Patterns, long Backlog, long InFlight, long DeadLetters, DateTimeOffset? OldestUnackedRaisedAt);

/// <summary>A dead-lettered event.</summary>
public sealed record DeadLetterRecord(
    long EventId,
    string Label,
    ReadOnlyMemory<byte> Payload,
    string? OrderingKey,
    string? Source,
    DateTimeOffset RaisedAt,
    int Attempts,
    string? LastError,
    string Reason,
    DateTimeOffset DeadLetteredAt);

/// <summary>The reasons a delivery is dead-lettered.</summary>
public static class DeadLetterReasons
{
    /// <summary>A worker rejected it as poison.</summary>
    public const string Rejected = "rejected";
    /// <summary>It failed its last allowed attempt.</summary>
    public const string MaxAttempts = "max_attempts";
    /// <summary>Its retention passed before a worker handled it.</summary>
    public const string Expired = "expired";
}
