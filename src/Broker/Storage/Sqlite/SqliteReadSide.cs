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
    private readonly SqliteStatement _floor;
    private readonly SqliteStatement _doneBlock;
    private readonly SqliteStatement _doneBlocks;
    private readonly SqliteStatement _routed;
    private readonly SqliteStatement _oldestRow;
    private readonly SqliteStatement _freshRaisedAt;
    private readonly SqliteStatement _deadLetterPage;
    private bool _disposed;

    public SqliteReadSide(SqliteConnection db)
    {
        _db = db;
        _begin = new SqliteStatement(db, "BEGIN");
        _end = new SqliteStatement(db, "COMMIT");
        _delivery = new SqliteStatement(db, "SELECT attempt, last_error FROM deliveries WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _deadLetter = new SqliteStatement(db, "SELECT attempts, last_error FROM dead_letters WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _floor = new SqliteStatement(db, "SELECT floor FROM groups WHERE id = $g", "$g");
        _doneBlock = new SqliteStatement(db, "SELECT done FROM group_marks WHERE group_id = $g AND block = $b", "$g", "$b");
        _doneBlocks = new SqliteStatement(db, "SELECT block, done, delivered FROM group_marks WHERE group_id = $g", "$g");
        _routed = new SqliteStatement(db, "SELECT instr(routes, $t) > 0 FROM events WHERE id = $e", "$t", "$e");
        _oldestRow = new SqliteStatement(db, "SELECT min(raised_at) FROM deliveries WHERE group_id = $g", "$g");
        _freshRaisedAt = new SqliteStatement(db, "SELECT id, raised_at FROM events WHERE id > $after AND instr(routes, $t) > 0 ORDER BY id", "$after", "$t");
        _deadLetterPage = new SqliteStatement(
            db,
            """
            SELECT event_id, label, payload, ordering_key, source, raised_at, attempts, last_error, reason, dead_at
            FROM dead_letters
            WHERE group_id = $g AND event_id > $after
            ORDER BY event_id
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

    /// <summary>The stats of the groups from the writer's counts, with the oldest unfinished event read here.</summary>
    public ValueTask<IReadOnlyList<GroupStats>> GetGroupStatsAsync(IReadOnlyList<SqliteGroupCounts> counts, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<GroupStats>>(
            () =>
            {
                var stats = new GroupStats[counts.Count];
                _begin.Execute();
                try
                {
                    for (var i = 0; i < stats.Length; i++)
                    {
                        var c = counts[i];
                        var oldest = c.Backlog > 0 ? OldestUnfinished(c) : null;
                        stats[i] = new GroupStats(
                            c.Record.Name,
                            c.Record.Patterns,
                            c.Backlog,
                            c.InFlight,
                            c.DeadLetters,
                            oldest is { } ticks ? SqliteWriter.Time(ticks) : null);
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
            foreach (var statement in new[] { _begin, _end, _delivery, _deadLetter, _floor, _doneBlock, _doneBlocks, _routed, _oldestRow, _freshRaisedAt, _deadLetterPage })
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

    /// <summary>
    /// An event's state in a group, as stored: its delivery row (failed, or still pending), its dead letter, or — in
    /// the log — handled at or below the group's floor or with a done mark, pending when the log still routes it
    /// there, and handled otherwise (never routed there, or the group is gone).
    /// </summary>
    private OutcomeNotice? Outcome(long eventId, string group, long? groupId)
    {
        var handled = new OutcomeNotice(eventId, group, OutcomeKind.Handled, 0, null, false);
        if (groupId is not { } id)
        {
            return handled;
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

        if (_floor.Int64(id) is not { } floor || eventId <= floor)
        {
            return handled;
        }

        if (_doneBlock.Scalar(id, SqliteMarkBlock.NumberOf(eventId)) is byte[] done)
        {
            var block = new SqliteMarkBlock(SqliteMarkBlock.NumberOf(eventId));
            block.Load(done, []);
            if (block.IsDone(eventId))
            {
                return handled;
            }
        }

        return _routed.Int64(SqliteRoutes.Token(id), eventId) is 1 ? null : handled;
    }

    /// <summary>When the oldest unfinished event of the group was raised: its rows, and its log above the floor without a done mark.</summary>
    private long? OldestUnfinished(SqliteGroupCounts counts)
    {
        var oldest = counts.HasRows ? _oldestRow.Int64(counts.Id) : null;
        if (!counts.HasFresh || _floor.Int64(counts.Id) is not { } floor)
        {
            return oldest;
        }

        var marks = new SqliteGroupMarks();
        using (var reader = _doneBlocks.Query(counts.Id))
        {
            while (reader.Read())
            {
                marks.Add(reader.GetInt64(0)).Load(reader.GetFieldValue<byte[]>(1), reader.GetFieldValue<byte[]>(2));
            }
        }

        using (var reader = _freshRaisedAt.Query(floor, SqliteRoutes.Token(counts.Id)))
        {
            while (reader.Read())
            {
                if (!marks.IsDone(reader.GetInt64(0)))
                {
                    var raisedAt = reader.GetInt64(1);
                    oldest = oldest is { } o ? Math.Min(o, raisedAt) : raisedAt;
                }
            }
        }

        return oldest;
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
