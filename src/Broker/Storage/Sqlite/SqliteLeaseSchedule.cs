namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A group's current leases in order of expiry, for housekeeping. Leases mostly arrive with the latest end (now plus
/// the ack deadline), so adding walks back from the tail a step or two; removal is O(1).
/// </summary>
internal sealed class SqliteLeaseSchedule
{
    private readonly LinkedList<SqliteLease> _leases = new();

    public int Count => _leases.Count;

    /// <summary>The lease that expires first, or null.</summary>
    public SqliteLease? First => _leases.First?.Value;

    public void Add(SqliteLease lease)
    {
        var after = _leases.Last;
        while (after is not null && after.Value.LeaseUntil > lease.LeaseUntil)
        {
            after = after.Previous;
        }

        lease.Node = after is null ? _leases.AddFirst(lease) : _leases.AddAfter(after, lease);
    }

    public void Remove(SqliteLease lease)
    {
        if (lease.Node is { } node)
        {
            _leases.Remove(node);
            lease.Node = null;
        }
    }

    /// <summary>Moves a lease whose end changed.</summary>
    public void Reschedule(SqliteLease lease)
    {
        Remove(lease);
        Add(lease);
    }

    public IEnumerable<SqliteLease> All => _leases;

    public void Clear() => _leases.Clear();
}
