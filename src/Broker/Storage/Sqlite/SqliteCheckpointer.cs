using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SQLitePCL;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// Copies the write-ahead log back into the database file on a connection of its own, so the writer never does it.
/// </summary>
/// <remarks>
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages, several times a second
/// at a steady rate): that commit copies the log's pages and waits for two fsyncs, and every caller of its batch waits
/// with it. That was the latency tail at 5,000 events/s (fsyncs of 20-170 ms on a busy disk). The writer turns it off
/// (<c>wal_autocheckpoint = 0</c>); this runs a PASSIVE checkpoint, which never blocks the writer or readers, at every
/// housekeeping pass (<see cref="RequestCheckpoint"/>, once a second by default) and after commits that changed
/// <see cref="SqliteStoreOptions.CheckpointEveryChanges"/> rows, which bounds the log under a burst. A checkpoint copies
/// only the latest version of each page, so the hot pages a steady stream rewrites in every commit are copied once.
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
    private long _completed;

    public SqliteCheckpointer(SqliteConnection db, SqliteStoreOptions options, ILogger logger)
    {
        _db = db;
        _options = options;
        _logger = logger;
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    /// <summary>Checkpoints run so far.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Asks for a checkpoint; requests made while one is waiting to run are one request.</summary>
    public void RequestCheckpoint() => _due.Writer.TryWrite(true);

    /// <summary>
    /// Called by the writer loop after each commit with the writer connection's running count of changed rows
    /// (<c>sqlite3_total_changes</c>, which wraps): asks for a checkpoint once enough rows changed since the last request.
    /// </summary>
    public void OnCommitted(int totalChanges)
    {
        if (unchecked((uint)(totalChanges - _changesAtLastRequest)) >= _options.CheckpointEveryChanges)
        {
            _changesAtLastRequest = totalChanges;
            RequestCheckpoint();
        }
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
            var rc = raw.sqlite3_wal_checkpoint_v2(_db.Handle, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out var logFrames, out var copiedFrames);
            if (rc is raw.SQLITE_OK or raw.SQLITE_BUSY)
            {
                Interlocked.Increment(ref _completed);
                SqliteStoreLog.Checkpointed(_logger, logFrames, copiedFrames);
            }
            else
            {
                // Nothing is lost: the log keeps the pages and the next checkpoint copies them.
                SqliteStoreLog.CheckpointFailed(_logger, rc, raw.sqlite3_errmsg(_db.Handle).utf8_to_string());
            }
        }
    }
}
