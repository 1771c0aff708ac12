namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>What <see cref="SqliteStateLoader"/> rebuilt from storage.</summary>
/// <param name="Groups">Every group by id, with floor, marks, counts and scan position.</param>
/// <param name="NextEventId">The next event id (stored).</param>
/// <param name="NextLeaseNo">The next lease number (stored).</param>
/// <param name="RecoveredLeases">Leases of a previous process returned to pending (0 unless after a crash or stop).</param>
internal sealed record SqliteLoadedState(Dictionary<long, SqliteGroupState> Groups, long NextEventId, long NextLeaseNo, int RecoveredLeases);
