using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// Rebuilds the writer's in-memory state from storage: at open (where the leases of the previous process return to
/// pending), and after a failed batch rolled back (where the committed leases are kept and put back by the writer).
/// Runs inside a write transaction.
/// </summary>
internal static class SqliteStateLoader
{
    public static SqliteLoadedState Load(SqliteConnection db, bool reopening, long nowTicks)
    {
        var groups = LoadGroups(db);
        var (nextEventId, nextLeaseNo) = LoadCounters(db);
        var head = nextEventId - 1;
        LoadMarks(db, groups);
        Count(db, "SELECT group_id, count(*) FROM deliveries GROUP BY group_id", groups, static (g, n) => g.DeliveryRows = n);
        Count(db, "SELECT group_id, count(*) FROM dead_letters GROUP BY group_id", groups, static (g, n) => g.DeadLetters = n);

        var recovered = 0;
        if (reopening)
        {
            // Rows leased by the previous process are nobody's now: due at once, attempt kept.
            recovered += Execute(db, "UPDATE deliveries SET state = 2, sched = $now WHERE state = 1", ("$now", nowTicks));
        }

        var delivered = ScanLog(db, groups, reopening, head);
        foreach (var (group, eventId, retainUntil) in delivered)
        {
            // Leased by the previous process and neither acked nor failed: a row due at once, the attempt counted.
            var inserted = Execute(
                db,
                """
                INSERT INTO deliveries(group_id, event_id, state, sched, lease_no, attempt, last_error, retain_until, ordering_key, label, payload, source, raised_at)
                SELECT $g, id, 2, $now, 0, 1, NULL, $ru, ordering_key, label, payload, source, raised_at FROM events WHERE id = $e
                """,
                ("$g", group.Id),
                ("$now", nowTicks),
                ("$ru", retainUntil),
                ("$e", eventId));
            if (inserted != 1)
            {
                throw new InvalidOperationException($"SQLite store: event {eventId} of group '{group.Name}' is missing from the log.");
            }

            group.Marks.SetDone(eventId);
            group.MarkedBeforeOpen = Math.Max(group.MarkedBeforeOpen, eventId);
            group.DeliveryRows++;
            recovered++;
        }

        foreach (var group in groups.Values)
        {
            group.Floor = group.ComputeFloor(head);
        }

        return new SqliteLoadedState(groups, nextEventId, nextLeaseNo, recovered);
    }

    private static Dictionary<long, SqliteGroupState> LoadGroups(SqliteConnection db)
    {
        var groups = new Dictionary<long, SqliteGroupState>();
        using var command = db.CreateCommand();
        command.CommandText = "SELECT id, name, patterns, floor FROM groups";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var patterns = reader.GetString(2);
            var group = new SqliteGroupState(reader.GetInt64(0), reader.GetString(1), patterns.Length == 0 ? [] : [.. patterns.Split('\n')], reader.GetInt64(3));
            groups.Add(group.Id, group);
        }

        return groups;
    }

    private static (long NextEventId, long NextLeaseNo) LoadCounters(SqliteConnection db)
    {
        long nextEventId = 1, nextLeaseNo = 1;
        using var command = db.CreateCommand();
        command.CommandText = "SELECT key, value FROM meta";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            switch (reader.GetString(0))
            {
                case "next_event_id":
                    nextEventId = reader.GetInt64(1);
                    break;
                case "next_lease_no":
                    nextLeaseNo = reader.GetInt64(1);
                    break;
                default:
                    break;
            }
        }

        return (nextEventId, nextLeaseNo);
    }

    private static void LoadMarks(SqliteConnection db, Dictionary<long, SqliteGroupState> groups)
    {
        using (var command = db.CreateCommand())
        {
            command.CommandText = "SELECT group_id, block, done, delivered FROM group_marks";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (!groups.TryGetValue(reader.GetInt64(0), out var group))
                {
                    continue;
                }

                var number = reader.GetInt64(1);
                if (((number + 1) << SqliteMarkBlock.Shift) - 1 <= group.Floor)
                {
                    continue;
                }

                var block = group.Marks.Add(number);
                block.Load(reader.GetFieldValue<byte[]>(2), reader.GetFieldValue<byte[]>(3));
                group.MarkedBeforeOpen = Math.Max(group.MarkedBeforeOpen, block.LastDone());
            }
        }

        // Blocks wholly below their group's floor, or of a group that is gone, are history.
        Execute(
            db,
            $"DELETE FROM group_marks WHERE block < (SELECT (floor + 1) >> {SqliteMarkBlock.Shift} FROM groups WHERE groups.id = group_marks.group_id) OR group_id NOT IN (SELECT id FROM groups)");
    }

    /// <summary>
    /// Reads the log above the lowest floor once: per group, the fresh events still unfinished (counted, and the scan
    /// position put just before the first), and the ones a previous process had leased (returned, to become rows).
    /// </summary>
    private static List<(SqliteGroupState Group, long EventId, long RetainUntil)> ScanLog(SqliteConnection db, Dictionary<long, SqliteGroupState> groups, bool reopening, long head)
    {
        var delivered = new List<(SqliteGroupState, long, long)>();
        if (groups.Count == 0)
        {
            return delivered;
        }

        var firstOpen = new Dictionary<long, long>();
        var lowest = groups.Values.Min(g => g.Floor);
        using (var command = db.CreateCommand())
        {
            command.CommandText = "SELECT id, routes, retain_until, retain_overrides FROM events WHERE id > $after ORDER BY id";
            command.Parameters.AddWithValue("$after", lowest);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var eventId = reader.GetInt64(0);
                foreach (var groupId in SqliteRoutes.Parse(reader.GetString(1)))
                {
                    if (!groups.TryGetValue(groupId, out var group) || eventId <= group.Floor)
                    {
                        continue;
                    }

                    var open = firstOpen.ContainsKey(groupId);
                    if (group.Marks.IsDone(eventId))
                    {
                        group.Unscanned += open ? 1 : 0;
                        continue;
                    }

                    if (reopening && group.Marks.IsDelivered(eventId))
                    {
                        delivered.Add((group, eventId, SqliteRoutes.RetainUntil(groupId, reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3))));
                        group.Unscanned += open ? 1 : 0;
                        continue;
                    }

                    if (!open)
                    {
                        firstOpen.Add(groupId, eventId);
                    }

                    group.FreshUnfinished++;
                    group.Unscanned++;
                }
            }
        }

        foreach (var group in groups.Values)
        {
            if (firstOpen.TryGetValue(group.Id, out var first))
            {
                group.Scanned = first - 1;
            }
            else
            {
                group.Scanned = head;
                group.Unscanned = 0;
            }
        }

        return delivered;
    }

    private static void Count(SqliteConnection db, string sql, Dictionary<long, SqliteGroupState> groups, Action<SqliteGroupState, long> set)
    {
        using var command = db.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            if (groups.TryGetValue(reader.GetInt64(0), out var group))
            {
                set(group, reader.GetInt64(1));
            }
        }
    }

    private static int Execute(SqliteConnection db, string sql, params (string Name, object Value)[] parameters)
    {
        using var command = db.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command.ExecuteNonQuery();
    }
}
