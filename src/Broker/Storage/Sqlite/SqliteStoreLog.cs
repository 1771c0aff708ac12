using Microsoft.Extensions.Logging;

namespace HookBroker.Broker.Storage.Sqlite;

internal static partial class SqliteStoreLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "SQLite store opened at {Path} (durability {Durability}); {Leases} lease(s) left by the previous process returned to pending")]
    public static partial void Opened(ILogger logger, string path, Durability durability, int leases);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "SQLite write batch of {Operations} operation(s) failed and was rolled back")]
    public static partial void BatchFailed(ILogger logger, int operations, Exception exception);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "SQLite write batch of {Operations} operation(s) runs again one operation per transaction, so only the faulty one fails")]
    public static partial void BatchSplit(ILogger logger, int operations);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Critical, Message = "SQLite store could not recover after a failed batch")]
    public static partial void RecoveryFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "SQLite store at {Path} migrated from schema version {From} to {To} (pending deliveries kept as rows of their own)")]
    public static partial void Migrated(ILogger logger, string path, int from, int to);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "SQLite store could not delete a step of the event log (retried after the next batch)")]
    public static partial void TrimFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Debug, Message = "SQLite checkpoint: {Copied} of {Frames} write-ahead log frame(s) copied into the database")]
    public static partial void Checkpointed(ILogger logger, int frames, int copied);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Debug, Message = "SQLite write-ahead log of {Frames} frame(s) fully copied by the writer in {Milliseconds} ms; its next write starts the log over")]
    public static partial void LogRewound(ILogger logger, int frames, double milliseconds);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "SQLite checkpoint failed with code {Code} ({Error}); the log keeps its pages and the next checkpoint copies them")]
    public static partial void CheckpointFailed(ILogger logger, int code, string error);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "The storage listener threw while being told about committed changes")]
    public static partial void ListenerFailed(ILogger logger, Exception exception);
}
