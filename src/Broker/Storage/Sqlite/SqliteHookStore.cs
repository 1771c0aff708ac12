using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The embedded, durable default engine: one SQLite file in WAL mode (Microsoft.Data.Sqlite), single node.
/// </summary>
/// <remarks>
/// <para>Layout (see <c>SqliteSchema</c>): the events form a log, each stored once whatever its fan-out, with the ids of
/// the groups it went to. Per group, a floor (every event at or below it is finished there) and, above it, blocks of
/// done and delivered marks; a delivery gets a row of its own only once it leaves the common path (retried, released,
/// expired, skipped by a lease, redriven). So an event leased and acked in order costs its append, a share of the
/// marks block written once per lease batch and once per ack batch (the floor is written when it enters another
/// block of 4,096 ids), and a share of the range deletion of the log behind the slowest group. Leases live in memory
/// (single node): a restart returns them to pending, counting the attempt. Group ids, patterns, counts, leases, the
/// next event id and lease number live in memory (rebuilt at open, persisted in the same transactions).</para>
/// <para>Group commit: every change goes through one writer loop that owns the read-write connection and its
/// prepared statements. Callers enqueue operations on a bounded channel; the loop takes everything queued (up to
/// <see cref="SqliteStoreOptions.MaxOperationsPerCommit"/> operations or
/// <see cref="SqliteStoreOptions.MaxItemsPerCommit"/> items), runs them in one transaction, commits, tells the
/// listener, then completes the callers. So 64 concurrent raises cost one commit, and a task completes only once its
/// change is durable (an ack included). A failed transaction is rolled back and the in-memory state rebuilt from
/// storage, keeping the leases committed before it; then each operation of the batch runs again alone, so only a
/// faulty one fails (a fault of the storage itself, such as a full disk, fails the whole batch at once). Admin and
/// outcome queries read on a second connection, which WAL lets run beside the writer.</para>
/// </remarks>
public sealed class SqliteHookStore : IHookStore
{
    private readonly SqliteStoreOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<SqliteStoreOp> _queue;
    private SqliteWriter? _writer;
    private SqliteReadSide? _readSide;
    private SqliteCheckpointer? _checkpointer;
    private IHookStoreListener? _listener;
    private Task? _loop;
    private volatile SqliteGroupSnapshot _groups = SqliteGroupSnapshot.Empty;
    private int _initialized;
    private int _disposed;
    private long _commits;
    private bool _recovered = true;

    /// <summary>Creates the engine; nothing is opened before <see cref="InitializeAsync"/>.</summary>
    public SqliteHookStore(SqliteStoreOptions options, ILogger<SqliteHookStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _queue = Channel.CreateBounded<SqliteStoreOp>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
    }

    /// <summary>Transactions committed by the writer loop (group commits), for tests and diagnostics.</summary>
    internal long Commits => Volatile.Read(ref _commits);

    /// <summary>Checkpoints of the write-ahead log run so far (off the writer's path).</summary>
    internal long Checkpoints => _checkpointer?.Completed ?? 0;

    /// <summary>Checkpoints the writer finished between two batches so that the write-ahead log started over.</summary>
    internal long LogRewinds => _checkpointer?.Rewinds ?? 0;

    /// <summary>Reads of the log by leases that the newest events kept in memory served instead of the database.</summary>
    internal long LogReadsFromTail => _writer?.LogReadsFromTail ?? 0;

    /// <summary>Events of the log kept in memory for leases now (read between operations).</summary>
    internal int LogTailCount => _writer?.LogTailCount ?? 0;

    /// <summary>Operations waiting for the writer loop.</summary>
    internal int QueuedOperations => _queue.Reader.Count;

    /// <inheritdoc />
    public ValueTask InitializeAsync(IHookStoreListener listener, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _initialized, 1) != 0)
        {
            throw new InvalidOperationException("The SQLite store is already initialized.");
        }

        var connection = SqliteSchema.OpenWriter(_options, out var foundVersion);
        var writer = new SqliteWriter(connection, _options);
        try
        {
            // Single node: leases of a previous process are nobody's now; redeliver them at once.
            writer.Open(now);
            _readSide = new SqliteReadSide(SqliteSchema.OpenReader(_options));
            _checkpointer = new SqliteCheckpointer(SqliteSchema.OpenCheckpointer(_options), _options, _logger);
            _groups = writer.Snapshot();
            _listener = listener;
            _writer = writer;
            if (foundVersion is > 0 and < SqliteSchema.Version)
            {
                SqliteStoreLog.Migrated(_logger, _options.DatabasePath, foundVersion, SqliteSchema.Version);
            }

            SqliteStoreLog.Opened(_logger, _options.DatabasePath, _options.Durability, writer.RecoveredLeases);
        }
        catch
        {
            writer.Dispose();
            throw;
        }

        _loop = Task.Run(RunWriterLoopAsync, CancellationToken.None);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        var snapshot = _groups;
        var groups = new GroupRecord[snapshot.Groups.Count];
        for (var i = 0; i < groups.Length; i++)
        {
            groups[i] = snapshot.Groups[i].Record;
        }

        return ValueTask.FromResult<IReadOnlyList<GroupRecord>>(groups);
    }

    /// <inheritdoc />
    public ValueTask<GroupRecord> AddGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        ArgumentNullException.ThrowIfNull(patterns);
        string[] copy = [.. patterns];
        return EnqueueAsync(w => w.AddGroupPatterns(group, copy, now), 1, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<GroupRecord?> RemoveGroupPatternsAsync(string group, IReadOnlyCollection<string> patterns, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        ArgumentNullException.ThrowIfNull(patterns);
        string[] copy = [.. patterns];
        return EnqueueAsync(w => w.RemoveGroupPatterns(group, copy), 1, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteGroupAsync(string group, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        return EnqueueAsync(w => w.DeleteGroup(group), 1, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<NewEvent> events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            ThrowIfNotOpen();
            return ValueTask.FromResult<IReadOnlyList<AppendResult>>([]);
        }

        return EnqueueAsync(w => w.Append(events, now), events.Count, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<LeaseBatch> LeaseAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfLessThan(request.Max, 1, nameof(request));
        return EnqueueAsync(w => w.Lease(request), request.Max, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<SettleResult>> SettleAsync(string group, IReadOnlyList<SettleItem> items, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
        {
            ThrowIfNotOpen();
            return ValueTask.FromResult<IReadOnlyList<SettleResult>>([]);
        }

        // Checked here so one bad item cannot fail the whole group commit it would share.
        foreach (var item in items)
        {
            if (item is null || !Enum.IsDefined(item.Kind))
            {
                throw new ArgumentException("Every settle item needs a known kind (Ack, Nack, Extend, Reject).", nameof(items));
            }
        }

        return EnqueueAsync(w => w.Settle(group, items, now), items.Count, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutcomeNotice>> ReleaseAsync(string group, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(leases);
        ArgumentNullException.ThrowIfNull(reason);
        if (leases.Count == 0)
        {
            ThrowIfNotOpen();
            return ValueTask.FromResult<IReadOnlyList<OutcomeNotice>>([]);
        }

        return EnqueueAsync(w => w.Release(group, leases, reason, now), leases.Count, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<ExpiryResult> ExpireAsync(DateTimeOffset now, IGroupPolicies policies, int maxItems, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policies);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxItems, 1);
        ThrowIfNotOpen();
        _checkpointer!.RequestCheckpoint();
        return EnqueueAsync(w => w.Expire(now, policies, maxItems), maxItems, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ThrowIfNotOpen();
        return _readSide!.GetOutcomesAsync(eventId, groups, _groups, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Counts from the writer's memory (leases live only there), the oldest unfinished event from storage.
        var counts = await EnqueueAsync(w => w.Counts(), 1, cancellationToken);
        return await _readSide!.GetGroupStatsAsync(counts, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<DeadLetterRecord>?> ListDeadLettersAsync(string group, long afterEventId, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 0);
        ThrowIfNotOpen();
        if (_groups.IdOf(group) is not { } groupId)
        {
            return null;
        }

        return limit == 0 ? [] : await _readSide!.ListDeadLettersAsync(groupId, afterEventId, limit, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<int?> RedriveAsync(string group, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        long[]? ids = eventIds is null ? null : [.. eventIds];
        return EnqueueAsync(w => w.Redrive(group, ids, now, retainUntil), ids?.Length ?? 1, cancellationToken);
    }

    /// <summary>Stops taking operations, lets the writer finish everything queued, then closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop;
        }

        if (_checkpointer is not null)
        {
            await _checkpointer.DisposeAsync();
        }

        _writer?.Dispose();
        if (_readSide is not null)
        {
            await _readSide.DisposeAsync();
        }
    }

    private async ValueTask<T> EnqueueAsync<T>(Func<SqliteWriter, T> work, int items, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        var op = new SqliteStoreOp<T>(work, items, cancellationToken);
        if (!_queue.Writer.TryWrite(op))
        {
            try
            {
                await _queue.Writer.WriteAsync(op, cancellationToken);
            }
            catch (ChannelClosedException)
            {
                throw new ObjectDisposedException(nameof(SqliteHookStore));
            }
        }

        return await op.Task;
    }

    private void ThrowIfNotOpen()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_writer is null)
        {
            throw new InvalidOperationException("The SQLite store is not initialized: call InitializeAsync first.");
        }
    }

    private async Task RunWriterLoopAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<SqliteStoreOp>(_options.MaxOperationsPerCommit);
        while (await reader.WaitToReadAsync())
        {
            var items = 0;
            while (batch.Count < _options.MaxOperationsPerCommit && items < _options.MaxItemsPerCommit && reader.TryRead(out var op))
            {
                if (op.CancellationToken.IsCancellationRequested)
                {
                    op.Cancel();
                    continue;
                }

                batch.Add(op);
                items += op.Items;
            }

            if (batch.Count > 0)
            {
                CommitBatch(batch);
                batch.Clear();
            }
        }
    }

    private void CommitBatch(List<SqliteStoreOp> batch)
    {
        var writer = _writer!;
        if (TryCommit(writer, batch) is not { } exception)
        {
            Committed(writer, batch);
            return;
        }

        if (batch.Count > 1 && _recovered && !IsStorageFault(exception))
        {
            // One operation's fault (a bad item, a filter that throws) must not fail the others that only shared its
            // transaction: nothing of the batch happened, so each runs again in a transaction of its own and only
            // the faulty one fails. A fault of the storage itself (disk full, I/O error) fails them all at once.
            SqliteStoreLog.BatchSplit(_logger, batch.Count);
            var single = new List<SqliteStoreOp>(1);
            foreach (var op in batch)
            {
                single.Add(op);
                CommitBatch(single);
                single.Clear();
            }

            return;
        }

        // SQLITE_FULL (13): say which limit was hit, so a raise is answered RESOURCE_EXHAUSTED, not INTERNAL.
        var failure = exception is SqliteException { SqliteErrorCode: 13 }
            ? new StorageFullException($"storage is full: the disk holding {_options.DatabasePath} has no room left; free space or move HookBroker:DataPath", exception)
            : exception;
        foreach (var op in batch)
        {
            op.Fail(failure);
        }
    }

    /// <summary>Runs the batch in one transaction; on failure rolls it back, resyncs memory and returns the exception.</summary>
    private Exception? TryCommit(SqliteWriter writer, List<SqliteStoreOp> batch)
    {
        // A recovery that failed left memory out of step with storage (it may hold what the failed batch did): nothing
        // runs on it until a recovery succeeds, tried again before each batch.
        if (!_recovered && TryRecover(writer) is { } stillFailing)
        {
            return stillFailing is SqliteException { SqliteErrorCode: 13 }
                ? stillFailing
                : new StorageUnavailableException("storage could not recover from a failed write yet; retry", stillFailing);
        }

        try
        {
            writer.Begin();
            foreach (var op in batch)
            {
                op.Execute(writer);
            }

            writer.Commit();
            Interlocked.Increment(ref _commits);
            _checkpointer!.OnCommitted(writer.TotalChanges, writer.PagesWritten);
            return null;
        }
        catch (Exception exception)
        {
            // The whole transaction is gone: none of it happened; resync memory with storage.
            SqliteStoreLog.BatchFailed(_logger, batch.Count, exception);
            TryRecover(writer);
            return exception;
        }
    }

    /// <summary>Rebuilds the writer's memory from storage; returns why it could not, or null.</summary>
    private Exception? TryRecover(SqliteWriter writer)
    {
        try
        {
            writer.Recover();
            _groups = writer.Snapshot();
            _recovered = true;
            return null;
        }
        catch (Exception recoveryException)
        {
            _recovered = false;
            SqliteStoreLog.RecoveryFailed(_logger, recoveryException);
            return recoveryException;
        }
    }

    private void Committed(SqliteWriter writer, List<SqliteStoreOp> batch)
    {
        if (writer.GroupsChanged)
        {
            _groups = writer.Snapshot();
        }

        Notify(writer);
        foreach (var op in batch)
        {
            op.Complete();
        }

        // After the callers resumed: a bounded step of deleting the log behind the groups, when one is due.
        try
        {
            writer.TrimLog();
        }
        catch (Exception exception)
        {
            SqliteStoreLog.TrimFailed(_logger, exception);
        }

        if (_checkpointer!.WriterFinishes)
        {
            _checkpointer.TryFinishOnWriter(writer.Connection, writer.PagesWritten);
        }
    }

    /// <summary>
    /// True when SQLite itself failed (busy, out of memory or disk, read-only, I/O error, corruption): running the
    /// operations again one by one would only fail each of them the same way.
    /// </summary>
    private static bool IsStorageFault(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: 5 or 6 or 7 or 8 or 9 or 10 or 11 or 13 or 14 or 15 or 26 };

    /// <summary>Tells the listener what the committed batch did, before its callers resume.</summary>
    private void Notify(SqliteWriter writer)
    {
        var listener = _listener!;
        try
        {
            if (writer.GroupsChanged)
            {
                listener.OnGroupsChanged();
            }

            if (writer.AvailableGroups.Count > 0)
            {
                listener.OnEventsAvailable([.. writer.AvailableGroups]);
            }

            if (writer.Outcomes.Count > 0)
            {
                listener.OnOutcomes([.. writer.Outcomes]);
            }
        }
        catch (Exception exception)
        {
            // The batch is committed; a listener fault must not fail its callers or stop the writer.
            SqliteStoreLog.ListenerFailed(_logger, exception);
        }
    }
}
