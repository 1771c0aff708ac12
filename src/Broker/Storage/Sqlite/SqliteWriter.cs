using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The single writer: owns the read-write connection, its prepared statements and the in-memory state (groups with
/// their floors, scan positions, leases and counts; the next event id and lease number). Only the writer loop of
/// <see cref="SqliteHookStore"/> calls it, one batch at a time, between <see cref="Begin"/> and <see cref="Commit"/>;
/// the operations record what the listener must hear, which the store reports once the batch is committed.
/// </summary>
/// <remarks>
/// <para>The common path of an event costs one row: appended to the log (whatever its fan-out), leased by reading the
/// log from the group's scan position (its newest events from memory, see <see cref="SqliteLogTail"/>; the lease lives
/// in memory; a delivered mark makes a restart count the attempt), acked by a done mark in the group's block of 4,096
/// ids. A batch writes each block it changed once; the floor is written when it enters another block. Anything else
/// gives the delivery a row of its own in <c>deliveries</c> (see <see cref="SqliteSchema"/>), handled there as version 1
/// handled every delivery.</para>
/// </remarks>
internal sealed class SqliteWriter : IDisposable
{
    private const string LeaseExpiredError = "lease expired";
    private const string InterruptedAttemptError = "the last attempt was in flight when the broker stopped";
    private const string RetentionExpiredError = "expired: retention passed before delivery";
    private const int ScanChunk = 512;

    private readonly SqliteConnection _db;
    private readonly SqliteStoreOptions _options;
    private readonly List<SqliteStatement> _statements = [];
    private readonly Dictionary<string, SqliteGroupState> _groupsByName = new(StringComparer.Ordinal);
    private readonly Dictionary<long, SqliteGroupState> _groupsById = [];
    private readonly List<(SqliteGroupState Group, long RetainUntil)> _routeScratch = [];
    private readonly List<SqliteLeaseChange> _leaseChanges = [];

    /// <summary>The leases committed before a failed batch, kept until a recovery succeeds (see <see cref="Recover"/>).</summary>
    private List<(long GroupId, SqliteLease Lease)>? _leasesToKeep;
    private readonly List<SqliteGroupState> _touched = [];
    private readonly SqliteLogTrimmer _trimmer;
    private readonly SqliteLogTail _tail;

    private long _nextEventId;
    private long _nextLeaseNo;
    private long _savedEventId;
    private long _savedLeaseNo;
    private long _trimmedAtHead;
    private bool _trimRequested;

    private readonly SqliteStatement _begin;
    private readonly SqliteStatement _commit;
    private readonly SqliteStatement _rollback;
    private readonly SqliteStatement _saveCounter;
    private readonly SqliteStatement _insertGroup;
    private readonly SqliteStatement _updateGroupPatterns;
    private readonly SqliteStatement _saveFloor;
    private readonly SqliteStatement _saveMarks;
    private readonly SqliteStatement _dropMarksBelow;
    private readonly SqliteStatement _deleteGroupMarks;
    private readonly SqliteStatement _deleteGroupRows;
    private readonly SqliteStatement _deleteGroupDeadLetters;
    private readonly SqliteStatement _deleteGroup;
    private readonly SqliteRawStatement _findKey;
    private readonly SqliteRawStatement _putKey;
    private readonly SqliteStatement _forgetKeys;
    private readonly SqliteRawStatement _insertEvent;
    private readonly SqliteRawStatement _scanLog;
    private readonly SqliteLabelCache _labels = new();
    private readonly SqliteStatement _scanRetention;
    private readonly SqliteStatement _rowFromEvent;
    private readonly SqliteStatement _promoteDue;
    private readonly SqliteStatement _readyRows;
    private readonly SqliteStatement _markRowLeased;
    private readonly SqliteStatement _nextDue;
    private readonly SqliteStatement _earlierRowOfKey;
    private readonly SqliteStatement _delayRow;
    private readonly SqliteStatement _deleteRow;
    private readonly SqliteStatement _deadFromEvent;
    private readonly SqliteStatement _deadFromRow;
    private readonly SqliteStatement _rowsPastRetention;
    private readonly SqliteStatement _redriveOne;
    private readonly SqliteStatement _redriveAll;
    private readonly SqliteStatement _deleteDeadLetter;

    public SqliteWriter(SqliteConnection db, SqliteStoreOptions options)
    {
        _db = db;
        _options = options;
        _begin = Prepare("BEGIN IMMEDIATE");
        _commit = Prepare("COMMIT");
        _rollback = Prepare("ROLLBACK");
        _saveCounter = Prepare("UPDATE meta SET value = $v WHERE key = $k", "$v", "$k");

        _insertGroup = Prepare("INSERT INTO groups(name, patterns, created_at, floor) VALUES ($n, $p, $t, $f) RETURNING id", "$n", "$p", "$t", "$f");
        _updateGroupPatterns = Prepare("UPDATE groups SET patterns = $p WHERE id = $g", "$p", "$g");
        _saveFloor = Prepare("UPDATE groups SET floor = $f WHERE id = $g", "$f", "$g");
        // An upsert, not REPLACE: the row is overwritten in place, one page in the log (see SqliteSchema).
        _saveMarks = Prepare(
            "INSERT INTO group_marks(group_id, block, done, delivered) VALUES ($g, $b, $d, $l) ON CONFLICT(group_id, block) DO UPDATE SET done = excluded.done, delivered = excluded.delivered",
            "$g", "$b", "$d", "$l");
        _dropMarksBelow = Prepare("DELETE FROM group_marks WHERE group_id = $g AND block < $b", "$g", "$b");
        _deleteGroupMarks = Prepare("DELETE FROM group_marks WHERE group_id = $g", "$g");
        _deleteGroupRows = Prepare("DELETE FROM deliveries WHERE group_id = $g", "$g");
        _deleteGroupDeadLetters = Prepare("DELETE FROM dead_letters WHERE group_id = $g", "$g");
        _deleteGroup = Prepare("DELETE FROM groups WHERE id = $g", "$g");

        _findKey = new SqliteRawStatement(db, "SELECT event_id, groups, expires_at FROM idempotency WHERE key = ?1");
        // Claims a key for a new event unless a live entry holds it (no row changed: a duplicate). One statement, so a new
        // key (the usual case) costs an append to the table and one descent of the key index, not a lookup and then an
        // insert.
        _putKey = new SqliteRawStatement(
            db,
            "INSERT INTO idempotency(key, event_id, groups, expires_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET event_id = excluded.event_id, groups = excluded.groups, expires_at = excluded.expires_at WHERE idempotency.expires_at <= ?5");
        // Keys are kept in the order they were claimed (the event id is the row id) and every key of a broker has the
        // same window, so they expire in that order: the oldest entries are looked at, and the expired among them go.
        _forgetKeys = Prepare(
            "DELETE FROM idempotency WHERE event_id IN (SELECT event_id FROM (SELECT event_id, expires_at FROM idempotency ORDER BY event_id LIMIT $n) WHERE expires_at <= $now)",
            "$now", "$n");

        _insertEvent = new SqliteRawStatement(
            db,
            "INSERT INTO events(id, label, payload, ordering_key, source, raised_at, routes, retain_until, retain_overrides) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
        _scanLog = new SqliteRawStatement(
            db,
            "SELECT id, label, payload, ordering_key, source, raised_at, retain_until, retain_overrides FROM events WHERE id > ?1 AND instr(routes, ?2) > 0 ORDER BY id LIMIT ?3");
        _scanRetention = Prepare(
            "SELECT id, retain_until, retain_overrides FROM events WHERE id > $after AND instr(routes, $t) > 0 ORDER BY id LIMIT $n",
            "$after", "$t", "$n");

        const string rowColumns = "group_id, event_id, state, sched, lease_no, attempt, last_error, retain_until, ordering_key, label, payload, source, raised_at";
        _rowFromEvent = Prepare(
            $"INSERT INTO deliveries({rowColumns}) SELECT $g, id, $st, $sched, $ln, $a, $err, $ru, ordering_key, label, payload, source, raised_at FROM events WHERE id = $e",
            "$g", "$st", "$sched", "$ln", "$a", "$err", "$ru", "$e");
        _promoteDue = Prepare("UPDATE deliveries SET state = 0, sched = 0 WHERE group_id = $g AND state = 2 AND sched <= $now", "$g", "$now");
        _readyRows = Prepare(
            """
            SELECT d.event_id, d.attempt, d.ordering_key, d.label, d.payload, d.source, d.raised_at, d.retain_until
            FROM deliveries AS d INDEXED BY deliveries_sched
            WHERE d.group_id = $g AND d.state = 0 AND d.sched = 0 AND d.event_id > $after
              AND (d.ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM deliveries AS k INDEXED BY deliveries_okey
                    WHERE k.group_id = $g AND k.ordering_key = d.ordering_key AND k.event_id < d.event_id))
            ORDER BY d.event_id
            LIMIT $n
            """,
            "$g", "$after", "$n");
        _markRowLeased = Prepare(
            "UPDATE deliveries SET state = 1, sched = $lu, lease_no = $ln, attempt = $a WHERE group_id = $g AND event_id = $e",
            "$lu", "$ln", "$a", "$g", "$e");
        _nextDue = Prepare("SELECT sched FROM deliveries INDEXED BY deliveries_sched WHERE group_id = $g AND state = 2 ORDER BY sched LIMIT 1", "$g");
        _earlierRowOfKey = Prepare(
            "SELECT 1 FROM deliveries INDEXED BY deliveries_okey WHERE group_id = $g AND ordering_key = $k AND event_id < $e LIMIT 1",
            "$g", "$k", "$e");
        _delayRow = Prepare("UPDATE deliveries SET state = 2, sched = $due, last_error = $err WHERE group_id = $g AND event_id = $e", "$due", "$err", "$g", "$e");
        _deleteRow = Prepare("DELETE FROM deliveries WHERE group_id = $g AND event_id = $e", "$g", "$e");

        const string deadColumns = "group_id, event_id, attempts, last_error, reason, dead_at, label, payload, ordering_key, source, raised_at";
        _deadFromEvent = Prepare(
            $"INSERT INTO dead_letters({deadColumns}) SELECT $g, id, $a, $err, $why, $t, label, payload, ordering_key, source, raised_at FROM events WHERE id = $e",
            "$g", "$a", "$err", "$why", "$t", "$e");
        _deadFromRow = Prepare(
            $"INSERT INTO dead_letters({deadColumns}) SELECT group_id, event_id, $a, $err, $why, $t, label, payload, ordering_key, source, raised_at FROM deliveries WHERE group_id = $g AND event_id = $e",
            "$a", "$err", "$why", "$t", "$g", "$e");
        _rowsPastRetention = Prepare(
            "SELECT group_id, event_id, attempt FROM deliveries INDEXED BY deliveries_retain WHERE retain_until <= $now AND state <> 1 ORDER BY retain_until LIMIT $n",
            "$now", "$n");

        const string redrive = $"INSERT INTO deliveries({rowColumns}) SELECT group_id, event_id, 2, $due, 0, 0, NULL, $ru, ordering_key, label, payload, source, raised_at FROM dead_letters";
        _redriveOne = Prepare($"{redrive} WHERE group_id = $g AND event_id = $e", "$due", "$ru", "$g", "$e");
        _redriveAll = Prepare($"{redrive} WHERE group_id = $g", "$due", "$ru", "$g");
        _deleteDeadLetter = Prepare("DELETE FROM dead_letters WHERE group_id = $g AND event_id = $e", "$g", "$e");

        _trimmer = new SqliteLogTrimmer(db, options.MaxTrimRows, options.LaggardDistance);
        _tail = new SqliteLogTail(options.LogTailEvents, options.LogTailBytes);
    }

    /// <summary>Groups whose workers may have new deliveries after this batch.</summary>
    public HashSet<string> AvailableGroups { get; } = new(StringComparer.Ordinal);

    /// <summary>Outcomes produced by this batch.</summary>
    public List<OutcomeNotice> Outcomes { get; } = [];

    /// <summary>True when a group or its patterns changed in this batch.</summary>
    public bool GroupsChanged { get; private set; }

    /// <summary>Leases the previous process left, returned to pending at open.</summary>
    public int RecoveredLeases { get; private set; }

    /// <summary>Reads of the log that the newest events kept in memory served (<see cref="SqliteLogTail"/>).</summary>
    public long LogReadsFromTail => _tail.Reads;

    /// <summary>Events of the log kept in memory now.</summary>
    public int LogTailCount => _tail.Count;

    /// <summary>Opens: rebuilds the state from storage, the previous process's leases returned to pending at <paramref name="now"/>.</summary>
    public void Open(DateTimeOffset now)
    {
        Begin();
        Load(reopening: true, now.UtcTicks);
        Commit();
    }

    public void Begin()
    {
        AvailableGroups.Clear();
        Outcomes.Clear();
        _leaseChanges.Clear();
        ClearTouched();
        GroupsChanged = false;
        _begin.Execute();
    }

    /// <summary>
    /// Rows changed on the writer's connection since it opened, wrapping past <see cref="int.MaxValue"/> (what the
    /// checkpointer paces itself by).
    /// </summary>
    public int TotalChanges => SQLitePCL.raw.sqlite3_total_changes(_db.Handle);

    /// <summary>
    /// Pages the writer's connection wrote to the write-ahead log since it opened (<c>SQLITE_DBSTATUS_CACHE_WRITE</c>),
    /// wrapping past <see cref="int.MaxValue"/>: what the log's rewind paces itself by.
    /// </summary>
    public int PagesWritten
    {
        get
        {
            SQLitePCL.raw.sqlite3_db_status(_db.Handle, SQLitePCL.raw.SQLITE_DBSTATUS_CACHE_WRITE, out var current, out _, 0);
            return current;
        }
    }

    /// <summary>The writer's connection, for the checkpoint it finishes between two transactions.</summary>
    public SqliteConnection Connection => _db;

    public void Commit()
    {
        var head = _nextEventId - 1;
        foreach (var group in _touched)
        {
            group.Touched = false;
            if (_groupsById.TryGetValue(group.Id, out var current) && ReferenceEquals(current, group))
            {
                SaveGroup(group, head);
            }
        }

        _touched.Clear();
        ReleaseTail(head);

        // The stored counters are bounds reserved ahead (every id handed out is below them), so most commits skip
        // writing them; a restart continues from the bound, past the ids a crash left unused.
        var reservedEventId = _nextEventId > _savedEventId ? _nextEventId + _options.ReservedIds : _savedEventId;
        if (reservedEventId != _savedEventId)
        {
            _saveCounter.Execute(reservedEventId, "next_event_id");
        }

        var reservedLeaseNo = _nextLeaseNo > _savedLeaseNo ? _nextLeaseNo + _options.ReservedIds : _savedLeaseNo;
        if (reservedLeaseNo != _savedLeaseNo)
        {
            _saveCounter.Execute(reservedLeaseNo, "next_lease_no");
        }

        _commit.Execute();
        _savedEventId = reservedEventId;
        _savedLeaseNo = reservedLeaseNo;
    }

    /// <summary>
    /// After a failed batch: rolls back what is left of the transaction and rebuilds the state from storage, keeping
    /// the leases committed before the batch (their holders still work on them).
    /// </summary>
    public void Recover()
    {
        // The rolled-back transaction's events are gone from the log: forget them before anything else.
        _tail.Invalidate();
        AvailableGroups.Clear();
        Outcomes.Clear();
        ClearTouched();
        if (SQLitePCL.raw.sqlite3_get_autocommit(_db.Handle) == 0)
        {
            _rollback.Execute();
        }

        // Worked out once: a recovery that fails is tried again later, when this batch's changes are no longer told
        // apart from what was committed.
        var committed = _leasesToKeep ??= CommittedLeases();
        _begin.Execute();
        try
        {
            Load(reopening: false, 0);
            foreach (var (groupId, lease) in committed.OrderBy(c => c.Lease.EventId))
            {
                if (_groupsById.TryGetValue(groupId, out var group))
                {
                    group.AddLease(lease);
                }
            }

            // The scan handed the kept fresh leases out before the failed batch, but the state read back puts each
            // group's scan position before them (their events are delivered, not done), and a lease that ends marks
            // its event done in memory only. So every event read back is checked against its marks when the scan or
            // the retention look reaches it, as after an open: a lease ended since is passed, never leased again.
            var head = _nextEventId - 1;
            foreach (var group in _groupsById.Values)
            {
                group.MarkedBeforeOpen = Math.Max(group.MarkedBeforeOpen, head);
            }

            Commit();
        }
        catch
        {
            if (SQLitePCL.raw.sqlite3_get_autocommit(_db.Handle) == 0)
            {
                _rollback.Execute();
            }

            throw;
        }

        _leasesToKeep = null;
        GroupsChanged = true;
    }

    /// <summary>
    /// Deletes a bounded step of the log behind the groups' floors, in its own transaction, when one is due: enough
    /// was appended since the last step, housekeeping ran, or the last step left more to do.
    /// </summary>
    public void TrimLog()
    {
        var head = _nextEventId - 1;
        if (!_trimRequested && head - _trimmedAtHead < _options.TrimEveryEvents)
        {
            return;
        }

        _trimmedAtHead = head;
        _trimRequested = false;
        _begin.Execute();
        try
        {
            _trimRequested = _trimmer.Step(_groupsById.Values, head);
            _commit.Execute();
        }
        catch
        {
            if (SQLitePCL.raw.sqlite3_get_autocommit(_db.Handle) == 0)
            {
                _rollback.Execute();
            }

            _trimmer.Reset();
            throw;
        }
    }

    public SqliteGroupSnapshot Snapshot()
    {
        var groups = new List<(long, GroupRecord)>(_groupsById.Count);
        foreach (var group in _groupsById.Values.OrderBy(g => g.Id))
        {
            groups.Add((group.Id, group.ToRecord()));
        }

        return new SqliteGroupSnapshot(groups);
    }

    /// <summary>The counts of every group (leases live only here), for the stats the read side completes.</summary>
    public IReadOnlyList<SqliteGroupCounts> Counts()
    {
        var counts = new List<SqliteGroupCounts>(_groupsById.Count);
        foreach (var group in _groupsById.Values.OrderBy(g => g.Id))
        {
            counts.Add(new SqliteGroupCounts(group.Id, group.ToRecord(), group.Backlog, group.Leases.Count, group.DeadLetters, group.FreshUnfinished > 0, group.DeliveryRows > 0));
        }

        return counts;
    }

    public GroupRecord AddGroupPatterns(string name, IReadOnlyCollection<string> patterns, DateTimeOffset now)
    {
        if (!_groupsByName.TryGetValue(name, out var group))
        {
            var created = new List<string>(patterns.Count);
            AddDistinct(created, patterns);

            // A new group starts at the newest event: what was raised before it is not its business.
            var floor = _nextEventId - 1;
            var id = (long)_insertGroup.Scalar(name, JoinLines(created), now.UtcTicks, floor)!;
            group = new SqliteGroupState(id, name, created, floor);
            _groupsByName.Add(name, group);
            _groupsById.Add(id, group);
            GroupsChanged = true;
        }
        else if (AddDistinct(group.Patterns, patterns))
        {
            _updateGroupPatterns.Execute(JoinLines(group.Patterns), group.Id);
            GroupsChanged = true;
        }

        return group.ToRecord();
    }

    public GroupRecord? RemoveGroupPatterns(string name, IReadOnlyCollection<string> patterns)
    {
        if (!_groupsByName.TryGetValue(name, out var group))
        {
            return null;
        }

        var removed = 0;
        foreach (var pattern in patterns)
        {
            removed += group.Patterns.RemoveAll(p => string.Equals(p, pattern, StringComparison.Ordinal));
        }

        if (removed > 0)
        {
            _updateGroupPatterns.Execute(JoinLines(group.Patterns), group.Id);
            GroupsChanged = true;
        }

        return group.ToRecord();
    }

    public bool DeleteGroup(string name)
    {
        if (!_groupsByName.TryGetValue(name, out var group))
        {
            return false;
        }

        // Its events in the log need nothing: a group that no longer exists holds no floor back.
        _deleteGroupMarks.Execute(group.Id);
        _deleteGroupRows.Execute(group.Id);
        _deleteGroupDeadLetters.Execute(group.Id);
        _deleteGroup.Execute(group.Id);
        foreach (var lease in group.Leases.Values)
        {
            _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.Removed, lease.LeaseUntil, lease.HasRow));
        }

        _groupsByName.Remove(name);
        _groupsById.Remove(group.Id);
        GroupsChanged = true;
        return true;
    }

    public IReadOnlyList<AppendResult> Append(IReadOnlyList<NewEvent> events, DateTimeOffset now)
    {
        var results = new AppendResult[events.Count];
        var nowTicks = now.UtcTicks;
        string? lastRoutes = null;
        List<SqliteGroupState>? lastRouted = null;
        for (var i = 0; i < events.Count; i++)
        {
            var item = events[i];

            // Route to the groups that exist (a group deleted while the event was routed is skipped) and check each
            // backlog limit against the in-memory count, so the limit costs no query.
            _routeScratch.Clear();
            string? fullGroup = null;
            foreach (var routed in item.Groups)
            {
                if (!_groupsByName.TryGetValue(routed.Group, out var group) || IsRouted(group))
                {
                    continue;
                }

                if (group.Backlog >= routed.MaxBacklog)
                {
                    fullGroup = routed.Group;
                    break;
                }

                _routeScratch.Add((group, routed.RetainUntil.UtcTicks));
            }

            if (fullGroup is not null)
            {
                // A duplicate is answered as one even when a backlog is full: it would store nothing.
                results[i] = item.IdempotencyKey is { } repeated && FindLiveKey(repeated, nowTicks) is { } first ? first : AppendResult.Full(fullGroup);
                continue;
            }

            var id = _nextEventId;
            var names = new string[_routeScratch.Count];
            for (var g = 0; g < _routeScratch.Count; g++)
            {
                names[g] = _routeScratch[g].Group.Name;
            }

            if (item.IdempotencyKey is { } key && !ClaimKey(key, id, names, item.IdempotencyUntil.UtcTicks, nowTicks))
            {
                results[i] = FindLiveKey(key, nowTicks)
                    ?? throw new InvalidOperationException($"Idempotency key '{key}' is neither free nor held by a live entry.");
                continue;
            }

            _nextEventId++;
            if (_routeScratch.Count > 0)
            {
                // Consecutive events mostly go to the same groups: reuse the routes text.
                if (lastRoutes is null || !SameGroups(lastRouted!, _routeScratch))
                {
                    lastRoutes = SqliteRoutes.Format(_routeScratch);
                    lastRouted = [.. _routeScratch.Select(r => r.Group)];
                }

                var retainUntil = _routeScratch[0].RetainUntil;
                var retainOverrides = _routeScratch.Count == 1 ? null : SqliteRoutes.FormatOverrides(_routeScratch);
                _insertEvent.Bind(1, id);
                // The label string the cache keeps: what the tail holds lives as long as the cache does.
                _insertEvent.BindText(2, _labels.Utf8(item.Label, out var label));
                _insertEvent.Bind(3, item.Payload.Span);
                _insertEvent.Bind(4, item.OrderingKey);
                _insertEvent.Bind(5, item.Source);
                _insertEvent.Bind(6, item.RaisedAt.UtcTicks);
                _insertEvent.Bind(7, lastRoutes);
                _insertEvent.Bind(8, retainUntil);
                _insertEvent.Bind(9, retainOverrides);
                _insertEvent.Execute();
                _tail.Add(id, label, item.Payload.Span, item.OrderingKey, item.Source, item.RaisedAt.UtcTicks, lastRoutes, retainUntil, retainOverrides);
                for (var g = 0; g < _routeScratch.Count; g++)
                {
                    var (group, groupRetain) = _routeScratch[g];
                    group.OnAppended(id, groupRetain);
                    Touch(group);
                    AvailableGroups.Add(group.Name);
                }
            }

            results[i] = new AppendResult(AppendStatus.Stored, id, names);
        }

        return results;
    }

    /// <summary>
    /// Leases in event id order from two sources merged: the group's ready rows and its log after the scan position.
    /// A fresh event the lease cannot take (another worker's label, or behind an unfinished event of its ordering
    /// key) gets a row, so the scan position only moves forward.
    /// </summary>
    public LeaseBatch Lease(LeaseRequest request)
    {
        if (!_groupsByName.TryGetValue(request.Group, out var group))
        {
            return LeaseBatch.Empty;
        }

        Touch(group);
        var now = request.Now.UtcTicks;
        var leaseUntil = request.LeaseUntil.UtcTicks;
        if (group.DeliveryRows > 0)
        {
            _promoteDue.Execute(group.Id, now);
        }

        var leased = new List<LeasedEvent>(Math.Min(request.Max, ScanChunk));
        var rows = new Queue<SqliteCandidate>();
        var log = new Queue<SqliteCandidate>();
        var rowsAfter = 0L;
        var logAfter = group.Scanned;
        var rowsDone = group.DeliveryRows == 0;
        var logDone = group.Unscanned == 0;
        var logStopped = false;
        var passed = 0;
        while (leased.Count < request.Max)
        {
            var chunk = Math.Clamp((request.Max - leased.Count) * 2, 16, ScanChunk);
            if (rows.Count == 0 && !rowsDone)
            {
                rowsDone = ReadRows(rows, _readyRows.Query(group.Id, rowsAfter, (long)chunk), chunk, ref rowsAfter) < chunk;
            }

            if (log.Count == 0 && !logDone)
            {
                logDone = ReadLog(log, group, logAfter, chunk, ref logAfter) < chunk;
            }

            // Oldest first. The log queue starts at the first unscanned event, so a row before it has the whole log
            // before it read: no fresh event there can still hold its ordering key.
            var row = rows.Count > 0 ? rows.Peek() : null;
            var fresh = log.Count > 0 ? log.Peek() : null;
            if (fresh is not null && (row is null || fresh.EventId < row.EventId))
            {
                log.Dequeue();
                group.Scanned = fresh.EventId;
                group.Unscanned--;
                if (TakeFresh(group, fresh, request, leaseUntil) is { } lease)
                {
                    leased.Add(lease);
                }
                else if (++passed >= _options.MaxRowsPerLease)
                {
                    // Bounded work per call; the listener wakes the group's dispatcher to carry on.
                    logDone = logStopped = true;
                    AvailableGroups.Add(group.Name);
                    log.Clear();
                }
            }
            else if (row is not null && (!logStopped || row.EventId <= group.Scanned))
            {
                rows.Dequeue();
                if (TakeRow(group, row, request, leaseUntil) is { } lease)
                {
                    leased.Add(lease);
                }
            }
            else
            {
                break;
            }
        }

        var nextDue = group.DeliveryRows > 0 ? _nextDue.Int64(group.Id) : null;
        return new LeaseBatch(leased, nextDue is { } due ? Time(due) : null);
    }

    public IReadOnlyList<SettleResult> Settle(string groupName, IReadOnlyList<SettleItem> items, DateTimeOffset now)
    {
        var results = new SettleResult[items.Count];
        if (!_groupsByName.TryGetValue(groupName, out var group))
        {
            Array.Fill(results, SettleResult.Stale);
            return results;
        }

        Touch(group);
        var nowTicks = now.UtcTicks;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            if (!group.Leases.TryGetValue(item.Lease.EventId, out var lease) || lease.LeaseNo != item.Lease.LeaseNo || lease.LeaseUntil <= nowTicks)
            {
                results[i] = SettleResult.Stale;
                continue;
            }

            switch (item.Kind)
            {
                case SettleKind.Ack:
                    EndLease(group, lease);
                    if (lease.HasRow)
                    {
                        _deleteRow.Execute(group.Id, lease.EventId);
                        group.DeliveryRows--;
                    }
                    else
                    {
                        group.FinishFresh(lease.EventId, lease.OrderingKey);
                    }

                    results[i] = Confirmed(Record(new OutcomeNotice(lease.EventId, group.Name, OutcomeKind.Handled, lease.Attempt, null, false)));
                    break;

                case SettleKind.Extend:
                    _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.Extended, lease.LeaseUntil, lease.HasRow));
                    lease.LeaseUntil = item.Until.UtcTicks;
                    group.Schedule.Reschedule(lease);
                    results[i] = new SettleResult(SettleStatus.Confirmed);
                    break;

                case SettleKind.Nack:
                    results[i] = Confirmed(Fail(group, lease, item.MaxAttempts, item.Error, item.Until.UtcTicks, nowTicks));
                    break;

                case SettleKind.Reject:
                    EndLease(group, lease);
                    results[i] = Confirmed(DeadLetterLeased(group, lease, item.Error, DeadLetterReasons.Rejected, nowTicks));
                    break;

                default:
                    throw new ArgumentOutOfRangeException(nameof(items), item.Kind, "Unknown settle kind.");
            }
        }

        return results;
    }

    public IReadOnlyList<OutcomeNotice> Release(string groupName, IReadOnlyList<ReleaseItem> leases, string reason, DateTimeOffset now)
    {
        if (!_groupsByName.TryGetValue(groupName, out var group))
        {
            return [];
        }

        Touch(group);
        var outcomes = new List<OutcomeNotice>(leases.Count);
        var nowTicks = now.UtcTicks;
        foreach (var release in leases)
        {
            // A release does not care whether the lease already passed its end: it is the holder giving it back.
            if (group.Leases.TryGetValue(release.Lease.EventId, out var lease) && lease.LeaseNo == release.Lease.LeaseNo)
            {
                outcomes.Add(Fail(group, lease, release.MaxAttempts, reason, dueTicks: nowTicks, nowTicks));
            }
        }

        return outcomes;
    }

    public ExpiryResult Expire(DateTimeOffset now, IGroupPolicies policies, int maxItems)
    {
        var nowTicks = now.UtcTicks;
        var expired = new List<ExpiredLease>();
        var outcomes = new List<OutcomeNotice>();
        var groups = _groupsById.Values.OrderBy(g => g.Id).ToList();

        // (a) Leases past their end, group by group, each group's in order of expiry.
        foreach (var group in groups)
        {
            if (expired.Count >= maxItems)
            {
                break;
            }

            if (group.Schedule.First is not { } first || first.LeaseUntil > nowTicks)
            {
                continue;
            }

            var maxAttempts = policies.MaxAttempts(group.Name);
            while (expired.Count < maxItems && group.Schedule.First is { } lease && lease.LeaseUntil <= nowTicks)
            {
                expired.Add(new ExpiredLease(group.Name, new LeaseRef(lease.EventId, lease.LeaseNo)));
                outcomes.Add(Fail(group, lease, maxAttempts, LeaseExpiredError, dueTicks: nowTicks, nowTicks));
            }
        }

        // (b) Undelivered past retention: dead letters "expired". Rows by their index, then each group's unscanned log
        // in id order (retention grows with the id, so the first event still retained ends the look).
        var retentionExpired = 0;
        var retained = new List<(long GroupId, long EventId, int Attempt)>();
        using (var reader = _rowsPastRetention.Query(nowTicks, (long)maxItems))
        {
            while (reader.Read())
            {
                retained.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetInt32(2)));
            }
        }

        foreach (var (groupId, eventId, attempt) in retained)
        {
            if (_groupsById.TryGetValue(groupId, out var group))
            {
                outcomes.Add(DeadLetterRow(group, eventId, attempt, RetentionExpiredError, DeadLetterReasons.Expired, nowTicks));
                retentionExpired++;
            }
        }

        foreach (var group in groups)
        {
            if (retentionExpired >= maxItems)
            {
                break;
            }

            if (group.Unscanned > 0 && group.RetentionCheckAt <= nowTicks)
            {
                retentionExpired += ExpireLog(group, nowTicks, maxItems - retentionExpired, outcomes);
            }
        }

        // (c) Idempotency keys past their window.
        var forgotten = _forgetKeys.Execute(nowTicks, (long)maxItems);

        // (d) A step of the log's deletion follows this batch.
        _trimRequested = true;

        var more = expired.Count >= maxItems || retentionExpired >= maxItems || forgotten >= maxItems;
        return new ExpiryResult(expired, outcomes, retentionExpired, forgotten, more);
    }

    public int? Redrive(string groupName, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil)
    {
        if (!_groupsByName.TryGetValue(groupName, out var group))
        {
            return null;
        }

        Touch(group);
        var (due, retain) = (now.UtcTicks, retainUntil.UtcTicks);
        var moved = 0;
        if (eventIds is null)
        {
            moved = _redriveAll.Execute(due, retain, group.Id);
            _deleteGroupDeadLetters.Execute(group.Id);
        }
        else
        {
            foreach (var eventId in eventIds)
            {
                if (_redriveOne.Execute(due, retain, group.Id, eventId) == 1)
                {
                    _deleteDeadLetter.Execute(group.Id, eventId);
                    moved++;
                }
            }
        }

        if (moved > 0)
        {
            group.DeliveryRows += moved;
            group.DeadLetters -= moved;
            AvailableGroups.Add(group.Name);
        }

        return moved;
    }

    public void Dispose()
    {
        _trimmer.Dispose();
        _insertEvent.Dispose();
        _scanLog.Dispose();
        _findKey.Dispose();
        _putKey.Dispose();
        foreach (var statement in _statements)
        {
            statement.Dispose();
        }

        _db.Dispose();
    }

    internal static DateTimeOffset Time(long utcTicks) => new(utcTicks, TimeSpan.Zero);

    /// <summary>Reads up to <paramref name="chunk"/> of the group's log events after <paramref name="after"/>; returns how many.</summary>
    private int ReadLog(Queue<SqliteCandidate> target, SqliteGroupState group, long after, int chunk, ref long lastId)
    {
        if (_tail.Covers(after))
        {
            return _tail.Read(target, group, after, chunk, ref lastId);
        }

        _scanLog.Bind(1, after);
        _scanLog.Bind(2, group.Token);
        _scanLog.Bind(3, chunk);
        var count = 0;
        try
        {
            while (_scanLog.Read())
            {
                count++;
                lastId = _scanLog.Int64(0);
                target.Enqueue(new SqliteCandidate(
                    EventId: lastId,
                    Attempt: 0,
                    Label: _labels.Label(_scanLog.Utf8(1)),
                    Payload: _scanLog.Blob(2),
                    OrderingKey: _scanLog.TextOrNull(3),
                    Source: _scanLog.TextOrNull(4),
                    RaisedAt: _scanLog.Int64(5),
                    RetainUntil: SqliteRoutes.RetainUntil(group.Id, _scanLog.Int64(6), _scanLog.TextOrNull(7))));
            }
        }
        catch
        {
            _scanLog.Reset();
            throw;
        }

        return count;
    }

    /// <summary>Reads up to <paramref name="chunk"/> ready rows; returns how many the query gave.</summary>
    private static int ReadRows(Queue<SqliteCandidate> target, SqliteDataReader reader, int chunk, ref long lastId)
    {
        using (reader)
        {
            var count = 0;
            while (count < chunk && reader.Read())
            {
                count++;
                lastId = reader.GetInt64(0);
                target.Enqueue(new SqliteCandidate(
                    EventId: lastId,
                    Attempt: reader.GetInt32(1),
                    Label: reader.GetString(3),
                    Payload: reader.GetFieldValue<byte[]>(4),
                    OrderingKey: reader.IsDBNull(2) ? null : reader.GetString(2),
                    Source: reader.IsDBNull(5) ? null : reader.GetString(5),
                    RaisedAt: reader.GetInt64(6),
                    RetainUntil: reader.GetInt64(7)));
            }

            return count;
        }
    }

    /// <summary>
    /// A fresh event the scan reached: leased when the worker takes its label and nothing earlier holds its ordering
    /// key; otherwise it gets a ready row (another worker or a later lease takes it from there). Null when not leased.
    /// </summary>
    private LeasedEvent? TakeFresh(SqliteGroupState group, SqliteCandidate fresh, LeaseRequest request, long leaseUntil)
    {
        var id = fresh.EventId;
        if ((id <= group.MarkedBeforeOpen && group.Marks.IsDone(id)) || group.Leases.ContainsKey(id))
        {
            // Finished before a restart, or leased before a failed batch was rolled back.
            return null;
        }

        var key = fresh.OrderingKey;
        var blocked = key is not null && (group.FreshKeys.ContainsKey(key) || (group.DeliveryRows > 0 && _earlierRowOfKey.Int64(group.Id, key, id) is not null));
        if (blocked || !request.Filter.Matches(fresh.Label))
        {
            InsertRow(group, id, state: 0, sched: 0, leaseNo: 0, attempt: 0, error: null, fresh.RetainUntil);
            group.FinishFresh(id, key);
            group.DeliveryRows++;
            return null;
        }

        var lease = new SqliteLease(id, _nextLeaseNo++, 1, leaseUntil, hasRow: false, fresh.RetainUntil, key);
        group.AddLease(lease);
        _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.Added, leaseUntil, false));
        group.Marks.SetDelivered(id);
        return new LeasedEvent(id, lease.LeaseNo, 1, fresh.Label, fresh.Payload, key, fresh.Source, Time(fresh.RaisedAt), request.LeaseUntil);
    }

    /// <summary>A ready row: leased when the worker takes its label and no fresh lease holds its key. Null when not.</summary>
    private LeasedEvent? TakeRow(SqliteGroupState group, SqliteCandidate row, LeaseRequest request, long leaseUntil)
    {
        var key = row.OrderingKey;
        if ((key is not null && group.FreshKeys.TryGetValue(key, out var holder) && holder < row.EventId) || !request.Filter.Matches(row.Label))
        {
            return null;
        }

        if (row.Attempt >= request.MaxAttempts)
        {
            // A restart leaves a row waiting with its last attempt made: that attempt was in flight when the broker
            // stopped (its lease returned to pending at open, the attempt kept). Past max attempts: dead letters. (A
            // group's max attempts lowered in the configuration meets the same rule; the error then says too much.)
            DeadLetterRow(group, row.EventId, row.Attempt, InterruptedAttemptError, DeadLetterReasons.MaxAttempts, request.Now.UtcTicks);
            return null;
        }

        var attempt = row.Attempt + 1;
        var lease = new SqliteLease(row.EventId, _nextLeaseNo++, attempt, leaseUntil, hasRow: true, row.RetainUntil, key);
        _markRowLeased.Execute(leaseUntil, lease.LeaseNo, (long)attempt, group.Id, row.EventId);
        group.AddLease(lease);
        _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.Added, leaseUntil, true));
        return new LeasedEvent(row.EventId, lease.LeaseNo, attempt, row.Label, row.Payload, key, row.Source, Time(row.RaisedAt), request.LeaseUntil);
    }

    private void EndLease(SqliteGroupState group, SqliteLease lease)
    {
        _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.Removed, lease.LeaseUntil, lease.HasRow));
        group.Leases.Remove(lease.EventId);
        group.Schedule.Remove(lease);
    }

    /// <summary>
    /// A failed attempt of a lease: pending again in its row, due at <paramref name="dueTicks"/>, or to the dead letters
    /// once the attempt reached <paramref name="maxAttempts"/>.
    /// </summary>
    private OutcomeNotice Fail(SqliteGroupState group, SqliteLease lease, int maxAttempts, string? error, long dueTicks, long nowTicks)
    {
        Touch(group);
        EndLease(group, lease);
        if (lease.Attempt >= maxAttempts)
        {
            return DeadLetterLeased(group, lease, error, DeadLetterReasons.MaxAttempts, nowTicks);
        }

        if (lease.HasRow)
        {
            _delayRow.Execute(dueTicks, error, group.Id, lease.EventId);
        }
        else
        {
            InsertRow(group, lease.EventId, state: 2, sched: dueTicks, leaseNo: 0, lease.Attempt, error, lease.RetainUntil);
            group.FinishFresh(lease.EventId, lease.OrderingKey);
            group.DeliveryRows++;
        }

        if (dueTicks <= nowTicks)
        {
            AvailableGroups.Add(group.Name);
        }

        return Record(new OutcomeNotice(lease.EventId, group.Name, OutcomeKind.Failed, lease.Attempt, error, true));
    }

    private OutcomeNotice DeadLetterLeased(SqliteGroupState group, SqliteLease lease, string? error, string reason, long nowTicks)
    {
        if (lease.HasRow)
        {
            return DeadLetterRow(group, lease.EventId, lease.Attempt, error, reason, nowTicks);
        }

        Single(_deadFromEvent.Execute(group.Id, (long)lease.Attempt, error, reason, nowTicks, lease.EventId), group, lease.EventId);
        group.FinishFresh(lease.EventId, lease.OrderingKey);
        group.DeadLetters++;
        return Record(new OutcomeNotice(lease.EventId, group.Name, OutcomeKind.DeadLettered, lease.Attempt, error, false));
    }

    private OutcomeNotice DeadLetterRow(SqliteGroupState group, long eventId, int attempt, string? error, string reason, long nowTicks)
    {
        Touch(group);
        Single(_deadFromRow.Execute((long)attempt, error, reason, nowTicks, group.Id, eventId), group, eventId);
        _deleteRow.Execute(group.Id, eventId);
        group.DeliveryRows--;
        group.DeadLetters++;
        return Record(new OutcomeNotice(eventId, group.Name, OutcomeKind.DeadLettered, attempt, error, false));
    }

    /// <summary>
    /// Dead-letters the group's unscanned events past retention, oldest first, up to the first one still retained
    /// (then nothing needs a look before its retention). Returns how many.
    /// </summary>
    /// <remarks>
    /// A group's retention is now plus its configured period at the raise, so it grows with the event id and the first
    /// event still retained ends the look without an index on retention. Were a group's retention lowered between two
    /// runs (or the clock set back), an event raised after would wait for the older ones' retention before it expires
    /// undelivered; nothing is dropped, it only stays longer.
    /// </remarks>
    private int ExpireLog(SqliteGroupState group, long nowTicks, int max, List<OutcomeNotice> outcomes)
    {
        var expired = new List<long>();
        var checkAt = long.MaxValue;
        var after = group.Scanned;
        var scanned = group.Scanned;
        var passed = 0L;
        var limit = max + 1L;
        var read = 0L;
        using (var reader = _scanRetention.Query(after, group.Token, limit))
        {
            while (true)
            {
                if (expired.Count == max || !reader.Read())
                {
                    // Stopped by a limit rather than by the end of the log: more may be due, look again next time.
                    checkAt = expired.Count == max || read == limit ? long.MinValue : checkAt;
                    break;
                }

                read++;
                var id = reader.GetInt64(0);
                // Finished, or (after a failed batch, see Recover) a lease kept from before it: its worker has it.
                if ((id <= group.MarkedBeforeOpen && group.Marks.IsDone(id)) || group.Leases.ContainsKey(id))
                {
                    scanned = id;
                    passed++;
                    continue;
                }

                var retainUntil = SqliteRoutes.RetainUntil(group.Id, reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2));
                if (retainUntil > nowTicks)
                {
                    checkAt = retainUntil;
                    break;
                }

                expired.Add(id);
                scanned = id;
            }
        }

        Touch(group);
        foreach (var id in expired)
        {
            // Unscanned, so neither leased nor holding an ordering key in memory.
            Single(_deadFromEvent.Execute(group.Id, 0L, RetentionExpiredError, DeadLetterReasons.Expired, nowTicks, id), group, id);
            group.FinishFresh(id, null);
            group.DeadLetters++;
            outcomes.Add(Record(new OutcomeNotice(id, group.Name, OutcomeKind.DeadLettered, 0, RetentionExpiredError, false)));
        }

        // Everything up to `scanned` is finished now: the scan position may pass it.
        group.Unscanned -= expired.Count + passed;
        group.Scanned = scanned;
        group.RetentionCheckAt = checkAt;
        return expired.Count;
    }

    private void InsertRow(SqliteGroupState group, long eventId, int state, long sched, long leaseNo, int attempt, string? error, long retainUntil) =>
        Single(_rowFromEvent.Execute(group.Id, (long)state, sched, leaseNo, (long)attempt, error, retainUntil, eventId), group, eventId);

    /// <summary>A row copied from the log must exist: a missing event means the state is wrong, so the batch fails.</summary>
    private static void Single(int changed, SqliteGroupState group, long eventId)
    {
        if (changed != 1)
        {
            throw new InvalidOperationException($"SQLite store: event {eventId} of group '{group.Name}' is missing from the log.");
        }
    }

    /// <summary>
    /// Moves the floor up, gives the fresh leases that hold it too far behind the newest event a row of their own (so
    /// the log behind them can go), and writes the floor and the dirty mark blocks.
    /// </summary>
    private void SaveGroup(SqliteGroupState group, long head)
    {
        group.Floor = group.ComputeFloor(head);
        var moved = 0;
        while (head - group.Floor > _options.MaxLeaseFloorLag && group.OldestFreshLease() is { } oldest && oldest - 1 == group.Floor && moved++ < 1000)
        {
            var lease = group.Leases[oldest];
            InsertRow(group, lease.EventId, state: 1, sched: lease.LeaseUntil, lease.LeaseNo, lease.Attempt, error: null, lease.RetainUntil);
            _leaseChanges.Add(new SqliteLeaseChange(group.Id, lease, SqliteLeaseChangeKind.MovedToRow, lease.LeaseUntil, false));
            group.FinishFresh(lease.EventId, lease.OrderingKey);
            lease.HasRow = true;
            group.DeliveryRows++;
            group.Floor = group.ComputeFloor(head);
        }

        // The stored floor moves only when it enters another block of marks, with the blocks it passed deleted: a
        // lower stored floor is still true, the blocks above it keep the done marks of what it has not passed, and
        // opening reads the log from it. So most batches write one block row, not the floor too.
        var first = SqliteMarkBlock.NumberOf(group.Floor + 1);
        if (first != SqliteMarkBlock.NumberOf(group.SavedFloor + 1))
        {
            _saveFloor.Execute(group.Floor, group.Id);
            group.Marks.DropThrough(group.Floor);
            _dropMarksBelow.Execute(group.Id, first);

            // A failed commit rebuilds the whole state from storage, so this may run before the commit.
            group.SavedFloor = group.Floor;
        }

        foreach (var block in group.Marks.Blocks)
        {
            if (block.Dirty)
            {
                _saveMarks.Execute(group.Id, block.Number, block.DoneBytes(), block.DeliveredBytes());
                block.Dirty = false;
            }
        }
    }

    /// <summary>The leases as they were at the last commit: the current ones with this batch's changes undone.</summary>
    private List<(long GroupId, SqliteLease Lease)> CommittedLeases()
    {
        var leases = new Dictionary<(long, long), (long GroupId, SqliteLease Lease)>();
        foreach (var group in _groupsById.Values)
        {
            foreach (var lease in group.Leases.Values)
            {
                leases[(group.Id, lease.EventId)] = (group.Id, lease);
            }
        }

        for (var i = _leaseChanges.Count - 1; i >= 0; i--)
        {
            var change = _leaseChanges[i];
            var lease = change.Lease;
            lease.LeaseUntil = change.LeaseUntil;
            lease.HasRow = change.HadRow;
            switch (change.Kind)
            {
                case SqliteLeaseChangeKind.Added:
                    leases.Remove((change.GroupId, lease.EventId));
                    break;
                case SqliteLeaseChangeKind.Removed:
                    leases[(change.GroupId, lease.EventId)] = (change.GroupId, lease);
                    break;
                case SqliteLeaseChangeKind.Extended:
                case SqliteLeaseChangeKind.MovedToRow:
                default:
                    break;
            }
        }

        _leaseChanges.Clear();
        foreach (var (_, lease) in leases.Values)
        {
            lease.Node = null;
        }

        return [.. leases.Values];
    }

    private void Load(bool reopening, long nowTicks)
    {
        var state = SqliteStateLoader.Load(_db, reopening, nowTicks);
        _groupsByName.Clear();
        _groupsById.Clear();
        ClearTouched();
        foreach (var group in state.Groups.Values)
        {
            _groupsByName.Add(group.Name, group);
            _groupsById.Add(group.Id, group);
            Touch(group);
        }

        _nextEventId = _savedEventId = state.NextEventId;
        _tail.Restart(_nextEventId - 1);
        _savedLeaseNo = state.NextLeaseNo;
        _nextLeaseNo = Math.Max(_nextLeaseNo, state.NextLeaseNo);
        RecoveredLeases = state.RecoveredLeases;
        _trimmer.Reset();
        _trimRequested = true;
    }

    /// <summary>Lets the log's tail in memory go of the events every group has scanned (or has no events to scan).</summary>
    private void ReleaseTail(long head)
    {
        var needed = head;
        foreach (var group in _groupsById.Values)
        {
            if (group.Unscanned > 0 && group.Scanned < needed)
            {
                needed = group.Scanned;
            }
        }

        _tail.Release(needed);
    }

    /// <summary>Marks a group for <see cref="SaveGroup"/> at commit (its floor or marks may have changed).</summary>
    private void Touch(SqliteGroupState group)
    {
        if (!group.Touched)
        {
            group.Touched = true;
            _touched.Add(group);
        }
    }

    private void ClearTouched()
    {
        foreach (var group in _touched)
        {
            group.Touched = false;
        }

        _touched.Clear();
    }

    private static SettleResult Confirmed(OutcomeNotice outcome) => new(SettleStatus.Confirmed, outcome);

    private OutcomeNotice Record(OutcomeNotice outcome)
    {
        Outcomes.Add(outcome);
        return outcome;
    }

    private bool IsRouted(SqliteGroupState group)
    {
        foreach (var (routed, _) in _routeScratch)
        {
            if (ReferenceEquals(routed, group))
            {
                return true;
            }
        }

        return false;
    }

    private static bool SameGroups(List<SqliteGroupState> previous, List<(SqliteGroupState Group, long RetainUntil)> current)
    {
        if (previous.Count != current.Count)
        {
            return false;
        }

        for (var i = 0; i < previous.Count; i++)
        {
            if (!ReferenceEquals(previous[i], current[i].Group))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Stores <paramref name="key"/> for event <paramref name="id"/>; false when a live entry already holds it.</summary>
    private bool ClaimKey(string key, long id, string[] groups, long untilTicks, long nowTicks)
    {
        SqliteIdempotencyKey.Bind(_putKey, 1, key);
        _putKey.Bind(2, id);
        _putKey.Bind(3, JoinLines(groups));
        _putKey.Bind(4, untilTicks);
        _putKey.Bind(5, nowTicks);
        return _putKey.Execute() > 0;
    }

    private AppendResult? FindLiveKey(string key, long nowTicks)
    {
        SqliteIdempotencyKey.Bind(_findKey, 1, key);
        if (!_findKey.Read())
        {
            return null;
        }

        try
        {
            if (_findKey.Int64(2) <= nowTicks)
            {
                return null;
            }

            var groups = _findKey.Text(1);
            return new AppendResult(AppendStatus.Duplicate, _findKey.Int64(0), groups.Length == 0 ? [] : groups.Split('\n'));
        }
        finally
        {
            _findKey.Reset();
        }
    }

    private SqliteStatement Prepare(string sql, params string[] parameterNames)
    {
        var statement = new SqliteStatement(_db, sql, parameterNames);
        _statements.Add(statement);
        return statement;
    }

    private static bool AddDistinct(List<string> target, IEnumerable<string> patterns)
    {
        var added = false;
        foreach (var pattern in patterns)
        {
            if (!target.Contains(pattern, StringComparer.Ordinal))
            {
                target.Add(pattern);
                added = true;
            }
        }

        return added;
    }

    // Patterns, labels and group names cannot hold a newline (validated upstream), so it separates list items.
    private static string JoinLines(IEnumerable<string> items) => string.Join('\n', items);
}
