using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SQLitePCL;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// Copies the write-ahead log back into the database file on a connection of its own, so the writer rarely does it,
/// and has the writer start the log over once it grew long.
/// </summary>
/// <remarks>
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages, several times a second
/// at a steady rate): that commit copies the log's pages and waits for two fsyncs, and every caller of its batch waits
/// with it. That was the latency tail at 5,000 events/s (fsyncs of 20-170 ms on a busy disk). The writer turns it off
/// (<c>wal_autocheckpoint = 0</c>); this runs a PASSIVE checkpoint, which never blocks the writer or readers, at every
/// housekeeping pass (<see cref="RequestCheckpoint"/>, once a second by default) and after commits that changed
/// <see cref="SqliteStoreOptions.CheckpointEveryChanges"/> rows, which bounds the log under a burst. A checkpoint copies
/// only the latest version of each page, so the hot pages a steady stream rewrites in every commit are copied once.
/// <para>
/// SQLite starts the log over from its first frame only when a write transaction begins with every frame already
/// copied. Under writes without a pause that never happens on its own: the frames committed while a background
/// checkpoint runs are always left, so the log grew for as long as the writes went on (18 MB a second at 5,000
/// events/s), every write extended the file (the kernel allocating and zeroing its blocks), and the disk filled.
/// So once the writer wrote <see cref="SqliteStoreOptions.RewindLogFrames"/> frames since the log last started over,
/// it asks for a background checkpoint, which copies the bulk off its path; when that one is done, the writer finishes
/// the checkpoint itself between two batches (<see cref="TryFinishOnWriter"/>): a short copy of the frames committed
/// meanwhile, after which its next write starts the log over, rewriting pages the file already has.
/// </para>
/// </remarks>
internal sealed class SqliteCheckpointer : IAsyncDisposable
{
    private readonly Channel<bool> _due = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    private readonly SqliteConnection _db;
    private readonly SqliteStoreOptions _options;
    private readonly ILogger _logger;
    private readonly Task _loop;
    private int _changesAtLastRequest;
    private int _framesAtLastRewind;
    private int _rewindWanted;
    private int _writerFinishes;
    private long _completed;
    private long _rewinds;

    public SqliteCheckpointer(SqliteConnection db, SqliteStoreOptions options, ILogger logger)
    {
        _db = db;
        _options = options;
        _logger = logger;
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    /// <summary>Checkpoints run so far.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Times the writer finished a checkpoint so that the log started over (<see cref="TryFinishOnWriter"/>).</summary>
    public long Rewinds => Interlocked.Read(ref _rewinds);

    /// <summary>
    /// True when a rewind is due and the background checkpoint asked for it ran: the writer should finish it between
    /// two batches (<see cref="TryFinishOnWriter"/>).
    /// </summary>
    public bool WriterFinishes => Volatile.Read(ref _writerFinishes) != 0;

    /// <summary>Asks for a checkpoint; requests made while one is waiting to run are one request.</summary>
    public void RequestCheckpoint() => _due.Writer.TryWrite(true);

    /// <summary>
    /// Called by the writer loop after each commit with the writer connection's running counts of changed rows
    /// (<c>sqlite3_total_changes</c>) and of pages written to the log (both wrap): asks for a background checkpoint once
    /// enough rows changed since the last request, and for a rewind once enough frames were written since the last one.
    /// </summary>
    public void OnCommitted(int totalChanges, int framesWritten)
    {
        if (unchecked((uint)(totalChanges - _changesAtLastRequest)) >= _options.CheckpointEveryChanges)
        {
            _changesAtLastRequest = totalChanges;
            RequestCheckpoint();
        }

        if (Volatile.Read(ref _rewindWanted) == 0 && unchecked((uint)(framesWritten - _framesAtLastRewind)) >= _options.RewindLogFrames)
        {
            Volatile.Write(ref _rewindWanted, 1);
            RequestCheckpoint();
        }
    }

    /// <summary>
    /// Runs on the writer's connection between two of its transactions: copies what the log holds beyond the last
    /// checkpoint, so that every frame is in the database file and SQLite starts the log over at the next write.
    /// Returns false, and is tried again after a later batch, while a background checkpoint runs or a reader still
    /// reads an older snapshot.
    /// </summary>
    public bool TryFinishOnWriter(SqliteConnection writer, int framesWritten)
    {
        var started = Stopwatch.GetTimestamp();
        var rc = raw.sqlite3_wal_checkpoint_v2(writer.Handle, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out var logFrames, out var copiedFrames);
        if (rc == raw.SQLITE_OK && copiedFrames == logFrames)
        {
            var milliseconds = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            _framesAtLastRewind = framesWritten;
            Volatile.Write(ref _writerFinishes, 0);
            Volatile.Write(ref _rewindWanted, 0);
            Interlocked.Increment(ref _rewinds);
            SqliteStoreLog.LogRewound(_logger, logFrames, milliseconds);
            return true;
        }

        if (rc is not (raw.SQLITE_OK or raw.SQLITE_BUSY))
        {
            SqliteStoreLog.CheckpointFailed(_logger, rc, raw.sqlite3_errmsg(writer.Handle).utf8_to_string());
        }

        return false;
    }

    /// <summary>Stops after the checkpoint under way (closing the writer's connection checkpoints what is left).</summary>
    public async ValueTask DisposeAsync()
    {
        _due.Writer.TryComplete();
        await _loop;
        _db.Dispose();
    }

    private async Task RunAsync()
    {
        await foreach (var _ in _due.Reader.ReadAllAsync())
        {
            if (WriterFinishes)
            {
                // The writer copies what is left after its next batch (housekeeping makes one every second); a
                // checkpoint here would only hold the lock the writer's attempt needs.
                continue;
            }

            var rc = raw.sqlite3_wal_checkpoint_v2(_db.Handle, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out var logFrames, out var copiedFrames);
            if (rc is raw.SQLITE_OK or raw.SQLITE_BUSY)
            {
                Interlocked.Increment(ref _completed);
                SqliteStoreLog.Checkpointed(_logger, logFrames, copiedFrames);
                if (Volatile.Read(ref _rewindWanted) != 0)
                {
                    Volatile.Write(ref _writerFinishes, 1);
                }
            }
            else
            {
                // Nothing is lost: the log keeps the pages and the next checkpoint copies them.
                SqliteStoreLog.CheckpointFailed(_logger, rc, raw.sqlite3_errmsg(_db.Handle).utf8_to_string());
            }
        }
    }
}
