namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>An appended event as the log row holds it (see <see cref="SqliteRoutes"/> for the routes and retention).</summary>
internal sealed record SqliteTailEvent(
    long EventId,
    string Label,
    ReadOnlyMemory<byte> Payload,
    string? OrderingKey,
    string? Source,
    long RaisedAt,
    string Routes,
    long RetainUntil,
    string? RetainOverrides);
