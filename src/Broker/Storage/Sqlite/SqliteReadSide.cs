using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The read connection for admin and wait-mode queries. WAL lets it read committed data while the writer commits,
/// so these queries never queue behind the write batches. One caller at a time (a connection is not thread-safe).
/// </summary>
internal sealed class SqliteReadSide : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SqliteConnection _db;
    private readonly SqliteStatement _begin;
    private readonly SqliteStatement _end;
    private readonly SqliteStatement _delivery;
    private readonly SqliteStatement _deadLetter;
    private readonly SqliteStatement _backlog;
    private readonly SqliteStatement _inFlight;
    private readonly SqliteStatement _deadLetters;
    private readonly SqliteStatement _oldest;
    private readonly SqliteStatement _deadLetterPage;
    private bool _disposed;

    public SqliteReadSide(SqliteConnection db)
    {
        _db = db;
        _begin = new SqliteStatement(db, "BEGIN");
        _end = new SqliteStatement(db, "COMMIT");
        _delivery = new SqliteStatement(db, "SELECT attempt, last_error FROM deliveries WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _deadLetter = new SqliteStatement(db, "SELECT attempts, last_error FROM dead_letters WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _backlog = new SqliteStatement(db, "SELECT count(*) FROM deliveries WHERE group_id = $g", "$g");
        _inFlight = new SqliteStatement(db, "SELECT count(*) FROM deliveries INDEXED BY deliveries_sched WHERE group_id = $g AND state = 1", "$g");
        _deadLetters = new SqliteStatement(db, "SELECT count(*) FROM dead_letters WHERE group_id = $g", "$g");
        _oldest = new SqliteStatement(
            db,
            "SELECT min(e.raised_at) FROM deliveries AS d JOIN events AS e ON e.id = d.event_id WHERE d.group_id = $g",
            "$g");
        _deadLetterPage = new SqliteStatement(
            db,
            """
            SELECT dl.event_id, e.label, e.payload, e.ordering_key, e.source, e.raised_at, dl.attempts, dl.last_error, dl.reason, dl.dead_at
            FROM dead_letters AS dl JOIN events AS e ON e.id = dl.event_id
            WHERE dl.group_id = $g AND dl.event_id > $after
            ORDER BY dl.event_id
            LIMIT $n
            """,
            "$g", "$after", "$n");
    }

    public ValueTask<IReadOnlyList<OutcomeNotice?>> GetOutcomesAsync(long eventId, IReadOnlyList<string> groups, SqliteGroupSnapshot snapshot, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<OutcomeNotice?>>(
            () =>
            {
                var outcomes = new OutcomeNotice?[groups.Count];
                _begin.Execute();
                try
                {
                    for (var i = 0; i < groups.Count; i++)
                    {
                        outcomes[i] = Outcome(eventId, groups[i], snapshot.IdOf(groups[i]));
                    }
                }
                finally
                {
                    _end.Execute();
                }

                return outcomes;
            },
            cancellationToken);

    public ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(SqliteGroupSnapshot snapshot, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<GroupStats>>(
            () =>
            {
                var stats = new GroupStats[snapshot.Groups.Count];
                _begin.Execute();
                try
                {
                    for (var i = 0; i < stats.Length; i++)
                    {
                        var (id, record) = snapshot.Groups[i];
                        var oldest = _oldest.Int64(id);
                        stats[i] = new GroupStats(
                            record.Name,
                            record.Patterns,
                            Backlog: _backlog.Int64(id) ?? 0,
                            InFlight: _inFlight.Int64(id) ?? 0,
                            DeadLetters: _deadLetters.Int64(id) ?? 0,
                            OldestUnackedRaisedAt: oldest is { } ticks ? SqliteWriter.Time(ticks) : null);
                    }
                }
                finally
                {
                    _end.Execute();
                }

                return stats;
            },
            cancellationToken);

    public ValueTask<IReadOnlyList<DeadLetterRecord>> ListDeadLettersAsync(long groupId, long afterEventId, int limit, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<DeadLetterRecord>>(
            () =>
            {
                var page = new List<DeadLetterRecord>(Math.Min(limit, 1024));
                using var reader = _deadLetterPage.Query(groupId, afterEventId, (long)limit);
                while (reader.Read())
                {
                    page.Add(new DeadLetterRecord(
                        EventId: reader.GetInt64(0),
                        Label: reader.GetString(1),
                        Payload: reader.GetFieldValue<byte[]>(2),
                        OrderingKey: reader.IsDBNull(3) ? null : reader.GetString(3),
                        Source: reader.IsDBNull(4) ? null : reader.GetString(4),
                        RaisedAt: SqliteWriter.Time(reader.GetInt64(5)),
                        Attempts: reader.GetInt32(6),
                        LastError: reader.IsDBNull(7) ? null : reader.GetString(7),
                        Reason: reader.GetString(8),
                        DeadLetteredAt: SqliteWriter.Time(reader.GetInt64(9))));
                }

                return page;
            },
            cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var statement in new[] { _begin, _end, _delivery, _deadLetter, _backlog, _inFlight, _deadLetters, _oldest, _deadLetterPage })
            {
                statement.Dispose();
            }

            _db.Dispose();
        }
        finally
        {
            // The gate stays undisposed: a caller already waiting on it must wake up and see _disposed.
            _gate.Release();
        }
    }

    private OutcomeNotice? Outcome(long eventId, string group, long? groupId)
    {
        if (groupId is not { } id)
        {
            return new OutcomeNotice(eventId, group, OutcomeKind.Handled, 0, null, false);
        }

        using (var reader = _delivery.Query(id, eventId))
        {
            if (reader.Read())
            {
                var attempt = reader.GetInt32(0);
                return attempt > 0 && !reader.IsDBNull(1)
                    ? new OutcomeNotice(eventId, group, OutcomeKind.Failed, attempt, reader.GetString(1), true)
                    : null;
            }
        }

        using (var reader = _deadLetter.Query(id, eventId))
        {
            if (reader.Read())
            {
                return new OutcomeNotice(eventId, group, OutcomeKind.DeadLettered, reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1), false);
            }
        }

        return new OutcomeNotice(eventId, group, OutcomeKind.Handled, 0, null, false);
    }

    private async ValueTask<T> RunAsync<T>(Func<T> query, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, typeof(SqliteHookStore));
            return query();
        }
        finally
        {
            _gate.Release();
        }
    }
}
