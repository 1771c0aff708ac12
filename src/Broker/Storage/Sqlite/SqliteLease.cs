namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A current lease, kept in memory only: single node, and a restart returns every lease to pending (a fresh event by
/// its missing done mark, a delivery row by its state). Settlements are checked against it.
/// </summary>
/// <param name="eventId">The event.</param>
/// <param name="leaseNo">The lease number handed to the worker.</param>
/// <param name="attempt">The attempt this lease is.</param>
/// <param name="leaseUntil">When it expires (UTC ticks).</param>
/// <param name="hasRow">True when the delivery has its own <c>deliveries</c> row; false for a fresh event of the log.</param>
/// <param name="retainUntil">The event's retention in the group (UTC ticks), copied into a row if it gets one.</param>
/// <param name="orderingKey">The event's ordering key, or null.</param>
internal sealed class SqliteLease(long eventId, long leaseNo, int attempt, long leaseUntil, bool hasRow, long retainUntil, string? orderingKey)
{
    public long EventId { get; } = eventId;

    public long LeaseNo { get; } = leaseNo;

    public int Attempt { get; } = attempt;

    public long LeaseUntil { get; set; } = leaseUntil;

    /// <summary>True once the delivery has its own row (from the start, or moved there while leased).</summary>
    public bool HasRow { get; set; } = hasRow;

    public long RetainUntil { get; } = retainUntil;

    public string? OrderingKey { get; } = orderingKey;

    /// <summary>Its place in the group's <see cref="SqliteLeaseSchedule"/>.</summary>
    public LinkedListNode<SqliteLease>? Node { get; set; }
}
