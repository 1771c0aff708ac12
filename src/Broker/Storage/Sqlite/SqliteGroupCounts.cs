namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>A group's counts as the writer keeps them, for <see cref="IHookStore.GetGroupStatsAsync"/>.</summary>
/// <param name="Id">The group id.</param>
/// <param name="Record">Name and patterns.</param>
/// <param name="Backlog">Events not yet acked or dead-lettered, leased ones included.</param>
/// <param name="InFlight">Current leases.</param>
/// <param name="DeadLetters">Dead letters.</param>
/// <param name="HasFresh">True when unfinished events of the group are in the log (not in rows).</param>
/// <param name="HasRows">True when the group has delivery rows.</param>
internal sealed record SqliteGroupCounts(long Id, GroupRecord Record, long Backlog, long InFlight, long DeadLetters, bool HasFresh, bool HasRows);
