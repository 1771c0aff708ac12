namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>One change to a lease in the current batch, with the lease's values before it.</summary>
/// <param name="GroupId">The lease's group.</param>
/// <param name="Lease">The lease.</param>
/// <param name="Kind">What happened.</param>
/// <param name="LeaseUntil">Its end before the change.</param>
/// <param name="HadRow">Whether it had a delivery row before the change.</param>
internal readonly record struct SqliteLeaseChange(long GroupId, SqliteLease Lease, SqliteLeaseChangeKind Kind, long LeaseUntil, bool HadRow);
