namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// A group as the writer keeps it in memory: identity and patterns, its floor and scan position in the log, its
/// current leases and counts. Rebuilt from storage at open and after a failed batch (<see cref="SqliteStateLoader"/>).
/// </summary>
/// <remarks>
/// <para>A fresh event of the group (in the log, no row of its own, no done mark) is either unscanned (id above
/// <see cref="Scanned"/>) or leased (see <see cref="OldestFreshLease"/>): a lease that passes over a fresh event it cannot take
/// (another worker's label, or waiting behind its ordering key) gives it a delivery row. So the floor, below which
/// every event of the group is finished or has a row, is the lower of the oldest fresh lease and the scan position.</para>
/// </remarks>
internal sealed class SqliteGroupState(long id, string name, List<string> patterns, long floor)
{
    public long Id { get; } = id;

    public string Name { get; } = name;

    /// <summary>What the group looks for in <c>events.routes</c>.</summary>
    public string Token { get; } = SqliteRoutes.Token(id);

    public List<string> Patterns { get; } = patterns;

    /// <summary>Every event of the group at or below it is finished or has a delivery row (as last computed).</summary>
    public long Floor { get; set; } = floor;

    /// <summary>The floor as stored.</summary>
    public long SavedFloor { get; set; } = floor;

    /// <summary>Every event of the group at or below it was read by a lease (or finished).</summary>
    public long Scanned { get; set; } = floor;

    /// <summary>Events of the group above <see cref="Scanned"/> (finished ones included after a restart).</summary>
    public long Unscanned { get; set; }

    /// <summary>Fresh events not yet finished: unscanned or leased.</summary>
    public long FreshUnfinished { get; set; }

    /// <summary>The group's delivery rows (ready, delayed or leased).</summary>
    public long DeliveryRows { get; set; }

    public long DeadLetters { get; set; }

    /// <summary>No unscanned fresh event of the group is retained past this (UTC ticks); housekeeping skips it till then.</summary>
    public long RetentionCheckAt { get; set; } = long.MinValue;

    /// <summary>Above this id, a done mark can only come from a lease of this process (so the scan need not look).</summary>
    public long MarkedBeforeOpen { get; set; }

    /// <summary>Current leases by event id, fresh and row-backed.</summary>
    public Dictionary<long, SqliteLease> Leases { get; } = [];

    /// <summary>
    /// Event ids of fresh leases in lease order, which is id order (the scan only moves forward); entries whose lease
    /// ended or moved to a row are skipped when they reach the front.
    /// </summary>
    private readonly Queue<long> _freshLeaseOrder = new();
    private long _lastFreshLease;

    /// <summary>The ordering keys of leased fresh events, with the event (a key has at most one: later ones wait in rows).</summary>
    public Dictionary<string, long> FreshKeys { get; } = new(StringComparer.Ordinal);

    public SqliteLeaseSchedule Schedule { get; } = new();

    public SqliteGroupMarks Marks { get; } = new();

    /// <summary>True while in the writer's list of groups to save at commit (floor, marks).</summary>
    public bool Touched { get; set; }

    /// <summary>Events not yet acked or dead-lettered, leased ones included: what the backlog limit is checked against.</summary>
    public long Backlog => FreshUnfinished + DeliveryRows;

    public GroupRecord ToRecord() => new(Name, [.. Patterns]);

    /// <summary>
    /// The highest id the floor can move to: below the oldest fresh lease, at the scan position while unscanned events
    /// remain, else <paramref name="head"/> (the newest event id: nothing of the group is unfinished in the log).
    /// </summary>
    public long ComputeFloor(long head)
    {
        if (FreshUnfinished == 0)
        {
            return head;
        }

        var floor = Unscanned > 0 ? Scanned : head;
        if (OldestFreshLease() is { } oldest)
        {
            floor = Math.Min(floor, oldest - 1);
        }

        return Math.Max(floor, Floor);
    }

    /// <summary>An event was appended for the group.</summary>
    public void OnAppended(long eventId, long retainUntil)
    {
        if (Unscanned == 0)
        {
            // Nothing of the group between the scan position and this event.
            Scanned = eventId - 1;
        }

        if (FreshUnfinished == 0 && Floor < eventId - 1)
        {
            Floor = eventId - 1;
        }

        Unscanned++;
        FreshUnfinished++;
        RetentionCheckAt = Math.Min(RetentionCheckAt, retainUntil);
    }

    /// <summary>The oldest current lease of a fresh event (it holds the floor), or null.</summary>
    public long? OldestFreshLease()
    {
        while (_freshLeaseOrder.TryPeek(out var eventId))
        {
            if (Leases.TryGetValue(eventId, out var lease) && !lease.HasRow)
            {
                return eventId;
            }

            _freshLeaseOrder.Dequeue();
        }

        return null;
    }

    /// <summary>Adds a lease (fresh ones in increasing event id order, as the scan hands them out).</summary>
    public void AddLease(SqliteLease lease)
    {
        // Checked before anything changes: a refused lease leaves no trace (a half-added one would outlive a rollback).
        if (!lease.HasRow && lease.EventId <= _lastFreshLease)
        {
            throw new InvalidOperationException($"SQLite store: fresh lease of event {lease.EventId} is out of order in group '{Name}'.");
        }

        Leases.Add(lease.EventId, lease);
        Schedule.Add(lease);
        if (lease.HasRow)
        {
            return;
        }

        _lastFreshLease = lease.EventId;
        _freshLeaseOrder.Enqueue(lease.EventId);
        if (lease.OrderingKey is { } key)
        {
            FreshKeys[key] = lease.EventId;
        }
    }

    /// <summary>A fresh event left the common path (acked, dead-lettered, or given a row).</summary>
    public void FinishFresh(long eventId, string? orderingKey)
    {
        if (orderingKey is not null && FreshKeys.TryGetValue(orderingKey, out var holder) && holder == eventId)
        {
            FreshKeys.Remove(orderingKey);
        }

        Marks.SetDone(eventId);
        FreshUnfinished--;
    }
}
