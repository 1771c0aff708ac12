namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>Options of the embedded SQLite engine (<see cref="SqliteHookStore"/>).</summary>
public sealed class SqliteStoreOptions
{
    /// <summary>The folder holding the database; created when missing. Default <c>./data</c>.</summary>
    public string DataPath { get; set; } = "./data";

    /// <summary>The database file name inside <see cref="DataPath"/>. Default <c>hookbroker.db</c>.</summary>
    public string FileName { get; set; } = "hookbroker.db";

    /// <summary>What a confirmed write survives. Default <see cref="Sqlite.Durability.Normal"/> (a process crash).</summary>
    public Durability Durability { get; set; } = Durability.Normal;

    /// <summary>
    /// How many operations may wait for the writer before callers are held back (the bounded queue in front of the
    /// single writer). Default 4,096.
    /// </summary>
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>At most this many operations share one transaction (group commit). Default 1,000.</summary>
    public int MaxOperationsPerCommit { get; set; } = 1000;

    /// <summary>
    /// A group commit stops taking operations once they carry this many events or settlements. Default 10,000.
    /// </summary>
    public int MaxItemsPerCommit { get; set; } = 10_000;

    /// <summary>SQLite page cache of the writer connection, in KiB. Default 8,192 (8 MiB).</summary>
    /// <remarks>
    /// Larger is slower here, not faster. When a b-tree split renumbers sibling pages, SQLite parks a page at the
    /// lock-byte page number (262,145 with 4 KiB pages) for a moment, and its page cache keeps that as the highest page
    /// it ever held; so the commit that follows drops the pages past the end of the database by walking the whole cache.
    /// With the index b-trees (idempotency keys, their expiry) splitting all the time, a third of the commits did so:
    /// 3.8% of the broker's CPU at 32 MiB (8,192 pages). 8 MiB still holds the hot pages (the tails of the log and the
    /// key indexes, the groups' marks). Measured end to end (SDK on both sides): 106,700 and 110,600 events/s at 8 MiB
    /// (4 MiB: 103,700-109,400) against 80,700-99,400 at 32 MiB, broker CPU at 5,000 events/s 45-48 µs against 52-69 µs;
    /// the 1M-event backlog drained as fast (157,000-164,000/s at every size); broker RSS 25 MB lower.
    /// </remarks>
    public int CacheSizeKiB { get; set; } = 8 * 1024;

    /// <summary>
    /// A lease passes over at most this many events it cannot take (another worker's label, waiting behind an ordering
    /// key), giving each a delivery row, before it returns and lets the dispatcher call again. Default 1,024.
    /// </summary>
    internal int MaxRowsPerLease { get; set; } = 1024;

    /// <summary>
    /// A fresh lease holding its group's floor more than this many event ids behind the newest event gets a delivery
    /// row of its own, so the log and the marks behind it can go. Default 1,048,576.
    /// </summary>
    internal long MaxLeaseFloorLag { get; set; } = 1 << 20;

    /// <summary>
    /// The log is trimmed after this many appended events (and at every housekeeping pass), in small steps between
    /// batches so none waits long behind one. Default 1,024.
    /// </summary>
    internal int TrimEveryEvents { get; set; } = 1024;

    /// <summary>One trim step deletes at most this many event ids' worth of the log. Default 16,384.</summary>
    internal int MaxTrimRows { get; set; } = 16_384;

    /// <summary>
    /// A group whose floor is more than this many event ids behind the newest event is a laggard: the log's deletion
    /// steps around its events instead of waiting for it. Default 65,536.
    /// </summary>
    internal long LaggardDistance { get; set; } = 1 << 16;

    /// <summary>
    /// The stored next event id and lease number run this far ahead of the ones handed out, so most commits need not
    /// write them; a restart skips the ids reserved but unused. Default 4,096.
    /// </summary>
    internal long ReservedIds { get; set; } = 4096;

    /// <summary>
    /// Besides every housekeeping pass, the write-ahead log is copied into the database file (a checkpoint, off the
    /// writer's path) after commits that changed this many rows. Default 100,000.
    /// </summary>
    internal int CheckpointEveryChanges { get; set; } = 100_000;

    /// <summary>
    /// Once the writer wrote this many pages to the write-ahead log since it last started over, it finishes a checkpoint
    /// between two batches so that the log starts over (see <see cref="SqliteCheckpointer"/>). Default 4,096 (16 MiB).
    /// </summary>
    internal int RewindLogFrames { get; set; } = 4_096;

    /// <summary>
    /// Leases read the newest events from memory (<see cref="SqliteLogTail"/>) until every group has scanned them: at
    /// most this many events are kept there. Default 8,192; 0 reads every event back from the log.
    /// </summary>
    internal int LogTailEvents { get; set; } = 8_192;

    /// <summary>
    /// At most this many bytes of payload are kept in <see cref="SqliteLogTail"/>, in blocks of 64 KiB. Default 4 MiB.
    /// </summary>
    internal long LogTailBytes { get; set; } = 4 << 20;

    /// <summary>The full path of the database file.</summary>
    public string DatabasePath => Path.GetFullPath(Path.Combine(DataPath, FileName));

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataPath))
        {
            throw new ArgumentException("SqliteStoreOptions.DataPath must name a folder.", nameof(DataPath));
        }

        if (string.IsNullOrWhiteSpace(FileName) || FileName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
        {
            throw new ArgumentException("SqliteStoreOptions.FileName must be a plain file name.", nameof(FileName));
        }

        if (!Enum.IsDefined(Durability))
        {
            throw new ArgumentException($"SqliteStoreOptions.Durability '{Durability}' is not Normal or Fsync.", nameof(Durability));
        }

        if (QueueCapacity < 1 || MaxOperationsPerCommit < 1 || MaxItemsPerCommit < 1 || CacheSizeKiB < 0)
        {
            throw new ArgumentException("SqliteStoreOptions queue and batch sizes must be positive.", nameof(QueueCapacity));
        }

        if (MaxRowsPerLease < 1 || MaxLeaseFloorLag < 1 || TrimEveryEvents < 1 || MaxTrimRows < 1 || LaggardDistance < 0 || ReservedIds < 0
            || CheckpointEveryChanges < 1 || RewindLogFrames < 1 || LogTailEvents < 0 || LogTailBytes < 0)
        {
            throw new ArgumentException("SqliteStoreOptions log limits must be positive.", nameof(MaxTrimRows));
        }
    }
}
