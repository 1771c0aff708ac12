namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>An event a lease may take, read from the group's log or its ready delivery rows.</summary>
/// <param name="EventId">The event.</param>
/// <param name="Attempt">Attempts so far (0 for a fresh event of the log).</param>
/// <param name="Label">Its label.</param>
/// <param name="Payload">Its payload.</param>
/// <param name="OrderingKey">Its ordering key, or null.</param>
/// <param name="Source">Who raised it, or null.</param>
/// <param name="RaisedAt">When it was raised (UTC ticks).</param>
/// <param name="RetainUntil">Its retention in the group (UTC ticks).</param>
internal sealed record SqliteCandidate(
    long EventId,
    int Attempt,
    string Label,
    byte[] Payload,
    string? OrderingKey,
    string? Source,
    long RaisedAt,
    long RetainUntil);
