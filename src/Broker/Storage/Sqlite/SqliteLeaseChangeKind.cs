namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>What a batch did to a lease, so a failed batch can put the leases back as they were committed.</summary>
internal enum SqliteLeaseChangeKind
{
    /// <summary>Leased in this batch.</summary>
    Added,

    /// <summary>Settled, released, expired, or its group deleted in this batch.</summary>
    Removed,

    /// <summary>Its end moved.</summary>
    Extended,

    /// <summary>Given a delivery row of its own while leased.</summary>
    MovedToRow,
}
