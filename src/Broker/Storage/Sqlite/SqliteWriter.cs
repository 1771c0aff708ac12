using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The single writer: owns the read-write connection, its prepared statements and the in-memory state (group ids,
/// patterns and backlog counts; the next event id and lease number). Only the writer loop of
/// <see cref="SqliteHookStore"/> calls it, one batch at a time, between <see cref="Begin"/> and <see cref="Commit"/>;
/// the operations record what the listener must hear, which the store reports once the batch is committed.
/// </summary>
internal sealed class SqliteWriter : IDisposable
{
    private const string LeaseExpiredError = "lease expired";
    private const string RetentionExpiredError = "expired: retention passed before delivery";
    private const int LeaseScanChunk = 256;

    private readonly SqliteConnection _db;
    private readonly List<SqliteStatement> _statements = [];
    private readonly Dictionary<string, SqliteGroupState> _groupsByName = new(StringComparer.Ordinal);
    private readonly Dictionary<long, SqliteGroupState> _groupsById = [];
    private readonly List<(SqliteGroupState Group, long RetainUntil)> _routeScratch = [];

    private long _nextEventId;
    private long _nextLeaseNo;
    private long _savedEventId;
    private long _savedLeaseNo;

    private readonly SqliteStatement _begin;
    private readonly SqliteStatement _commit;
    private readonly SqliteStatement _rollback;
    private readonly SqliteStatement _saveCounter;
    private readonly SqliteStatement _insertGroup;
    private readonly SqliteStatement _updateGroupPatterns;
    private readonly SqliteStatement _deleteGroupEventRefs;
    private readonly SqliteStatement _deleteGroupOrphanEvents;
    private readonly SqliteStatement _deleteGroupDeliveries;
    private readonly SqliteStatement _deleteGroupDeadLetters;
    private readonly SqliteStatement _deleteGroup;
    private readonly SqliteStatement _findKey;
    private readonly SqliteStatement _putKey;
    private readonly SqliteStatement _insertEvent;
    private readonly SqliteStatement _insertDelivery;
    private readonly SqliteStatement _promoteDue;
    private readonly SqliteStatement _leaseCandidates;
    private readonly SqliteStatement _markLeased;
    private readonly SqliteStatement _nextDue;
    private readonly SqliteStatement _ackLease;
    private readonly SqliteStatement _extendLease;
    private readonly SqliteStatement _currentLease;
    private readonly SqliteStatement _setDelayed;
    private readonly SqliteStatement _insertDeadLetter;
    private readonly SqliteStatement _deleteDelivery;
    private readonly SqliteStatement _deleteEventIfLastRef;
    private readonly SqliteStatement _dropEventRef;
    private readonly SqliteStatement _expiredLeases;
    private readonly SqliteStatement _retentionPassed;
    private readonly SqliteStatement _forgetKeys;
    private readonly SqliteStatement _redriveOne;
    private readonly SqliteStatement _redriveAll;
    private readonly SqliteStatement _deleteDeadLetter;
    private readonly SqliteStatement _recoverLeases;

    public SqliteWriter(SqliteConnection db)
    {
        _db = db;
        _begin = Prepare("BEGIN IMMEDIATE");
        _commit = Prepare("COMMIT");
        _rollback = Prepare("ROLLBACK");
        _saveCounter = Prepare("UPDATE meta SET value = $v WHERE key = $k", "$v", "$k");

        _insertGroup = Prepare("INSERT INTO groups(name, patterns, created_at) VALUES ($n, $p, $t) RETURNING id", "$n", "$p", "$t");
        _updateGroupPatterns = Prepare("UPDATE groups SET patterns = $p WHERE id = $g", "$p", "$g");
        const string groupEventIds = "SELECT event_id FROM deliveries WHERE group_id = $g UNION ALL SELECT event_id FROM dead_letters WHERE group_id = $g";
        _deleteGroupEventRefs = Prepare($"UPDATE events SET refs = refs - 1 WHERE id IN ({groupEventIds})", "$g");
        _deleteGroupOrphanEvents = Prepare($"DELETE FROM events WHERE refs <= 0 AND id IN ({groupEventIds})", "$g");
        _deleteGroupDeliveries = Prepare("DELETE FROM deliveries WHERE group_id = $g", "$g");
        _deleteGroupDeadLetters = Prepare("DELETE FROM dead_letters WHERE group_id = $g", "$g");
        _deleteGroup = Prepare("DELETE FROM groups WHERE id = $g", "$g");

        _findKey = Prepare("SELECT event_id, groups, expires_at FROM idempotency WHERE key = $k", "$k");
        _putKey = Prepare("INSERT OR REPLACE INTO idempotency(key, event_id, groups, expires_at) VALUES ($k, $e, $gs, $x)", "$k", "$e", "$gs", "$x");
        _insertEvent = Prepare(
            "INSERT INTO events(id, label, payload, ordering_key, source, raised_at, refs) VALUES ($e, $l, $p, $o, $s, $r, $n)",
            "$e", "$l", "$p", "$o", "$s", "$r", "$n");
        _insertDelivery = Prepare(
            "INSERT INTO deliveries(group_id, event_id, state, sched, lease_no, attempt, last_error, retain_until, ordering_key) VALUES ($g, $e, 0, 0, 0, 0, NULL, $ru, $o)",
            "$g", "$e", "$ru", "$o");

        _promoteDue = Prepare(
            "UPDATE deliveries SET state = 0, sched = 0 WHERE group_id = $g AND state = 2 AND sched <= $now",
            "$g", "$now");
        _leaseCandidates = Prepare(
            """
            SELECT d.event_id, d.attempt, d.ordering_key, e.label, e.payload, e.source, e.raised_at
            FROM deliveries AS d INDEXED BY deliveries_sched
            JOIN events AS e ON e.id = d.event_id
            WHERE d.group_id = $g AND d.state = 0 AND d.sched = 0 AND d.event_id > $after
              AND (d.ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM deliveries AS k INDEXED BY deliveries_okey
                    WHERE k.group_id = $g AND k.ordering_key = d.ordering_key AND k.event_id < d.event_id))
            ORDER BY d.event_id
            LIMIT $n
            """,
            "$g", "$after", "$n");
        _markLeased = Prepare(
            "UPDATE deliveries SET state = 1, sched = $lu, lease_no = $ln, attempt = $a WHERE group_id = $g AND event_id = $e",
            "$lu", "$ln", "$a", "$g", "$e");
        _nextDue = Prepare(
            "SELECT sched FROM deliveries INDEXED BY deliveries_sched WHERE group_id = $g AND state = 2 ORDER BY sched LIMIT 1",
            "$g");

        const string isCurrentLease = "group_id = $g AND event_id = $e AND state = 1 AND lease_no = $ln AND sched > $now";
        _ackLease = Prepare($"DELETE FROM deliveries WHERE {isCurrentLease} RETURNING attempt", "$g", "$e", "$ln", "$now");
        _extendLease = Prepare($"UPDATE deliveries SET sched = $until WHERE {isCurrentLease}", "$until", "$g", "$e", "$ln", "$now");
        _currentLease = Prepare($"SELECT attempt FROM deliveries WHERE {isCurrentLease}", "$g", "$e", "$ln", "$now");
        _setDelayed = Prepare(
            "UPDATE deliveries SET state = 2, sched = $due, last_error = $err WHERE group_id = $g AND event_id = $e",
            "$due", "$err", "$g", "$e");
        _insertDeadLetter = Prepare(
            "INSERT INTO dead_letters(group_id, event_id, attempts, last_error, reason, dead_at) VALUES ($g, $e, $a, $err, $why, $t)",
            "$g", "$e", "$a", "$err", "$why", "$t");
        _deleteDelivery = Prepare("DELETE FROM deliveries WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _deleteEventIfLastRef = Prepare("DELETE FROM events WHERE id = $e AND refs <= 1", "$e");
        _dropEventRef = Prepare("UPDATE events SET refs = refs - 1 WHERE id = $e", "$e");

        _expiredLeases = Prepare(
            "SELECT event_id, lease_no, attempt FROM deliveries INDEXED BY deliveries_sched WHERE group_id = $g AND state = 1 AND sched <= $now ORDER BY sched LIMIT $n",
            "$g", "$now", "$n");
        _retentionPassed = Prepare(
            "SELECT group_id, event_id, attempt FROM deliveries INDEXED BY deliveries_retain WHERE retain_until <= $now AND state <> 1 ORDER BY retain_until LIMIT $n",
            "$now", "$n");
        _forgetKeys = Prepare(
            "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency INDEXED BY idempotency_expiry WHERE expires_at <= $now ORDER BY expires_at LIMIT $n)",
            "$now", "$n");

        const string redrive = """
            INSERT INTO deliveries(group_id, event_id, state, sched, lease_no, attempt, last_error, retain_until, ordering_key)
            SELECT dl.group_id, dl.event_id, 2, $due, 0, 0, NULL, $ru, e.ordering_key
            FROM dead_letters AS dl JOIN events AS e ON e.id = dl.event_id
            """;
        _redriveOne = Prepare($"{redrive} WHERE dl.group_id = $g AND dl.event_id = $e", "$due", "$ru", "$g", "$e");
        _redriveAll = Prepare($"{redrive} WHERE dl.group_id = $g", "$due", "$ru", "$g");
        _deleteDeadLetter = Prepare("DELETE FROM dead_letters WHERE group_id = $g AND event_id = $e", "$g", "$e");
        _recoverLeases = Prepare("UPDATE deliveries SET state = 2, sched = $now WHERE group_id = $g AND state = 1", "$now", "$g");

        LoadState();
    }

    /// <summary>Groups whose workers may have new deliveries after this batch.</summary>
    public HashSet<string> AvailableGroups { get; } = new(StringComparer.Ordinal);

    /// <summary>Outcomes produced by this batch.</summary>
    public List<OutcomeNotice> Outcomes { get; } = [];

    /// <summary>True when a group or its patterns changed in this batch.</summary>
    public bool GroupsChanged { get; private set; }

    public void Begin()
    {
        AvailableGroups.Clear();
        Outcomes.Clear();
        GroupsChanged = false;
        _begin.Execute();
    }

    public void Commit()
    {
        if (_nextEventId != _savedEventId)
        {
            _saveCounter.Execute(_nextEventId, "next_event_id");
        }

        if (_nextLeaseNo != _savedLeaseNo)
        {
            _saveCounter.Execute(_nextLeaseNo, "next_lease_no");
        }

        _commit.Execute();
        _savedEventId = _nextEventId;
        _savedLeaseNo = _nextLeaseNo;
    }

    /// <summary>After a failed batch: rolls back what is left of the transaction and reloads the in-memory state.</summary>
    public void Recover()
    {
        AvailableGroups.Clear();
        Outcomes.Clear();
        if (SQLitePCL.raw.sqlite3_get_autocommit(_db.Handle) == 0)
        {
            _rollback.Execute();
        }

        LoadState();
        GroupsChanged = true;
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

    /// <summary>At open: leases left by a previous process go back to pending due now (attempt kept). Returns how many.</summary>
    public int RecoverLeases(DateTimeOffset now)
    {
        var count = 0;
        foreach (var group in _groupsById.Values)
        {
            count += _recoverLeases.Execute(now.UtcTicks, group.Id);
        }

        return count;
    }

    public GroupRecord AddGroupPatterns(string name, IReadOnlyCollection<string> patterns, DateTimeOffset now)
    {
        if (!_groupsByName.TryGetValue(name, out var group))
        {
            var created = new List<string>(patterns.Count);
            AddDistinct(created, patterns);
            var id = (long)_insertGroup.Scalar(name, JoinLines(created), now.UtcTicks)!;
            group = new SqliteGroupState(id, name, created, 0);
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

        _deleteGroupEventRefs.Execute(group.Id);
        _deleteGroupOrphanEvents.Execute(group.Id);
        _deleteGroupDeliveries.Execute(group.Id);
        _deleteGroupDeadLetters.Execute(group.Id);
        _deleteGroup.Execute(group.Id);
        _groupsByName.Remove(name);
        _groupsById.Remove(group.Id);
        GroupsChanged = true;
        return true;
    }

    public IReadOnlyList<AppendResult> Append(IReadOnlyList<NewEvent> events, DateTimeOffset now)
    {
        var results = new AppendResult[events.Count];
        var nowTicks = now.UtcTicks;
        for (var i = 0; i < events.Count; i++)
        {
            var item = events[i];
            if (item.IdempotencyKey is { } key && FindLiveKey(key, nowTicks) is { } duplicate)
            {
                results[i] = duplicate;
                continue;
            }

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
                results[i] = AppendResult.Full(fullGroup);
                continue;
            }

            var id = _nextEventId++;
            var names = new string[_routeScratch.Count];
            if (_routeScratch.Count > 0)
            {
                _insertEvent.Execute(id, item.Label, ToArray(item.Payload), item.OrderingKey, item.Source, item.RaisedAt.UtcTicks, (long)_routeScratch.Count);
                for (var g = 0; g < _routeScratch.Count; g++)
                {
                    var (group, retainUntil) = _routeScratch[g];
                    _insertDelivery.Execute(group.Id, id, retainUntil, item.OrderingKey);
                    group.Backlog++;
                    names[g] = group.Name;
                    AvailableGroups.Add(group.Name);
                }
            }

            if (item.IdempotencyKey is { } newKey)
            {
                _putKey.Execute(newKey, id, JoinLines(names), item.IdempotencyUntil.UtcTicks);
            }

            results[i] = new AppendResult(AppendStatus.Stored, id, names);
        }

        return results;
    }

    public LeaseBatch Lease(LeaseRequest request)
    {
        if (!_groupsByName.TryGetValue(request.Group, out var group))
        {
            return LeaseBatch.Empty;
        }

        var now = request.Now.UtcTicks;
        _promoteDue.Execute(group.Id, now);

        var leased = new List<LeasedEvent>(Math.Min(request.Max, LeaseScanChunk));
        var after = 0L;
        var chunk = Math.Max(LeaseScanChunk, Math.Min(request.Max, 4096));
        var exhausted = false;
        while (leased.Count < request.Max && !exhausted)
        {
            var rows = 0;
            using (var reader = _leaseCandidates.Query(group.Id, after, (long)chunk))
            {
                while (leased.Count < request.Max && reader.Read())
                {
                    rows++;
                    after = reader.GetInt64(0);
                    var label = reader.GetString(3);
                    if (!request.Filter.Matches(label))
                    {
                        continue;
                    }

                    leased.Add(new LeasedEvent(
                        EventId: after,
                        LeaseNo: _nextLeaseNo++,
                        Attempt: reader.GetInt32(1) + 1,
                        Label: label,
                        Payload: reader.GetFieldValue<byte[]>(4),
                        OrderingKey: reader.IsDBNull(2) ? null : reader.GetString(2),
                        Source: reader.IsDBNull(5) ? null : reader.GetString(5),
                        RaisedAt: Time(reader.GetInt64(6)),
                        LeaseUntil: request.LeaseUntil));
                }

                exhausted = rows < chunk && leased.Count < request.Max;
            }
        }

        var leaseUntil = request.LeaseUntil.UtcTicks;
        foreach (var lease in leased)
        {
            _markLeased.Execute(leaseUntil, lease.LeaseNo, (long)lease.Attempt, group.Id, lease.EventId);
        }

        var nextDue = _nextDue.Int64(group.Id);
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

        var nowTicks = now.UtcTicks;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var (eventId, leaseNo) = item.Lease;
            switch (item.Kind)
            {
                case SettleKind.Ack:
                    if (_ackLease.Int64(group.Id, eventId, leaseNo, nowTicks) is { } ackedAttempt)
                    {
                        group.Backlog--;
                        DropEventRef(eventId);
                        results[i] = Confirmed(Record(new OutcomeNotice(eventId, group.Name, OutcomeKind.Handled, (int)ackedAttempt, null, false)));
                    }
                    else
                    {
                        results[i] = SettleResult.Stale;
                    }

                    break;

                case SettleKind.Extend:
                    results[i] = _extendLease.Execute(item.Until.UtcTicks, group.Id, eventId, leaseNo, nowTicks) == 1
                        ? new SettleResult(SettleStatus.Confirmed)
                        : SettleResult.Stale;
                    break;

                case SettleKind.Nack:
                case SettleKind.Reject:
                    if (_currentLease.Int64(group.Id, eventId, leaseNo, nowTicks) is not { } attempt)
                    {
                        results[i] = SettleResult.Stale;
                    }
                    else if (item.Kind == SettleKind.Reject)
                    {
                        results[i] = Confirmed(DeadLetter(group, eventId, (int)attempt, item.Error, DeadLetterReasons.Rejected, nowTicks));
                    }
                    else
                    {
                        results[i] = Confirmed(Fail(group, eventId, (int)attempt, item.MaxAttempts, item.Error, item.Until.UtcTicks, nowTicks));
                    }

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

        var outcomes = new List<OutcomeNotice>(leases.Count);
        var nowTicks = now.UtcTicks;
        foreach (var release in leases)
        {
            // A release does not care whether the lease already passed its end: it is the holder giving it back.
            if (_currentLease.Int64(group.Id, release.Lease.EventId, release.Lease.LeaseNo, long.MinValue) is { } attempt)
            {
                outcomes.Add(Fail(group, release.Lease.EventId, (int)attempt, release.MaxAttempts, reason, dueTicks: nowTicks, nowTicks));
            }
        }

        return outcomes;
    }

    public ExpiryResult Expire(DateTimeOffset now, IGroupPolicies policies, int maxItems)
    {
        var nowTicks = now.UtcTicks;
        var expired = new List<ExpiredLease>();
        var outcomes = new List<OutcomeNotice>();

        // (a) Leases past their end, group by group (few groups; each an index range).
        var candidates = new List<(long EventId, long LeaseNo, int Attempt)>();
        foreach (var group in _groupsById.Values.OrderBy(g => g.Id))
        {
            if (expired.Count >= maxItems)
            {
                break;
            }

            candidates.Clear();
            using (var reader = _expiredLeases.Query(group.Id, nowTicks, (long)(maxItems - expired.Count)))
            {
                while (reader.Read())
                {
                    candidates.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetInt32(2)));
                }
            }

            if (candidates.Count == 0)
            {
                continue;
            }

            var maxAttempts = policies.MaxAttempts(group.Name);
            foreach (var (eventId, leaseNo, attempt) in candidates)
            {
                expired.Add(new ExpiredLease(group.Name, new LeaseRef(eventId, leaseNo)));
                outcomes.Add(Fail(group, eventId, attempt, maxAttempts, LeaseExpiredError, dueTicks: nowTicks, nowTicks));
            }
        }

        // (b) Undelivered past retention: dead letters "expired".
        var retained = new List<(long GroupId, long EventId, int Attempt)>();
        using (var reader = _retentionPassed.Query(nowTicks, (long)maxItems))
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
                outcomes.Add(DeadLetter(group, eventId, attempt, RetentionExpiredError, DeadLetterReasons.Expired, nowTicks));
            }
        }

        // (c) Idempotency keys past their window.
        var forgotten = _forgetKeys.Execute(nowTicks, (long)maxItems);

        var more = expired.Count >= maxItems || retained.Count >= maxItems || forgotten >= maxItems;
        return new ExpiryResult(expired, outcomes, retained.Count, forgotten, more);
    }

    public int? Redrive(string groupName, IReadOnlyList<long>? eventIds, DateTimeOffset now, DateTimeOffset retainUntil)
    {
        if (!_groupsByName.TryGetValue(groupName, out var group))
        {
            return null;
        }

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
            group.Backlog += moved;
            AvailableGroups.Add(group.Name);
        }

        return moved;
    }

    public void Dispose()
    {
        foreach (var statement in _statements)
        {
            statement.Dispose();
        }

        _db.Dispose();
    }

    /// <summary>
    /// A failed attempt: pending again, due at <paramref name="dueTicks"/> (the next lease at or after it promotes it
    /// to ready), or to the dead letters once the attempt reached <paramref name="maxAttempts"/>.
    /// </summary>
    private OutcomeNotice Fail(SqliteGroupState group, long eventId, int attempt, int maxAttempts, string? error, long dueTicks, long nowTicks)
    {
        if (attempt >= maxAttempts)
        {
            return DeadLetter(group, eventId, attempt, error, DeadLetterReasons.MaxAttempts, nowTicks);
        }

        _setDelayed.Execute(dueTicks, error, group.Id, eventId);
        if (dueTicks <= nowTicks)
        {
            AvailableGroups.Add(group.Name);
        }

        return Record(new OutcomeNotice(eventId, group.Name, OutcomeKind.Failed, attempt, error, true));
    }

    private OutcomeNotice DeadLetter(SqliteGroupState group, long eventId, int attempt, string? error, string reason, long nowTicks)
    {
        _insertDeadLetter.Execute(group.Id, eventId, (long)attempt, error, reason, nowTicks);
        _deleteDelivery.Execute(group.Id, eventId);
        group.Backlog--;
        return Record(new OutcomeNotice(eventId, group.Name, OutcomeKind.DeadLettered, attempt, error, false));
    }

    private static SettleResult Confirmed(OutcomeNotice outcome) => new(SettleStatus.Confirmed, outcome);

    private OutcomeNotice Record(OutcomeNotice outcome)
    {
        Outcomes.Add(outcome);
        return outcome;
    }

    /// <summary>One delivery or dead letter let go of an event: the event row goes with its last reference.</summary>
    private void DropEventRef(long eventId)
    {
        if (_deleteEventIfLastRef.Execute(eventId) == 0)
        {
            _dropEventRef.Execute(eventId);
        }
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

    private AppendResult? FindLiveKey(string key, long nowTicks)
    {
        using var reader = _findKey.Query(key);
        if (!reader.Read() || reader.GetInt64(2) <= nowTicks)
        {
            return null;
        }

        var groups = reader.GetString(1);
        return new AppendResult(AppendStatus.Duplicate, reader.GetInt64(0), groups.Length == 0 ? [] : groups.Split('\n'));
    }

    private void LoadState()
    {
        _groupsByName.Clear();
        _groupsById.Clear();
        using (var command = _db.CreateCommand())
        {
            command.CommandText = "SELECT id, name, patterns FROM groups";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var patterns = reader.GetString(2);
                var group = new SqliteGroupState(reader.GetInt64(0), reader.GetString(1), patterns.Length == 0 ? [] : [.. patterns.Split('\n')], 0);
                _groupsByName.Add(group.Name, group);
                _groupsById.Add(group.Id, group);
            }
        }

        using (var command = _db.CreateCommand())
        {
            command.CommandText = "SELECT group_id, count(*) FROM deliveries GROUP BY group_id";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (_groupsById.TryGetValue(reader.GetInt64(0), out var group))
                {
                    group.Backlog = reader.GetInt64(1);
                }
            }
        }

        using (var command = _db.CreateCommand())
        {
            command.CommandText = "SELECT key, value FROM meta";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                switch (reader.GetString(0))
                {
                    case "next_event_id":
                        _nextEventId = _savedEventId = reader.GetInt64(1);
                        break;
                    case "next_lease_no":
                        _nextLeaseNo = _savedLeaseNo = reader.GetInt64(1);
                        break;
                    default:
                        break;
                }
            }
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

    private static byte[] ToArray(ReadOnlyMemory<byte> payload) =>
        MemoryMarshal.TryGetArray(payload, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : payload.ToArray();

    internal static DateTimeOffset Time(long utcTicks) => new(utcTicks, TimeSpan.Zero);
}
