using System.Collections.Concurrent;
using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// What the SQLite engine's log layout makes risky: acks kept as marks above a group's floor, leases in memory only,
/// the log deleted behind the slowest group, groups created or recreated later, long leases, the bounded lease
/// scan, a failed batch, and databases written by the version 1 layout.
/// </summary>
public sealed class SqliteLogLayoutTests : IAsyncDisposable
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "hookbroker-tests", $"sqlite-log-{Guid.NewGuid():N}");
    private readonly List<SqliteHookStore> _stores = [];
    private readonly Dictionary<SqliteHookStore, string> _folders = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Acks_above_the_floor_survive_a_crash_and_are_not_redelivered()
    {
        var store = await OpenAsync("db");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var ids = await AppendAsync(store, 10, "g1");
        var leases = (await LeaseAsync(store, "g1", 10, At(1))).Deliveries;

        // Everything but the first is acked: the floor stays below the first, the rest are marks above it.
        var results = await store.SettleAsync("g1", [.. leases.Skip(1).Select(Ack)], At(2), Ct);
        Assert.All(results, r => Assert.Equal(SettleStatus.Confirmed, r.Status));

        var recovered = await OpenAsync(CrashImage(store), now: At(5));
        var stats = await StatsAsync(recovered, "g1");
        Assert.Equal(1, stats.Backlog);
        Assert.Equal(0, stats.InFlight);
        Assert.Equal(OutcomeKind.Handled, (await recovered.GetOutcomesAsync(ids[5], ["g1"], Ct))[0]!.Kind);
        Assert.Null((await recovered.GetOutcomesAsync(ids[0], ["g1"], Ct))[0]);

        var again = Assert.Single((await LeaseAsync(recovered, "g1", 100, At(5))).Deliveries);
        Assert.Equal(ids[0], again.EventId);
        Assert.Equal(2, again.Attempt);
        Assert.Equal(SettleStatus.Confirmed, Assert.Single(await recovered.SettleAsync("g1", [Ack(again)], At(6), Ct)).Status);
        Assert.Equal(0, (await StatsAsync(recovered, "g1")).Backlog);
        Assert.Empty((await LeaseAsync(recovered, "g1", 100, At(7))).Deliveries);

        // Ids and lease numbers go on past what the crashed process may have handed out.
        var later = await AppendAsync(recovered, 1, "g1");
        Assert.True(later[0] > ids[^1]);
        Assert.True(Assert.Single((await LeaseAsync(recovered, "g1", 100, At(8))).Deliveries).LeaseNo > again.LeaseNo);
    }

    [Fact(Timeout = 30_000)]
    public async Task Leased_events_come_back_after_a_crash_with_the_attempt_counted_each_time()
    {
        var store = await OpenAsync("db");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var ids = await AppendAsync(store, 5, "g1");

        // ids[0] fails once and is leased again (a row); ids[1..2] are leased fresh; ids[3..4] never leased.
        var first = (await LeaseAsync(store, "g1", 1, At(1))).Deliveries;
        await store.SettleAsync("g1", [new SettleItem(Ref(first[0]), SettleKind.Nack, At(1), "boom", 5)], At(1), Ct);
        var leased = (await LeaseAsync(store, "g1", 3, At(2))).Deliveries;
        Assert.Equal([ids[0], ids[1], ids[2]], leased.Select(d => d.EventId));
        Assert.Equal([2, 1, 1], leased.Select(d => d.Attempt));

        var recovered = await OpenAsync(CrashImage(store), now: At(10));
        Assert.Equal(SettleStatus.Stale, Assert.Single(await recovered.SettleAsync("g1", [Ack(leased[1])], At(10), Ct)).Status);
        var again = (await LeaseAsync(recovered, "g1", 100, At(10))).Deliveries;
        Assert.Equal(ids, again.Select(d => d.EventId));
        Assert.Equal([3, 2, 2, 1, 1], again.Select(d => d.Attempt));
        Assert.All(again, d => Assert.True(d.LeaseNo > leased.Max(l => l.LeaseNo)));
        AssertOutcome((await recovered.GetOutcomesAsync(ids[0], ["g1"], Ct))[0], OutcomeKind.Failed, 3, "boom");

        // A second crash while they are leased again counts again.
        var twice = await OpenAsync(CrashImage(recovered), now: At(20));
        Assert.Equal([4, 3, 3, 2, 2], (await LeaseAsync(twice, "g1", 100, At(20))).Deliveries.Select(d => d.Attempt));
    }

    [Fact(Timeout = 30_000)]
    public async Task The_log_is_deleted_behind_the_slowest_group()
    {
        var store = await OpenAsync("db", options: SmallSteps());
        await store.AddGroupPatternsAsync("fast", [">"], T0, Ct);
        await store.AddGroupPatternsAsync("slow", [">"], T0, Ct);
        await AppendAsync(store, 100, "fast", "slow");

        await DrainAsync(store, "fast", 100);
        await TrimAsync(store);
        Assert.Equal(100, await CountAsync(store, "events"));

        await DrainAsync(store, "slow", 40);
        await TrimAsync(store);
        Assert.Equal(60, await CountAsync(store, "events"));

        await DrainAsync(store, "slow", 100);
        await TrimAsync(store);
        Assert.Equal(0, await CountAsync(store, "events"));
        Assert.Equal(0, await CountAsync(store, "deliveries"));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_group_whose_workers_are_away_keeps_only_its_own_events_in_the_log()
    {
        var store = await OpenAsync("db", options: SmallSteps());
        await store.AddGroupPatternsAsync("online", ["on"], T0, Ct);
        await store.AddGroupPatternsAsync("away", ["off"], T0, Ct);
        for (var i = 0; i < 50; i++)
        {
            await store.AppendAsync([Event("on", "online"), Event("on", "online"), Event("off", "away")], T0, Ct);
        }

        await DrainAsync(store, "online", 100);
        await TrimAsync(store);
        Assert.Equal(50, await CountAsync(store, "events"));

        // Once the group is back and drained, its events go too; acked events stay acked after a restart.
        await DrainAsync(store, "away", 50);
        await TrimAsync(store);
        Assert.Equal(0, await CountAsync(store, "events"));
        var reopened = await ReopenAsync(store, "db", SmallSteps());
        Assert.All(await reopened.GetGroupStatsAsync(At(100), Ct), s => Assert.Equal(0, s.Backlog));
        Assert.Empty((await LeaseAsync(reopened, "away", 100, At(100))).Deliveries);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_group_created_later_never_sees_older_events_also_after_a_restart()
    {
        var store = await OpenAsync("db");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var older = await AppendAsync(store, 5, "g1");
        await store.AddGroupPatternsAsync("g2", [">"], At(1), Ct);
        var newer = await AppendAsync(store, 3, "g1", "g2");

        Assert.Equal(newer, (await LeaseAsync(store, "g2", 100, At(2))).Deliveries.Select(d => d.EventId));
        Assert.Equal(3, (await StatsAsync(store, "g2")).Backlog);

        var reopened = await ReopenAsync(store, "db");
        Assert.Equal(3, (await StatsAsync(reopened, "g2")).Backlog);
        Assert.Equal(newer, (await LeaseAsync(reopened, "g2", 100, At(60))).Deliveries.Select(d => d.EventId));
        Assert.Equal([.. older, .. newer], (await LeaseAsync(reopened, "g1", 100, At(60))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_group_recreated_under_the_same_name_starts_empty_also_after_a_restart()
    {
        var store = await OpenAsync("db");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        await AppendAsync(store, 5, "g1");
        Assert.Equal(2, (await LeaseAsync(store, "g1", 2, At(1))).Deliveries.Count);
        Assert.True(await store.DeleteGroupAsync("g1", Ct));
        await store.AddGroupPatternsAsync("g1", [">"], At(2), Ct);
        Assert.Empty((await LeaseAsync(store, "g1", 100, At(2))).Deliveries);

        var reopened = await ReopenAsync(store, "db");
        Assert.Equal(0, (await StatsAsync(reopened, "g1")).Backlog);
        Assert.Empty((await LeaseAsync(reopened, "g1", 100, At(60))).Deliveries);
        var fresh = await AppendAsync(reopened, 1, "g1");
        Assert.Equal(fresh, (await LeaseAsync(reopened, "g1", 100, At(60))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_lease_held_long_moves_to_a_row_so_the_log_behind_it_can_go()
    {
        var options = SmallSteps();
        options.MaxLeaseFloorLag = 10;
        var store = await OpenAsync("db", options: options);
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var first = Assert.Single((await LeaseAsync(store, "g1", 1, At(1), leaseFor: 1000, append: 1)).Deliveries);
        await AppendAsync(store, 60, "g1");
        await DrainAsync(store, "g1", 60, now: At(2));
        await TrimAsync(store);

        // The held lease did not keep the log: its delivery has a row of its own, still leased.
        Assert.Equal(0, await CountAsync(store, "events"));
        Assert.Equal(1, await CountAsync(store, "deliveries"));
        var stats = await StatsAsync(store, "g1");
        Assert.Equal(1, stats.Backlog);
        Assert.Equal(1, stats.InFlight);

        // A crash returns it with its attempt counted; otherwise it is acked as any lease.
        var recovered = await OpenAsync(CrashImage(store), now: At(3));
        var again = Assert.Single((await LeaseAsync(recovered, "g1", 10, At(3))).Deliveries);
        Assert.Equal((first.EventId, 2), (again.EventId, again.Attempt));
        Assert.Equal(SettleStatus.Confirmed, Assert.Single(await store.SettleAsync("g1", [Ack(first)], At(4), Ct)).Status);
        Assert.Equal(OutcomeKind.Handled, (await store.GetOutcomesAsync(first.EventId, ["g1"], Ct))[0]!.Kind);
        Assert.Equal(0, await CountAsync(store, "deliveries"));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_lease_passing_over_many_events_it_cannot_take_stops_early_and_wakes_the_group()
    {
        var options = new SqliteStoreOptions { MaxRowsPerLease = 5 };
        var listener = new RecordingListener();
        var store = await OpenAsync("db", listener, options);
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        await store.AppendAsync([.. Enumerable.Range(0, 12).Select(_ => Event("b.x", "g1")), Event("a.x", "g1")], T0, Ct);
        listener.Clear();

        var leased = new List<LeasedEvent>();
        var calls = 0;
        while (leased.Count == 0 && calls++ < 10)
        {
            leased.AddRange((await store.LeaseAsync(new LeaseRequest("g1", "w", new PrefixFilter("a."), 10, At(1), At(31)), Ct)).Deliveries);
        }

        Assert.Equal(3, calls);
        Assert.Contains("g1", listener.Available);
        Assert.Equal("a.x", Assert.Single(leased).Label);

        // The events passed over wait in rows for a worker that takes them, in order.
        var others = (await LeaseAsync(store, "g1", 100, At(2))).Deliveries;
        Assert.Equal(12, others.Count);
        Assert.All(others, d => Assert.Equal(1, d.Attempt));
        Assert.Equal(others.Select(d => d.EventId).Order(), others.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_failed_batch_keeps_the_leases_committed_before_it()
    {
        var listener = new RecordingListener();
        var store = await OpenAsync("db", listener);
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        await AppendAsync(store, 4, "g1");
        var leases = (await LeaseAsync(store, "g1", 3, At(1))).Deliveries;

        // A batch whose lease throws (its worker's filter fails) is rolled back whole; then each operation runs again
        // alone, so the extend queued with it is committed and only the lease fails.
        listener.BlockNextEventsAvailable();
        var blocker = store.AppendAsync([Event("x", "g1")], T0, Ct).AsTask();
        await listener.Blocked.WaitAsync(Ct);
        var failing = store.LeaseAsync(new LeaseRequest("g1", "w2", new ThrowingFilter(), 10, At(2), At(32)), Ct).AsTask();
        var extend = store.SettleAsync("g1", [new SettleItem(Ref(leases[0]), SettleKind.Extend, At(500), null, 5)], At(2), Ct).AsTask();
        while (store.QueuedOperations < 2)
        {
            await Task.Delay(5, Ct);
        }

        listener.Release();
        await blocker;
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing);
        Assert.Equal(SettleStatus.Confirmed, Assert.Single(await extend).Status);

        // The committed leases hold: not redelivered, still acked, the extended one past its first end.
        var stats = await StatsAsync(store, "g1");
        Assert.Equal((5, 3), (stats.Backlog, stats.InFlight));
        var next = (await LeaseAsync(store, "g1", 100, At(3))).Deliveries;
        Assert.Equal(2, next.Count);
        Assert.DoesNotContain(next, d => leases.Any(l => l.EventId == d.EventId));
        Assert.All(await store.SettleAsync("g1", [.. leases.Skip(1).Select(Ack)], At(4), Ct), r => Assert.Equal(SettleStatus.Confirmed, r.Status));
        Assert.Equal(SettleStatus.Confirmed, Assert.Single(await store.SettleAsync("g1", [Ack(leases[0])], At(35), Ct)).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_version_1_database_is_migrated_with_every_delivery_dead_letter_and_key()
    {
        var folder = Path.Combine(_root, "v1");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "hookbroker.db");
        await using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = V1Database;
            await command.ExecuteNonQueryAsync(Ct);
        }

        var listener = new RecordingListener();
        var store = new SqliteHookStore(new SqliteStoreOptions { DataPath = folder });
        _stores.Add(store);
        await store.InitializeAsync(listener, At(100), Ct);

        var groups = (await store.GetGroupStatsAsync(At(100), Ct)).ToDictionary(s => s.Name);
        Assert.Equal((3L, 0L, 1L), (groups["g1"].Backlog, groups["g1"].InFlight, groups["g1"].DeadLetters));
        Assert.Equal(T0.AddSeconds(-20), groups["g1"].OldestUnackedRaisedAt);
        Assert.Equal(1, groups["g2"].Backlog);

        // The pending one, the one leased by the old process (back at once, attempt kept), the delayed one at its time.
        var leased = (await LeaseAsync(store, "g1", 100, At(100))).Deliveries;
        Assert.Equal([(1L, 1), (2L, 3)], leased.Select(d => (d.EventId, d.Attempt)));
        Assert.Equal("a.one", leased[0].Label);
        Assert.Equal([1, 2, 3], leased[0].Payload.ToArray());
        Assert.Equal("K", leased[1].OrderingKey);
        Assert.True(leased[0].LeaseNo >= 50);
        AssertOutcome((await store.GetOutcomesAsync(3, ["g1"], Ct))[0], OutcomeKind.Failed, 1, "boom");
        Assert.Equal(3L, Assert.Single((await LeaseAsync(store, "g1", 100, At(200))).Deliveries).EventId);
        Assert.Equal(1L, Assert.Single((await LeaseAsync(store, "g2", 100, At(200))).Deliveries).EventId);

        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal((4L, "poison", DeadLetterReasons.Rejected, "a.four"), (dead.EventId, dead.LastError, dead.Reason, dead.Label));
        Assert.Equal(1, await store.RedriveAsync("g1", null, At(300), At(5000), Ct));

        var duplicate = Assert.Single(await store.AppendAsync([Event("a.one", "g1", key: "idem")], At(300), Ct));
        Assert.Equal((AppendStatus.Duplicate, 1L), (duplicate.Status, duplicate.EventId));
        var stored = Assert.Single(await store.AppendAsync([Event("a.new", "g1")], At(300), Ct));
        Assert.Equal(10L, stored.EventId);
        Assert.Equal([4L, 10L], (await LeaseAsync(store, "g1", 100, At(300))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_version_2_database_keeps_its_marks_when_migrated()
    {
        var store = await OpenAsync("v2");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var ids = await AppendAsync(store, 10, "g1");
        var leases = (await LeaseAsync(store, "g1", 10, At(1))).Deliveries;
        Assert.All(await store.SettleAsync("g1", [.. leases.Skip(1).Select(Ack)], At(2), Ct), r => Assert.Equal(SettleStatus.Confirmed, r.Status));
        await store.DisposeAsync();

        // Back to the version 2 layout: the same marks, WITHOUT ROWID.
        var path = Path.Combine(_folders[store], "hookbroker.db");
        await using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = """
                ALTER TABLE group_marks RENAME TO group_marks_v3;
                CREATE TABLE group_marks(group_id INTEGER NOT NULL, block INTEGER NOT NULL, done BLOB NOT NULL, delivered BLOB NOT NULL,
                    PRIMARY KEY(group_id, block)) WITHOUT ROWID;
                INSERT INTO group_marks SELECT group_id, block, done, delivered FROM group_marks_v3;
                DROP TABLE group_marks_v3;
                """ + KeysAsVersion3 + "PRAGMA user_version = 2;";
            await command.ExecuteNonQueryAsync(Ct);
        }

        var migrated = await OpenAsync("v2", now: At(5));
        Assert.Equal(1, (await StatsAsync(migrated, "g1")).Backlog);
        Assert.Equal(OutcomeKind.Handled, (await migrated.GetOutcomesAsync(ids[5], ["g1"], Ct))[0]!.Kind);
        var again = Assert.Single((await LeaseAsync(migrated, "g1", 100, At(5))).Deliveries);
        Assert.Equal((ids[0], 2), (again.EventId, again.Attempt));
        Assert.Equal(SettleStatus.Confirmed, Assert.Single(await migrated.SettleAsync("g1", [Ack(again)], At(6), Ct)).Status);
        Assert.Equal(0, (await StatsAsync(migrated, "g1")).Backlog);
        Assert.Equal(4L, await ScalarAsync(migrated, "PRAGMA user_version"));
        Assert.Equal(0L, await ScalarAsync(migrated, "SELECT count(*) FROM sqlite_schema WHERE name = 'group_marks' AND sql LIKE '%WITHOUT ROWID%'"));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_version_3_database_keeps_its_idempotency_keys_when_migrated()
    {
        // The SDK's form (32 lowercase hex digits) is stored as its 16 bytes; the same digits in upper case, or any other
        // key, as text: three keys, three events, before and after the migration.
        const string sdkKey = "0192f3a4b5c6d7e8f90123456789abcd";
        var keys = new[] { sdkKey, sdkKey.ToUpperInvariant(), "order-42" };
        var store = await OpenAsync("v3");
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        var first = new List<long>();
        foreach (var key in keys)
        {
            var stored = Assert.Single(await store.AppendAsync([Event("a", "g1", key: key)], At(1), Ct));
            Assert.Equal(AppendStatus.Stored, stored.Status);
            first.Add(stored.EventId);
        }

        Assert.Equal(1L, await ScalarAsync(store, "SELECT count(*) FROM idempotency WHERE typeof(key) = 'blob' AND length(key) = 16"));
        Assert.Equal(first, await RepeatAsync(store, keys, At(2)));
        await store.DisposeAsync();

        var path = Path.Combine(_folders[store], "hookbroker.db");
        await using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var command = connection.CreateCommand();
            command.CommandText = KeysAsVersion3 + "PRAGMA user_version = 3;";
            await command.ExecuteNonQueryAsync(Ct);
        }

        var migrated = await OpenAsync("v3", now: At(3));
        Assert.Equal(4L, await ScalarAsync(migrated, "PRAGMA user_version"));
        Assert.Equal(1L, await ScalarAsync(migrated, "SELECT count(*) FROM idempotency WHERE typeof(key) = 'blob' AND length(key) = 16"));
        Assert.Equal(first, await RepeatAsync(migrated, keys, At(4)));
        var fresh = Assert.Single(await migrated.AppendAsync([Event("a", "g1", key: "0192f3a4b5c6d7e8f90123456789abce")], At(4), Ct));
        Assert.Equal(AppendStatus.Stored, fresh.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_batch_of_acks_writes_one_page_of_marks()
    {
        // The block row is overwritten in place: no overflow page, no freelist or header page written with it.
        var store = await OpenAsync("pages", options: new SqliteStoreOptions { CheckpointEveryChanges = int.MaxValue });
        await store.AddGroupPatternsAsync("g1", [">"], T0, Ct);
        await AppendAsync(store, 40, "g1");
        var leases = (await LeaseAsync(store, "g1", 40, At(1))).Deliveries;
        Assert.All(await store.SettleAsync("g1", [Ack(leases[0])], At(2), Ct), r => Assert.Equal(SettleStatus.Confirmed, r.Status));

        var wal = Path.Combine(_folders[store], "hookbroker.db-wal");
        var before = new FileInfo(wal).Length;
        for (var i = 1; i < 11; i++)
        {
            Assert.All(await store.SettleAsync("g1", [Ack(leases[i])], At(2), Ct), r => Assert.Equal(SettleStatus.Confirmed, r.Status));
        }

        // A log frame is a 24-byte header and a page; checkpoints wait for 2^31 changes, so the log only grows. Version 2
        // wrote 3 pages per block row (30 here); a few counter rows may come along.
        var frames = (new FileInfo(wal).Length - before) / (24 + 4096);
        Assert.InRange(frames, 10, 15);
    }

    // The version 1 layout with: g1 pending 1, leased 2 (attempt 2, key K), delayed 3 (attempt 1, "boom", due at
    // 150 s), dead letter 4; g2 pending 1; key "idem" for event 1; next event id 10, next lease number 50.
    private static readonly string V1Database = $"""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta(key, value) VALUES ('next_event_id', 10), ('next_lease_no', 50);
        CREATE TABLE groups(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, patterns TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE events(id INTEGER PRIMARY KEY, label TEXT NOT NULL, payload BLOB NOT NULL, ordering_key TEXT, source TEXT, raised_at INTEGER NOT NULL, refs INTEGER NOT NULL);
        CREATE TABLE deliveries(group_id INTEGER NOT NULL, event_id INTEGER NOT NULL, state INTEGER NOT NULL, sched INTEGER NOT NULL, lease_no INTEGER NOT NULL,
            attempt INTEGER NOT NULL, last_error TEXT, retain_until INTEGER NOT NULL, ordering_key TEXT, PRIMARY KEY(group_id, event_id)) WITHOUT ROWID;
        CREATE INDEX deliveries_sched ON deliveries(group_id, state, sched, event_id);
        CREATE INDEX deliveries_retain ON deliveries(retain_until);
        CREATE INDEX deliveries_okey ON deliveries(group_id, ordering_key, event_id) WHERE ordering_key IS NOT NULL;
        CREATE TABLE dead_letters(group_id INTEGER NOT NULL, event_id INTEGER NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, reason TEXT NOT NULL,
            dead_at INTEGER NOT NULL, PRIMARY KEY(group_id, event_id)) WITHOUT ROWID;
        CREATE TABLE idempotency(key TEXT PRIMARY KEY, event_id INTEGER NOT NULL, groups TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX idempotency_expiry ON idempotency(expires_at);
        INSERT INTO groups(id, name, patterns, created_at) VALUES (1, 'g1', '>', 0), (2, 'g2', '>', 0);
        INSERT INTO events VALUES (1, 'a.one', x'010203', NULL, 'src', {T0.AddSeconds(-20).UtcTicks}, 2), (2, 'a.two', x'02', 'K', NULL, {T0.UtcTicks}, 1),
            (3, 'a.three', x'03', NULL, NULL, {T0.UtcTicks}, 1), (4, 'a.four', x'04', NULL, NULL, {T0.UtcTicks}, 1);
        INSERT INTO deliveries VALUES (1, 1, 0, 0, 0, 0, NULL, {At(86_400).UtcTicks}, NULL), (1, 2, 1, {At(130).UtcTicks}, 40, 2, NULL, {At(86_400).UtcTicks}, 'K'),
            (1, 3, 2, {At(150).UtcTicks}, 0, 1, 'boom', {At(86_400).UtcTicks}, NULL), (2, 1, 0, 0, 0, 0, NULL, {At(86_400).UtcTicks}, NULL);
        INSERT INTO dead_letters VALUES (1, 4, 1, 'poison', 'rejected', {At(50).UtcTicks});
        INSERT INTO idempotency VALUES ('idem', 1, 'g1' || char(10) || 'g2', {At(600).UtcTicks});
        PRAGMA user_version = 1;
        """;

    // Turns the idempotency table back into its version 3 form: key order, keys as text, an index by expiry.
    private const string KeysAsVersion3 = """
        ALTER TABLE idempotency RENAME TO idempotency_v4;
        DROP INDEX idempotency_key;
        CREATE TABLE idempotency(key TEXT PRIMARY KEY, event_id INTEGER NOT NULL, groups TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX idempotency_expiry ON idempotency(expires_at);
        INSERT INTO idempotency SELECT CASE typeof(key) WHEN 'blob' THEN lower(hex(key)) ELSE key END, event_id, groups, expires_at FROM idempotency_v4;
        DROP TABLE idempotency_v4;

        """;

    /// <summary>Raises each key again; returns the event ids the repeats were answered with (all duplicates).</summary>
    private static async Task<List<long>> RepeatAsync(SqliteHookStore store, IEnumerable<string> keys, DateTimeOffset now)
    {
        var ids = new List<long>();
        foreach (var key in keys)
        {
            var repeat = Assert.Single(await store.AppendAsync([Event("b", "g1", key: key)], now, Ct));
            Assert.Equal(AppendStatus.Duplicate, repeat.Status);
            ids.Add(repeat.EventId);
        }

        return ids;
    }

    private async Task<SqliteHookStore> OpenAsync(string folder, IHookStoreListener? listener = null, SqliteStoreOptions? options = null, DateTimeOffset? now = null)
    {
        options ??= new SqliteStoreOptions();
        options.DataPath = Path.Combine(_root, folder);
        var store = new SqliteHookStore(options);
        _stores.Add(store);
        _folders[store] = options.DataPath;
        await store.InitializeAsync(listener ?? new RecordingListener(), now ?? T0, Ct);
        return store;
    }

    private async Task<SqliteHookStore> ReopenAsync(SqliteHookStore store, string folder, SqliteStoreOptions? options = null)
    {
        await store.DisposeAsync();
        return await OpenAsync(folder, options: options, now: At(50));
    }

    /// <summary>
    /// What a SIGKILL leaves on disk: the database file and its WAL as they are now, the process still running
    /// (synchronous=NORMAL writes every commit into the WAL before confirming it). Returns the copy's folder name.
    /// </summary>
    private string CrashImage(SqliteHookStore store)
    {
        var crashed = $"crashed-{Guid.NewGuid():N}";
        Directory.CreateDirectory(Path.Combine(_root, crashed));
        foreach (var file in Directory.GetFiles(_folders[store], "hookbroker.db*"))
        {
            if (!file.EndsWith("-shm", StringComparison.Ordinal))
            {
                File.Copy(file, Path.Combine(_root, crashed, Path.GetFileName(file)));
            }
        }

        return crashed;
    }

    private static SqliteStoreOptions SmallSteps() => new() { TrimEveryEvents = 1, MaxTrimRows = 1000, LaggardDistance = 20 };

    private async Task<long> CountAsync(SqliteHookStore store, string table)
    {
        // Opened the way the store opens its own (SqliteSchema.DataSource: the unix-excl VFS, the log's index in memory):
        // a connection through the default VFS would keep that index in a -shm file the store's connections never read.
        var path = SqliteSchema.DataSource(Path.Combine(_folders[store], "hookbroker.db"));
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ConnectionString);
        await connection.OpenAsync(Ct);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {table}";
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task TrimAsync(SqliteHookStore store)
    {
        // Housekeeping asks for a step of the log's deletion after its batch; a few passes finish it.
        for (var i = 0; i < 5; i++)
        {
            await store.ExpireAsync(T0, new FixedPolicies(5), 1000, Ct);
        }
    }

    private static async Task DrainAsync(SqliteHookStore store, string group, int max, DateTimeOffset? now = null)
    {
        var done = 0;
        while (done < max)
        {
            var batch = (await LeaseAsync(store, group, Math.Min(7, max - done), now ?? At(1))).Deliveries;
            if (batch.Count == 0)
            {
                break;
            }

            Assert.All(await store.SettleAsync(group, [.. batch.Select(Ack)], now ?? At(1), Ct), r => Assert.Equal(SettleStatus.Confirmed, r.Status));
            done += batch.Count;
        }
    }

    private static async Task<long[]> AppendAsync(SqliteHookStore store, int count, params string[] groups)
    {
        var results = await store.AppendAsync([.. Enumerable.Range(0, count).Select(i => Event($"e.{i}", groups))], T0, Ct);
        Assert.All(results, r => Assert.Equal(AppendStatus.Stored, r.Status));
        return [.. results.Select(r => r.EventId)];
    }

    private static async Task<LeaseBatch> LeaseAsync(SqliteHookStore store, string group, int max, DateTimeOffset now, int leaseFor = 30, int append = 0)
    {
        if (append > 0)
        {
            await AppendAsync(store, append, group);
        }

        return await store.LeaseAsync(new LeaseRequest(group, "w", new AllLabels(), max, now, now.AddSeconds(leaseFor)), Ct);
    }

    private static DateTimeOffset At(double seconds) => T0.AddSeconds(seconds);

    private static NewEvent Event(string label, string group, string? key = null) => Event(label, [group], key);

    private static NewEvent Event(string label, string[] groups, string? key = null) =>
        new(label, "{}"u8.ToArray(), null, key, At(600), null, T0, [.. groups.Select(g => new RoutedGroup(g, At(86_400), long.MaxValue))]);

    private static LeaseRef Ref(LeasedEvent lease) => new(lease.EventId, lease.LeaseNo);

    private static SettleItem Ack(LeasedEvent lease) => new(Ref(lease), SettleKind.Ack, default, null, 5);

    private async Task<long> ScalarAsync(SqliteHookStore store, string sql)
    {
        // Opened the way the store opens its own (SqliteSchema.DataSource: the unix-excl VFS, the log's index in memory):
        // a connection through the default VFS would keep that index in a -shm file the store's connections never read.
        var path = SqliteSchema.DataSource(Path.Combine(_folders[store], "hookbroker.db"));
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ConnectionString);
        await connection.OpenAsync(Ct);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task<GroupStats> StatsAsync(SqliteHookStore store, string group) =>
        (await store.GetGroupStatsAsync(T0, Ct)).Single(s => s.Name == group);

    private static void AssertOutcome(OutcomeNotice? outcome, OutcomeKind kind, int attempt, string? error)
    {
        Assert.NotNull(outcome);
        Assert.Equal((kind, attempt, error), (outcome.Kind, outcome.Attempt, outcome.Error));
    }

    private sealed class AllLabels : ILabelFilter
    {
        public bool Matches(string label) => true;
    }

    private sealed class PrefixFilter(string prefix) : ILabelFilter
    {
        public bool Matches(string label) => label.StartsWith(prefix, StringComparison.Ordinal);
    }

    private sealed class ThrowingFilter : ILabelFilter
    {
        public bool Matches(string label) => throw new InvalidOperationException("filter failed");
    }

    private sealed class FixedPolicies(int maxAttempts) : IGroupPolicies
    {
        public int MaxAttempts(string group) => maxAttempts;
    }

    /// <summary>Records what the engine reports; its next OnEventsAvailable can hold the writer loop until released.</summary>
    private sealed class RecordingListener : IHookStoreListener
    {
        private readonly ManualResetEventSlim _gate = new(initialState: true);
        private readonly ConcurrentQueue<string> _available = new();
        private TaskCompletionSource _blocked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _blockNext;

        public Task Blocked => _blocked.Task;

        public IReadOnlyCollection<string> Available => [.. _available];

        public void Clear() => _available.Clear();

        public void BlockNextEventsAvailable()
        {
            _blocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _gate.Reset();
            Volatile.Write(ref _blockNext, 1);
        }

        public void Release() => _gate.Set();

        public void OnEventsAvailable(IReadOnlyCollection<string> groups)
        {
            foreach (var group in groups)
            {
                _available.Enqueue(group);
            }

            if (Interlocked.Exchange(ref _blockNext, 0) == 1)
            {
                _blocked.TrySetResult();
                _gate.Wait(TimeSpan.FromSeconds(20));
            }
        }

        public void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes)
        {
        }

        public void OnGroupsChanged()
        {
        }
    }
}
