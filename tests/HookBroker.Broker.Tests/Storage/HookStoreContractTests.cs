using System.Collections.Concurrent;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Tests.Storage;

/// <summary>
/// The one contract every <see cref="IHookStore"/> engine passes. Times are fixed absolute instants (no clock):
/// <see cref="T0"/> plus seconds. Each engine adds a subclass that creates a fresh store per name.
/// </summary>
public abstract class HookStoreContractTests : IAsyncDisposable
{
    protected static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private const long NoLimit = long.MaxValue;
    private readonly List<IHookStore> _stores = [];
    private readonly Dictionary<IHookStore, string> _names = [];
    private readonly List<string> _created = [];

    /// <summary>A new, empty, not yet initialized store. <paramref name="name"/> is fresh per call (a file-system-safe token).</summary>
    protected abstract ValueTask<IHookStore> CreateStoreAsync(string name);

    /// <summary>True for engines whose state survives dispose and reopen.</summary>
    protected virtual bool SurvivesRestart => false;

    /// <summary>Opens again (not initialized) the store created under <paramref name="name"/> after it was disposed.</summary>
    protected virtual ValueTask<IHookStore> ReopenStoreAsync(string name) =>
        throw new NotSupportedException("This engine does not persist.");

    /// <summary>Cleans up what <see cref="CreateStoreAsync"/> made under <paramref name="name"/> (after every store is disposed).</summary>
    protected virtual ValueTask DeleteStoreAsync(string name) => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        foreach (var name in _created)
        {
            await DeleteStoreAsync(name);
        }

        GC.SuppressFinalize(this);
    }

    protected static DateTimeOffset At(double seconds) => T0.AddSeconds(seconds);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ---------------------------------------------------------------- groups

    [Fact(Timeout = 30_000)]
    public async Task AddGroupPatterns_creates_the_group_and_unions_patterns_without_duplicates()
    {
        var (store, _) = await OpenAsync();

        var created = await store.AddGroupPatternsAsync("g1", ["user.*", "billing.>"], At(0), Ct);
        Assert.Equal("g1", created.Name);
        AssertSameSet(["user.*", "billing.>"], created.Patterns);

        var unioned = await store.AddGroupPatternsAsync("g1", ["user.*", "order.created"], At(1), Ct);
        Assert.Equal("g1", unioned.Name);
        AssertSameSet(["user.*", "billing.>", "order.created"], unioned.Patterns);

        var listed = Assert.Single(await store.ListGroupsAsync(Ct));
        AssertSameSet(["user.*", "billing.>", "order.created"], listed.Patterns);
    }

    [Fact(Timeout = 30_000)]
    public async Task ListGroups_returns_every_group_with_its_patterns()
    {
        var (store, _) = await OpenAsync();
        Assert.Empty(await store.ListGroupsAsync(Ct));

        await store.AddGroupPatternsAsync("a", ["x.one"], At(0), Ct);
        await store.AddGroupPatternsAsync("b", ["y.*", "z.>"], At(0), Ct);

        var groups = (await store.ListGroupsAsync(Ct)).ToDictionary(g => g.Name);
        Assert.Equal(2, groups.Count);
        AssertSameSet(["x.one"], groups["a"].Patterns);
        AssertSameSet(["y.*", "z.>"], groups["b"].Patterns);
    }

    [Fact(Timeout = 30_000)]
    public async Task RemoveGroupPatterns_removes_patterns_and_returns_null_for_a_missing_group()
    {
        var (store, _) = await OpenAsync();
        await store.AddGroupPatternsAsync("g1", ["a", "b", "c"], At(0), Ct);

        var after = await store.RemoveGroupPatternsAsync("g1", ["b", "not-there"], Ct);
        Assert.NotNull(after);
        AssertSameSet(["a", "c"], after.Patterns);
        AssertSameSet(["a", "c"], Assert.Single(await store.ListGroupsAsync(Ct)).Patterns);

        Assert.Null(await store.RemoveGroupPatternsAsync("missing", ["a"], Ct));
    }

    [Fact(Timeout = 30_000)]
    public async Task DeleteGroup_removes_backlog_and_dead_letters_and_is_false_when_missing()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        var dead = await AppendOneAsync(store, Event("user.created", ["g1", "g2"]));
        await AppendOneAsync(store, Event("user.created", ["g1", "g2"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", max: 1)).Deliveries);
        Assert.Equal(dead, lease.EventId);
        await SettleOneAsync(store, "g1", Reject(lease, "poison"));

        Assert.True(await store.DeleteGroupAsync("g1", Ct));
        Assert.False(await store.DeleteGroupAsync("g1", Ct));
        Assert.False(await store.DeleteGroupAsync("never", Ct));

        Assert.Equal(["g2"], (await store.ListGroupsAsync(Ct)).Select(g => g.Name));
        Assert.Null(await store.ListDeadLettersAsync("g1", 0, 10, Ct));
        Assert.Empty((await LeaseAsync(store, "g1")).Deliveries);

        // A group of the same name starts empty.
        await AddGroupAsync(store, "g1");
        Assert.Empty((await LeaseAsync(store, "g1")).Deliveries);
        Assert.Empty((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        var stats = await StatsAsync(store, "g1");
        Assert.Equal(0, stats.Backlog);
        Assert.Equal(0, stats.DeadLetters);

        // The other group is untouched.
        Assert.Equal(2, (await LeaseAsync(store, "g2")).Deliveries.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task Group_changes_are_reported_to_the_listener()
    {
        var (store, listener) = await OpenAsync();

        await store.AddGroupPatternsAsync("g1", ["a"], At(0), Ct);
        Assert.Equal(1, listener.GroupsChanged);

        await store.AddGroupPatternsAsync("g1", ["b"], At(0), Ct);
        Assert.Equal(2, listener.GroupsChanged);

        await store.RemoveGroupPatternsAsync("g1", ["a"], Ct);
        Assert.Equal(3, listener.GroupsChanged);

        Assert.True(await store.DeleteGroupAsync("g1", Ct));
        Assert.Equal(4, listener.GroupsChanged);
    }

    // ---------------------------------------------------------------- append

    [Fact(Timeout = 30_000)]
    public async Task Append_assigns_positive_strictly_increasing_ids_across_calls()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");

        var first = await store.AppendAsync([Event("a", ["g1"]), Event("b", ["g1"]), Event("c", ["g1"])], At(0), Ct);
        var second = await store.AppendAsync([Event("d", ["g1"])], At(1), Ct);

        var ids = first.Concat(second).Select(r =>
        {
            Assert.Equal(AppendStatus.Stored, r.Status);
            Assert.Equal(["g1"], r.Groups);
            return r.EventId;
        }).ToList();
        Assert.True(ids[0] > 0);
        for (var i = 1; i < ids.Count; i++)
        {
            Assert.True(ids[i] > ids[i - 1], $"id {ids[i]} follows {ids[i - 1]}");
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Append_creates_one_delivery_per_routed_group_and_notifies_the_listener()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        await AddGroupAsync(store, "g3");

        var results = await store.AppendAsync([Event("a", ["g1", "g2"]), Event("b", ["g2"])], At(0), Ct);
        Assert.All(results, r => Assert.Equal(AppendStatus.Stored, r.Status));
        AssertSameSet(["g1", "g2"], results[0].Groups);
        AssertSameSet(["g2"], results[1].Groups);

        Assert.Equal([results[0].EventId], (await LeaseAsync(store, "g1")).Deliveries.Select(d => d.EventId));
        Assert.Equal([results[0].EventId, results[1].EventId], (await LeaseAsync(store, "g2")).Deliveries.Select(d => d.EventId));
        Assert.Empty((await LeaseAsync(store, "g3")).Deliveries);

        var notified = listener.EventsAvailable.SelectMany(g => g).ToHashSet();
        Assert.Contains("g1", notified);
        Assert.Contains("g2", notified);
        Assert.DoesNotContain("g3", notified);
    }

    [Fact(Timeout = 30_000)]
    public async Task Append_routed_to_a_missing_group_still_stores_for_the_existing_ones()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");

        var result = Assert.Single(await store.AppendAsync([Event("a", ["g1", "ghost"])], At(0), Ct));
        Assert.Equal(AppendStatus.Stored, result.Status);
        Assert.Contains("g1", result.Groups);

        Assert.Equal([result.EventId], (await LeaseAsync(store, "g1")).Deliveries.Select(d => d.EventId));
        Assert.Equal(["g1"], (await store.ListGroupsAsync(Ct)).Select(g => g.Name));
    }

    [Fact(Timeout = 30_000)]
    public async Task Idempotency_key_inside_its_window_returns_the_first_event_and_stores_nothing()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");

        var first = await AppendOneAsync(store, Event("a", ["g1", "g2"], idempotencyKey: "k1", idempotencyUntil: At(600), payload: [1]));
        listener.Clear();

        // Same key, other args and other routing, one second before the window closes.
        var repeat = Assert.Single(await store.AppendAsync([Event("b", ["g2"], idempotencyKey: "k1", idempotencyUntil: At(700), payload: [2])], At(599), Ct));
        Assert.Equal(AppendStatus.Duplicate, repeat.Status);
        Assert.Equal(first, repeat.EventId);
        AssertSameSet(["g1", "g2"], repeat.Groups);

        Assert.Equal(1, (await StatsAsync(store, "g1")).Backlog);
        Assert.Equal(1, (await StatsAsync(store, "g2")).Backlog);
        var leased = Assert.Single((await LeaseAsync(store, "g2", now: At(599))).Deliveries);
        Assert.Equal(first, leased.EventId);
        Assert.Equal([1], leased.Payload.ToArray());
    }

    [Fact(Timeout = 30_000)]
    public async Task Idempotency_key_repeated_inside_one_batch_is_a_duplicate_of_its_first_occurrence()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");

        var results = await store.AppendAsync(
            [
                Event("a", ["g1"], idempotencyKey: "k1"),
                Event("b", ["g1"], idempotencyKey: "k2"),
                Event("c", ["g1"], idempotencyKey: "k1"),
            ],
            At(0),
            Ct);

        Assert.Equal(AppendStatus.Stored, results[0].Status);
        Assert.Equal(AppendStatus.Stored, results[1].Status);
        Assert.Equal(AppendStatus.Duplicate, results[2].Status);
        Assert.Equal(results[0].EventId, results[2].EventId);
        Assert.Equal(["g1"], results[2].Groups);
        Assert.Equal(2, (await StatsAsync(store, "g1")).Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task Idempotency_key_repeated_while_the_backlog_is_full_is_a_duplicate_not_a_refusal()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");

        var first = await AppendOneAsync(store, Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(600), maxBacklog: 1));

        // The backlog is at its limit: a retry of the stored raise is still answered with the first event (it would store
        // nothing), while a new event is refused.
        var results = await store.AppendAsync(
            [
                Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(600), maxBacklog: 1),
                Event("b", ["g1"], idempotencyKey: "k2", idempotencyUntil: At(600), maxBacklog: 1),
            ],
            At(1),
            Ct);

        Assert.Equal(AppendStatus.Duplicate, results[0].Status);
        Assert.Equal(first, results[0].EventId);
        Assert.Equal(AppendStatus.BacklogFull, results[1].Status);

        // The refused key was not kept: once there is room, the same key stores its event.
        var leased = Assert.Single((await LeaseAsync(store, "g1", now: At(2))).Deliveries);
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Ack(leased), At(3))).Status);
        var retried = Assert.Single(await store.AppendAsync([Event("b", ["g1"], idempotencyKey: "k2", idempotencyUntil: At(600), maxBacklog: 1)], At(4), Ct));
        Assert.Equal(AppendStatus.Stored, retried.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Idempotency_key_past_its_window_stores_a_new_event()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");

        var first = await AppendOneAsync(store, Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(600)));

        // now == IdempotencyUntil: the window is over, even before housekeeping forgot the key.
        var second = Assert.Single(await store.AppendAsync([Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(1200))], At(600), Ct));
        Assert.Equal(AppendStatus.Stored, second.Status);
        Assert.True(second.EventId > first);

        // The new occurrence opened a new window.
        var third = Assert.Single(await store.AppendAsync([Event("a", ["g1"], idempotencyKey: "k1")], At(601), Ct));
        Assert.Equal(AppendStatus.Duplicate, third.Status);
        Assert.Equal(second.EventId, third.EventId);
        Assert.Equal(2, (await StatsAsync(store, "g1")).Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task Backlog_limit_rejects_the_item_and_leaves_the_rest_of_the_batch_alone()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "small");
        await AddGroupAsync(store, "big");

        var results = await store.AppendAsync(
            [
                Event("a", ["big", "small"], maxBacklog: 2),
                Event("b", ["big", "small"], maxBacklog: 2),
                Event("c", ["big", "small"], maxBacklog: 2),
                Event("d", ["big"], maxBacklog: 2),
            ],
            At(0),
            Ct);

        Assert.Equal(AppendStatus.Stored, results[0].Status);
        Assert.Equal(AppendStatus.Stored, results[1].Status);
        Assert.Equal(AppendStatus.BacklogFull, results[2].Status);
        Assert.Equal(0, results[2].EventId);
        Assert.True(results[2].FullGroup is "big" or "small", $"full group {results[2].FullGroup}");

        // Nothing of the rejected item was stored, in any group.
        Assert.Equal(2, (await StatsAsync(store, "small")).Backlog);

        // "big" has 2 of its own limit too, so the last item is full as well; with a larger limit it goes in.
        Assert.Equal(AppendStatus.BacklogFull, results[3].Status);
        Assert.Equal("big", results[3].FullGroup);
        var later = Assert.Single(await store.AppendAsync([Event("d", ["big"], maxBacklog: 3)], At(1), Ct));
        Assert.Equal(AppendStatus.Stored, later.Status);
        Assert.Equal(3, (await StatsAsync(store, "big")).Backlog);
        Assert.Equal(2, (await StatsAsync(store, "small")).Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task Backlog_limit_counts_leased_deliveries_but_not_dead_letters()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AppendOneAsync(store, Event("a", ["g1"]));
        await AppendOneAsync(store, Event("b", ["g1"]));

        // Both leased: still in the backlog.
        var leased = (await LeaseAsync(store, "g1")).Deliveries;
        Assert.Equal(2, leased.Count);
        var full = Assert.Single(await store.AppendAsync([Event("c", ["g1"], maxBacklog: 2)], At(2), Ct));
        Assert.Equal(AppendStatus.BacklogFull, full.Status);
        Assert.Equal("g1", full.FullGroup);

        // One dead-lettered: room for one more.
        await SettleOneAsync(store, "g1", Reject(leased[0], "poison"), At(2));
        Assert.Equal(AppendStatus.Stored, Assert.Single(await store.AppendAsync([Event("c", ["g1"], maxBacklog: 2)], At(3), Ct)).Status);
        Assert.Equal(AppendStatus.BacklogFull, Assert.Single(await store.AppendAsync([Event("d", ["g1"], maxBacklog: 2)], At(3), Ct)).Status);
    }

    // ---------------------------------------------------------------- lease

    [Fact(Timeout = 30_000)]
    public async Task Lease_returns_oldest_first_up_to_max_and_never_leases_a_delivery_twice()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 5);

        var first = await LeaseAsync(store, "g1", max: 2);
        Assert.Equal(ids[..2], first.Deliveries.Select(d => d.EventId));
        var second = await LeaseAsync(store, "g1", max: 10);
        Assert.Equal(ids[2..], second.Deliveries.Select(d => d.EventId));
        Assert.Empty((await LeaseAsync(store, "g1", max: 10)).Deliveries);
        Assert.Empty((await LeaseAsync(store, "missing", max: 10)).Deliveries);
    }

    [Fact(Timeout = 30_000)]
    public async Task Lease_increments_the_attempt_sets_lease_fields_and_carries_the_event()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        byte[] payload = [0, 1, 2, 255, 0, 42];
        var id = await AppendOneAsync(store, Event("user.created", ["g1"], orderingKey: "u-1", source: "svc-a", raisedAt: At(-5), payload: payload));

        var batch = await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31));
        var d = Assert.Single(batch.Deliveries);
        Assert.Equal(id, d.EventId);
        Assert.Equal(1, d.Attempt);
        Assert.True(d.LeaseNo > 0);
        Assert.Equal(At(31), d.LeaseUntil);
        Assert.Equal("user.created", d.Label);
        Assert.Equal(payload, d.Payload.ToArray());
        Assert.Equal("u-1", d.OrderingKey);
        Assert.Equal("svc-a", d.Source);
        Assert.Equal(At(-5), d.RaisedAt);
        Assert.Null(batch.NextDueAt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Lease_only_returns_labels_the_filter_matches()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var user = await AppendOneAsync(store, Event("user.created", ["g1"]));
        var billing = await AppendOneAsync(store, Event("billing.paid", ["g1"]));
        var user2 = await AppendOneAsync(store, Event("user.deleted", ["g1"]));

        var users = await LeaseAsync(store, "g1", filter: new PrefixFilter("user."));
        Assert.Equal([user, user2], users.Deliveries.Select(d => d.EventId));

        var rest = await LeaseAsync(store, "g1", filter: new PrefixFilter("billing."));
        Assert.Equal([billing], rest.Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task Lease_skips_deliveries_not_yet_due_and_reports_the_next_due_time()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var a = await AppendOneAsync(store, Event("a", ["g1"]));
        var b = await AppendOneAsync(store, Event("b", ["g1"]));
        var leased = (await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries;
        await store.SettleAsync(
            "g1",
            [Nack(leased[0], retryAt: At(20), "boom"), Nack(leased[1], retryAt: At(10), "bang")],
            At(2),
            Ct);

        var early = await LeaseAsync(store, "g1", now: At(5));
        Assert.Empty(early.Deliveries);
        Assert.Equal(At(10), early.NextDueAt);

        var atTen = await LeaseAsync(store, "g1", now: At(10));
        var retried = Assert.Single(atTen.Deliveries);
        Assert.Equal(b, retried.EventId);
        Assert.Equal(2, retried.Attempt);
        Assert.Equal(At(20), atTen.NextDueAt);

        var atTwenty = await LeaseAsync(store, "g1", now: At(25));
        Assert.Equal([a], atTwenty.Deliveries.Select(d => d.EventId));
        Assert.Null(atTwenty.NextDueAt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Lease_numbers_strictly_increase_and_are_never_reused_across_redelivery_and_redrive()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var seen = new List<long>();

        var l1 = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        seen.Add(l1.LeaseNo);
        await SettleOneAsync(store, "g1", Nack(l1, retryAt: At(2), "x"), At(1));
        var l2 = Assert.Single((await LeaseAsync(store, "g1", now: At(2))).Deliveries);
        seen.Add(l2.LeaseNo);
        await store.ReleaseAsync("g1", [new ReleaseItem(Ref(l2), 5)], "worker left", At(3), Ct);
        var l3 = Assert.Single((await LeaseAsync(store, "g1", now: At(3))).Deliveries);
        seen.Add(l3.LeaseNo);
        await SettleOneAsync(store, "g1", Reject(l3, "poison"), At(4));
        Assert.Equal(1, await store.RedriveAsync("g1", [id], At(5), At(10_000), Ct));
        var l4 = Assert.Single((await LeaseAsync(store, "g1", now: At(5))).Deliveries);
        seen.Add(l4.LeaseNo);
        Assert.Equal(1, l4.Attempt);

        for (var i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i] > seen[i - 1], $"lease number {seen[i]} follows {seen[i - 1]}");
        }

        // Old lease numbers stay stale.
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(l1), At(6))).Status);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(l3), At(6))).Status);
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Ack(l4), At(6))).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Competing_lease_calls_never_get_the_same_delivery()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 500);

        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>();
            while (true)
            {
                var batch = await store.LeaseAsync(new LeaseRequest("g1", $"w{w}", AllLabels.Instance, 7, At(1), At(31)), Ct);
                if (batch.Deliveries.Count == 0)
                {
                    return mine;
                }

                mine.AddRange(batch.Deliveries.Select(d => d.EventId));
            }
        }, Ct)).ToList();

        var all = (await Task.WhenAll(workers)).SelectMany(x => x).ToList();
        Assert.Equal(ids.Length, all.Count);
        Assert.Equal(ids.Order(), all.Order());
    }

    [Fact(Timeout = 30_000)]
    public async Task Lease_drains_a_large_backlog_in_batches_exactly_once_and_in_key_order()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        const int count = 20_000;
        var batch = new List<NewEvent>(1000);
        for (var i = 0; i < count; i++)
        {
            // A few events share ordering keys; acking as we go keeps every key moving.
            batch.Add(Event(i % 2 == 0 ? "even" : "odd", ["g1"], orderingKey: i % 200 == 0 ? $"k{i / 200 % 4}" : null));
            if (batch.Count == 1000)
            {
                await store.AppendAsync(batch, At(0), Ct);
                batch.Clear();
            }
        }

        var seen = new HashSet<long>();
        var lastOfKey = new Dictionary<string, long>();
        while (true)
        {
            var leased = (await LeaseAsync(store, "g1", max: 500)).Deliveries;
            if (leased.Count == 0)
            {
                break;
            }

            for (var i = 0; i < leased.Count; i++)
            {
                var d = leased[i];
                Assert.True(seen.Add(d.EventId), $"event {d.EventId} leased twice");
                Assert.True(i == 0 || d.EventId > leased[i - 1].EventId, "a batch is oldest first");
                if (d.OrderingKey is { } key)
                {
                    Assert.True(!lastOfKey.TryGetValue(key, out var last) || d.EventId > last, $"key {key} out of order");
                    lastOfKey[key] = d.EventId;
                }
            }

            await store.SettleAsync("g1", [.. leased.Select(Ack)], At(2), Ct);
        }

        Assert.Equal(count, seen.Count);
        Assert.Equal(0, (await StatsAsync(store, "g1")).Backlog);
    }

    // ---------------------------------------------------------------- ordering

    [Fact(Timeout = 30_000)]
    public async Task Ordering_key_delivers_one_at_a_time_in_raise_order()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var k1 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var k2 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var other = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "L"));
        var none = await AppendOneAsync(store, Event("a", ["g1"]));
        var k3 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));

        var first = (await LeaseAsync(store, "g1")).Deliveries;
        Assert.Equal([k1, other, none], first.Select(d => d.EventId));

        // k2 waits while k1 is leased.
        Assert.Empty((await LeaseAsync(store, "g1")).Deliveries);

        await SettleOneAsync(store, "g1", Ack(first[0]));
        var second = (await LeaseAsync(store, "g1")).Deliveries;
        Assert.Equal([k2], second.Select(d => d.EventId));

        await SettleOneAsync(store, "g1", Ack(second[0]));
        Assert.Equal([k3], (await LeaseAsync(store, "g1")).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task Ordering_key_blocked_by_a_failing_event_until_it_is_dead_lettered()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var k1 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var k2 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var free = await AppendOneAsync(store, Event("a", ["g1"]));

        var l1 = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        Assert.Equal([k1, free], l1.Select(d => d.EventId));
        await SettleOneAsync(store, "g1", Nack(l1[0], retryAt: At(100), "boom"), At(2));

        // k1 is delayed, not leased: k2 still waits for it.
        var waiting = await LeaseAsync(store, "g1", now: At(50));
        Assert.Empty(waiting.Deliveries);
        Assert.Equal(At(100), waiting.NextDueAt);

        var retry = Assert.Single((await LeaseAsync(store, "g1", now: At(100), leaseUntil: At(130))).Deliveries);
        Assert.Equal(k1, retry.EventId);
        Assert.Equal(2, retry.Attempt);
        var outcome = await SettleOneAsync(store, "g1", Nack(retry, retryAt: At(200), "boom again", maxAttempts: 2), At(101));
        Assert.Equal(OutcomeKind.DeadLettered, outcome.Outcome!.Kind);

        // Dead-lettered: it no longer blocks its key.
        Assert.Equal([k2], (await LeaseAsync(store, "g1", now: At(101))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task Ordering_key_freed_by_housekeeping_dead_lettering_its_head_lets_the_next_event_be_leased()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var k1 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var k2 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));

        // k1 leased, k2 waits behind it, and the worker finds nothing more.
        Assert.Equal([k1], (await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries.Select(d => d.EventId));
        Assert.Empty((await LeaseAsync(store, "g1", now: At(2))).Deliveries);

        // k1's lease expires on its last allowed attempt: housekeeping dead-letters it, which frees its key.
        var expiry = await store.ExpireAsync(At(40), new FixedPolicies(1), 100, Ct);
        Assert.Equal(OutcomeKind.DeadLettered, Assert.Single(expiry.Outcomes).Kind);

        Assert.Equal([k2], (await LeaseAsync(store, "g1", now: At(41))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task Ordering_key_is_per_group()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        var k1 = await AppendOneAsync(store, Event("a", ["g1", "g2"], orderingKey: "K"));
        var k2 = await AppendOneAsync(store, Event("a", ["g1", "g2"], orderingKey: "K"));

        var g1 = Assert.Single((await LeaseAsync(store, "g1")).Deliveries);
        Assert.Equal(k1, g1.EventId);
        await SettleOneAsync(store, "g1", Ack(g1));
        Assert.Equal([k2], (await LeaseAsync(store, "g1")).Deliveries.Select(d => d.EventId));

        // g2 has not acked k1: k2 still waits there.
        Assert.Equal([k1], (await LeaseAsync(store, "g2")).Deliveries.Select(d => d.EventId));
        Assert.Empty((await LeaseAsync(store, "g2")).Deliveries);
    }

    [Fact(Timeout = 30_000)]
    public async Task Ordering_key_redriven_older_event_goes_first_again()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var k1 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var k2 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));
        var k3 = await AppendOneAsync(store, Event("a", ["g1"], orderingKey: "K"));

        await SettleOneAsync(store, "g1", Reject(Assert.Single((await LeaseAsync(store, "g1")).Deliveries), "poison"));
        var l2 = Assert.Single((await LeaseAsync(store, "g1")).Deliveries);
        Assert.Equal(k2, l2.EventId);

        // k1 comes back while k2 is leased: k1 is first of the key, so it may go; k3 waits for both.
        Assert.Equal(1, await store.RedriveAsync("g1", null, At(2), At(10_000), Ct));
        Assert.Equal([k1], (await LeaseAsync(store, "g1", now: At(2))).Deliveries.Select(d => d.EventId));
        Assert.Empty((await LeaseAsync(store, "g1", now: At(2))).Deliveries);
    }

    // ---------------------------------------------------------------- settle

    [Fact(Timeout = 30_000)]
    public async Task Settle_is_stale_for_unknown_moved_settled_or_expired_leases()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        var id = await AppendOneAsync(store, Event("a", ["g1", "g2"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries);
        listener.Clear();

        // Wrong lease number, unknown event, unknown group, group without that lease.
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", new SettleItem(new LeaseRef(id, lease.LeaseNo + 1000), SettleKind.Ack, At(0), null, 5), At(2))).Status);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", new SettleItem(new LeaseRef(id + 1000, lease.LeaseNo), SettleKind.Ack, At(0), null, 5), At(2))).Status);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "nope", Ack(lease), At(2))).Status);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g2", Ack(lease), At(2))).Status);

        // Expired at now == LeaseUntil, even before housekeeping ran: every kind is stale and nothing changes.
        foreach (var item in new[] { Ack(lease), Nack(lease, At(40), "x"), Extend(lease, At(90)), Reject(lease, "x") })
        {
            var stale = await SettleOneAsync(store, "g1", item, At(31));
            Assert.Equal(SettleStatus.Stale, stale.Status);
            Assert.Null(stale.Outcome);
        }

        Assert.Empty(listener.Outcomes);
        var stats = await StatsAsync(store, "g1");
        Assert.Equal(1, stats.Backlog);
        Assert.Equal(1, stats.InFlight);
        Assert.Equal(0, stats.DeadLetters);

        // Still current before expiry; once acked, a second ack is stale.
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Ack(lease), At(30))).Status);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(lease), At(30))).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Settle_on_a_pending_delivery_is_stale()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        await SettleOneAsync(store, "g1", Nack(lease, At(100), "boom"), At(2));

        // Back to pending under the same lease number: not leased, so stale.
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(lease), At(3))).Status);
        Assert.Equal(1, (await StatsAsync(store, "g1")).Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task Ack_removes_the_delivery_and_reports_handled()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1")).Deliveries);
        listener.Clear();

        var result = await SettleOneAsync(store, "g1", Ack(lease), At(2));
        Assert.Equal(SettleStatus.Confirmed, result.Status);
        AssertOutcome(result.Outcome, id, "g1", OutcomeKind.Handled, attempt: 1, error: null, willRetry: false);
        AssertOutcome(Assert.Single(listener.Outcomes), id, "g1", OutcomeKind.Handled, 1, null, false);

        var stats = await StatsAsync(store, "g1");
        Assert.Equal(0, stats.Backlog);
        Assert.Equal(0, stats.InFlight);
        Assert.Equal(0, stats.DeadLetters);
        Assert.Empty((await LeaseAsync(store, "g1", now: At(1000), leaseUntil: At(2000))).Deliveries);
        var outcome = Assert.Single(await store.GetOutcomesAsync(id, ["g1"], Ct));
        Assert.Equal(OutcomeKind.Handled, outcome!.Kind);
    }

    [Fact(Timeout = 30_000)]
    public async Task Nack_below_max_attempts_retries_at_the_given_time_and_reports_failed()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        listener.Clear();

        var result = await SettleOneAsync(store, "g1", Nack(lease, At(60), "boom", maxAttempts: 3), At(2));
        Assert.Equal(SettleStatus.Confirmed, result.Status);
        AssertOutcome(result.Outcome, id, "g1", OutcomeKind.Failed, 1, "boom", willRetry: true);
        AssertOutcome(Assert.Single(listener.Outcomes), id, "g1", OutcomeKind.Failed, 1, "boom", true);

        var stats = await StatsAsync(store, "g1");
        Assert.Equal(1, stats.Backlog);
        Assert.Equal(0, stats.InFlight);

        Assert.Empty((await LeaseAsync(store, "g1", now: At(59))).Deliveries);
        var retry = Assert.Single((await LeaseAsync(store, "g1", now: At(60))).Deliveries);
        Assert.Equal(2, retry.Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Nack_at_max_attempts_dead_letters_with_the_error()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var l1 = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        await SettleOneAsync(store, "g1", Nack(l1, At(2), "first", maxAttempts: 2), At(1));
        var l2 = Assert.Single((await LeaseAsync(store, "g1", now: At(2))).Deliveries);
        listener.Clear();

        var result = await SettleOneAsync(store, "g1", Nack(l2, At(3), "second", maxAttempts: 2), At(2.5));
        AssertOutcome(result.Outcome, id, "g1", OutcomeKind.DeadLettered, 2, "second", willRetry: false);
        AssertOutcome(Assert.Single(listener.Outcomes), id, "g1", OutcomeKind.DeadLettered, 2, "second", false);

        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(id, dead.EventId);
        Assert.Equal(DeadLetterReasons.MaxAttempts, dead.Reason);
        Assert.Equal("second", dead.LastError);
        Assert.Equal(2, dead.Attempts);
        Assert.Equal(At(2.5), dead.DeadLetteredAt);

        var stats = await StatsAsync(store, "g1");
        Assert.Equal(0, stats.Backlog);
        Assert.Equal(1, stats.DeadLetters);
        Assert.Empty((await LeaseAsync(store, "g1", now: At(100))).Deliveries);
    }

    [Fact(Timeout = 30_000)]
    public async Task Extend_moves_the_lease_end_without_an_outcome()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries);
        listener.Clear();

        var result = await SettleOneAsync(store, "g1", Extend(lease, At(90)), At(20));
        Assert.Equal(SettleStatus.Confirmed, result.Status);
        Assert.Null(result.Outcome);
        Assert.Empty(listener.Outcomes);

        // The old end passed: housekeeping does not expire it, and it can still be settled.
        var expiry = await store.ExpireAsync(At(50), new FixedPolicies(5), 100, Ct);
        Assert.Empty(expiry.ExpiredLeases);
        Assert.Equal(1, (await StatsAsync(store, "g1")).InFlight);
        Assert.Empty((await LeaseAsync(store, "g1", now: At(50))).Deliveries);
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Extend(lease, At(120)), At(89))).Status);
        var ack = await SettleOneAsync(store, "g1", Ack(lease), At(119));
        AssertOutcome(ack.Outcome, id, "g1", OutcomeKind.Handled, 1, null, false);
    }

    [Fact(Timeout = 30_000)]
    public async Task Extended_lease_expires_at_its_new_end()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries);
        await SettleOneAsync(store, "g1", Extend(lease, At(90)), At(20));

        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(lease), At(90))).Status);
        var expiry = await store.ExpireAsync(At(90), new FixedPolicies(5), 100, Ct);
        Assert.Equal([new ExpiredLease("g1", Ref(lease))], expiry.ExpiredLeases);
        Assert.Equal(id, Assert.Single((await LeaseAsync(store, "g1", now: At(90))).Deliveries).EventId);
    }

    [Fact(Timeout = 30_000)]
    public async Task Reject_dead_letters_at_once()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        listener.Clear();

        var result = await SettleOneAsync(store, "g1", Reject(lease, "missing arg 'email'"), At(3));
        Assert.Equal(SettleStatus.Confirmed, result.Status);
        AssertOutcome(result.Outcome, id, "g1", OutcomeKind.DeadLettered, 1, "missing arg 'email'", willRetry: false);
        AssertOutcome(Assert.Single(listener.Outcomes), id, "g1", OutcomeKind.DeadLettered, 1, "missing arg 'email'", false);

        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(DeadLetterReasons.Rejected, dead.Reason);
        Assert.Equal("missing arg 'email'", dead.LastError);
        Assert.Equal(1, dead.Attempts);
        Assert.Equal(At(3), dead.DeadLetteredAt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Settle_batch_applies_each_item_and_reports_outcomes_once_after_the_batch()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 4);
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        listener.Clear();

        var results = await store.SettleAsync(
            "g1",
            [Ack(leases[0]), Nack(leases[1], At(10), "n"), Extend(leases[2], At(60)), Reject(leases[3], "r"), Ack(leases[0])],
            At(2),
            Ct);

        Assert.Equal(
            [SettleStatus.Confirmed, SettleStatus.Confirmed, SettleStatus.Confirmed, SettleStatus.Confirmed, SettleStatus.Stale],
            results.Select(r => r.Status));
        Assert.Equal(OutcomeKind.Handled, results[0].Outcome!.Kind);
        Assert.Equal(OutcomeKind.Failed, results[1].Outcome!.Kind);
        Assert.Null(results[2].Outcome);
        Assert.Equal(OutcomeKind.DeadLettered, results[3].Outcome!.Kind);
        Assert.Equal(
            [(ids[0], OutcomeKind.Handled), (ids[1], OutcomeKind.Failed), (ids[3], OutcomeKind.DeadLettered)],
            listener.Outcomes.Select(o => (o.EventId, o.Kind)).Order());
    }

    // ---------------------------------------------------------------- release

    [Fact(Timeout = 30_000)]
    public async Task Release_returns_current_leases_to_pending_due_now_with_the_reason_as_error()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 2);
        var leases = (await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries;
        listener.Clear();

        // Lease time already passed but housekeeping has not run: expiry is not required for a release.
        var outcomes = await store.ReleaseAsync("g1", [.. leases.Select(l => new ReleaseItem(Ref(l), 5))], "stream closed", At(40), Ct);
        Assert.Equal(2, outcomes.Count);
        AssertOutcome(outcomes.Single(o => o.EventId == ids[0]), ids[0], "g1", OutcomeKind.Failed, 1, "stream closed", true);
        AssertOutcome(outcomes.Single(o => o.EventId == ids[1]), ids[1], "g1", OutcomeKind.Failed, 1, "stream closed", true);
        Assert.Equal(2, listener.Outcomes.Count);

        var again = await LeaseAsync(store, "g1", now: At(40), leaseUntil: At(70));
        Assert.Equal(ids, again.Deliveries.Select(d => d.EventId));
        Assert.All(again.Deliveries, d => Assert.Equal(2, d.Attempt));
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(store, "g1", Ack(leases[0]), At(41))).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Release_at_max_attempts_dead_letters()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);

        var outcome = Assert.Single(await store.ReleaseAsync("g1", [new ReleaseItem(Ref(lease), 1)], "stream closed", At(2), Ct));
        AssertOutcome(outcome, id, "g1", OutcomeKind.DeadLettered, 1, "stream closed", false);
        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(DeadLetterReasons.MaxAttempts, dead.Reason);
        Assert.Equal("stream closed", dead.LastError);
        Assert.Equal(At(2), dead.DeadLetteredAt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Release_ignores_leases_that_moved_on()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AppendManyAsync(store, "g1", 2);
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        await SettleOneAsync(store, "g1", Ack(leases[0]), At(2));
        await SettleOneAsync(store, "g1", Nack(leases[1], At(2), "x"), At(2));
        var relet = Assert.Single((await LeaseAsync(store, "g1", now: At(3))).Deliveries);
        listener.Clear();

        var outcomes = await store.ReleaseAsync(
            "g1",
            [new ReleaseItem(Ref(leases[0]), 5), new ReleaseItem(Ref(leases[1]), 5)],
            "stream closed",
            At(4),
            Ct);
        Assert.Empty(outcomes);
        Assert.Empty(listener.Outcomes);
        Assert.Empty(await store.ReleaseAsync("missing", [new ReleaseItem(Ref(relet), 5)], "stream closed", At(4), Ct));
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Ack(relet), At(5))).Status);
    }

    // ---------------------------------------------------------------- housekeeping

    [Fact(Timeout = 30_000)]
    public async Task Expire_returns_expired_leases_to_pending_as_failed_attempts()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var keep = await AppendOneAsync(store, Event("b", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", max: 1, now: At(1), leaseUntil: At(31))).Deliveries);
        var other = Assert.Single((await LeaseAsync(store, "g1", max: 1, now: At(1), leaseUntil: At(61))).Deliveries);
        Assert.Equal(keep, other.EventId);
        listener.Clear();

        Assert.Empty((await store.ExpireAsync(At(30), new FixedPolicies(5), 100, Ct)).ExpiredLeases);

        var result = await store.ExpireAsync(At(31), new FixedPolicies(5), 100, Ct);
        Assert.Equal([new ExpiredLease("g1", Ref(lease))], result.ExpiredLeases);
        AssertOutcome(Assert.Single(result.Outcomes), id, "g1", OutcomeKind.Failed, 1, "lease expired", true);
        AssertOutcome(Assert.Single(listener.Outcomes), id, "g1", OutcomeKind.Failed, 1, "lease expired", true);
        Assert.False(result.More);

        var stats = await StatsAsync(store, "g1");
        Assert.Equal(2, stats.Backlog);
        Assert.Equal(1, stats.InFlight);
        var again = Assert.Single((await LeaseAsync(store, "g1", now: At(31))).Deliveries);
        Assert.Equal(id, again.EventId);
        Assert.Equal(2, again.Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Expire_dead_letters_an_expired_lease_at_the_groups_max_attempts()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        var id = await AppendOneAsync(store, Event("a", ["g1", "g2"]));
        var l1 = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries);
        var l2 = Assert.Single((await LeaseAsync(store, "g2", now: At(1), leaseUntil: At(31))).Deliveries);

        var result = await store.ExpireAsync(At(40), new MapPolicies(new() { ["g1"] = 1, ["g2"] = 3 }), 100, Ct);
        Assert.Equal(
            [new ExpiredLease("g1", Ref(l1)), new ExpiredLease("g2", Ref(l2))],
            result.ExpiredLeases.OrderBy(e => e.Group, StringComparer.Ordinal));
        AssertOutcome(result.Outcomes.Single(o => o.Group == "g1"), id, "g1", OutcomeKind.DeadLettered, 1, "lease expired", false);
        AssertOutcome(result.Outcomes.Single(o => o.Group == "g2"), id, "g2", OutcomeKind.Failed, 1, "lease expired", true);

        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(DeadLetterReasons.MaxAttempts, dead.Reason);
        Assert.Equal("lease expired", dead.LastError);
        Assert.Equal(At(40), dead.DeadLetteredAt);
        Assert.Empty((await store.ListDeadLettersAsync("g2", 0, 10, Ct))!);
    }

    [Fact(Timeout = 30_000)]
    public async Task Expire_dead_letters_pending_deliveries_past_retention_but_not_leased_ones()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var pending = await AppendOneAsync(store, Event("a", ["g1"], retainUntil: At(100)));
        var leased = await AppendOneAsync(store, Event("b", ["g1"], retainUntil: At(100)));
        var young = await AppendOneAsync(store, Event("c", ["g1"], retainUntil: At(500)));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(1000), filter: new PrefixFilter("b"))).Deliveries);
        Assert.Equal(leased, lease.EventId);
        listener.Clear();

        Assert.Equal(0, (await store.ExpireAsync(At(99), new FixedPolicies(5), 100, Ct)).RetentionExpired);

        var result = await store.ExpireAsync(At(100), new FixedPolicies(5), 100, Ct);
        Assert.Equal(1, result.RetentionExpired);
        var outcome = Assert.Single(result.Outcomes);
        Assert.Equal(pending, outcome.EventId);
        Assert.Equal(OutcomeKind.DeadLettered, outcome.Kind);
        Assert.False(outcome.WillRetry);
        Assert.StartsWith("expired", outcome.Error, StringComparison.Ordinal);
        Assert.Equal([pending], listener.Outcomes.Select(o => o.EventId));

        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(pending, dead.EventId);
        Assert.Equal(DeadLetterReasons.Expired, dead.Reason);
        Assert.Equal(0, dead.Attempts);
        Assert.StartsWith("expired", dead.LastError, StringComparison.Ordinal);
        Assert.Equal(At(100), dead.DeadLetteredAt);

        // The leased one is still in flight and can be acked; the young one is still deliverable.
        Assert.Equal(SettleStatus.Confirmed, (await SettleOneAsync(store, "g1", Ack(lease), At(101))).Status);
        Assert.Equal([young], (await LeaseAsync(store, "g1", now: At(101))).Deliveries.Select(d => d.EventId));
    }

    [Fact(Timeout = 30_000)]
    public async Task Expire_applies_retention_to_a_delivery_waiting_for_a_retry()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"], retainUntil: At(100)));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1))).Deliveries);
        await SettleOneAsync(store, "g1", Nack(lease, At(200), "boom"), At(2));

        var result = await store.ExpireAsync(At(150), new FixedPolicies(5), 100, Ct);
        Assert.Equal(1, result.RetentionExpired);
        var dead = Assert.Single((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(id, dead.EventId);
        Assert.Equal(DeadLetterReasons.Expired, dead.Reason);
        Assert.Equal(1, dead.Attempts);
        Assert.Null((await LeaseAsync(store, "g1", now: At(150))).NextDueAt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Expire_forgets_idempotency_keys_past_their_window()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var first = await AppendOneAsync(store, Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(600)));
        await AppendOneAsync(store, Event("a", ["g1"], idempotencyKey: "k2", idempotencyUntil: At(900)));

        Assert.Equal(0, (await store.ExpireAsync(At(599), new FixedPolicies(5), 100, Ct)).KeysForgotten);
        var result = await store.ExpireAsync(At(600), new FixedPolicies(5), 100, Ct);
        Assert.Equal(1, result.KeysForgotten);

        // Forgotten: the same key stores a new event (asked at a time the old window would still cover).
        var again = Assert.Single(await store.AppendAsync([Event("a", ["g1"], idempotencyKey: "k1", idempotencyUntil: At(1200))], At(300), Ct));
        Assert.Equal(AppendStatus.Stored, again.Status);
        Assert.NotEqual(first, again.EventId);

        // k2 is still remembered.
        var dup = Assert.Single(await store.AppendAsync([Event("a", ["g1"], idempotencyKey: "k2")], At(601), Ct));
        Assert.Equal(AppendStatus.Duplicate, dup.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Expire_processes_at_most_max_items_of_each_kind_and_reports_more()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        await AddGroupAsync(store, "g2");
        for (var i = 0; i < 3; i++)
        {
            await AppendOneAsync(store, Event("lease", ["g1"], retainUntil: At(10_000), idempotencyKey: $"k{i}", idempotencyUntil: At(50)));
            await AppendOneAsync(store, Event("retain", ["g2"], retainUntil: At(50)));
        }

        Assert.Equal(3, (await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(31))).Deliveries.Count);

        var first = await store.ExpireAsync(At(60), new FixedPolicies(5), 2, Ct);
        Assert.Equal(2, first.ExpiredLeases.Count);
        Assert.Equal(2, first.RetentionExpired);
        Assert.Equal(2, first.KeysForgotten);
        Assert.True(first.More);

        var second = await store.ExpireAsync(At(60), new FixedPolicies(5), 2, Ct);
        Assert.Single(second.ExpiredLeases);
        Assert.Equal(1, second.RetentionExpired);
        Assert.Equal(1, second.KeysForgotten);
        Assert.False(second.More);

        var third = await store.ExpireAsync(At(60), new FixedPolicies(5), 2, Ct);
        Assert.Empty(third.ExpiredLeases);
        Assert.Empty(third.Outcomes);
        Assert.Equal(0, third.RetentionExpired);
        Assert.Equal(0, third.KeysForgotten);
        Assert.False(third.More);
        Assert.Equal(3, (await StatsAsync(store, "g2")).DeadLetters);
    }

    // ---------------------------------------------------------------- outcomes and stats

    [Fact(Timeout = 30_000)]
    public async Task GetOutcomes_reports_each_groups_current_outcome_in_order()
    {
        var (store, _) = await OpenAsync();
        foreach (var g in new[] { "pending", "leased", "failed", "dead", "acked" })
        {
            await AddGroupAsync(store, g);
        }

        var id = await AppendOneAsync(store, Event("a", ["pending", "leased", "failed", "dead", "acked"]));
        Assert.Single((await LeaseAsync(store, "leased", now: At(1))).Deliveries);
        var failed = Assert.Single((await LeaseAsync(store, "failed", now: At(1))).Deliveries);
        await SettleOneAsync(store, "failed", Nack(failed, At(100), "boom"), At(2));
        var dead = Assert.Single((await LeaseAsync(store, "dead", now: At(1))).Deliveries);
        await SettleOneAsync(store, "dead", Reject(dead, "poison"), At(2));
        var acked = Assert.Single((await LeaseAsync(store, "acked", now: At(1))).Deliveries);
        await SettleOneAsync(store, "acked", Ack(acked), At(2));

        var outcomes = await store.GetOutcomesAsync(id, ["acked", "dead", "failed", "leased", "pending"], Ct);
        Assert.Equal(5, outcomes.Count);
        Assert.Equal(OutcomeKind.Handled, outcomes[0]!.Kind);
        Assert.Equal("acked", outcomes[0]!.Group);
        Assert.Equal(id, outcomes[0]!.EventId);
        AssertOutcome(outcomes[1], id, "dead", OutcomeKind.DeadLettered, 1, "poison", false);
        AssertOutcome(outcomes[2], id, "failed", OutcomeKind.Failed, 1, "boom", true);
        Assert.Null(outcomes[3]);
        Assert.Null(outcomes[4]);
    }

    [Fact(Timeout = 30_000)]
    public async Task GroupStats_count_backlog_in_flight_dead_letters_and_oldest_unacked()
    {
        var (store, _) = await OpenAsync();
        await store.AddGroupPatternsAsync("g1", ["a.*"], At(0), Ct);
        await store.AddGroupPatternsAsync("empty", ["b"], At(0), Ct);
        await AppendOneAsync(store, Event("a.1", ["g1"], raisedAt: At(-30)));
        await AppendOneAsync(store, Event("a.2", ["g1"], raisedAt: At(-40)));
        await AppendOneAsync(store, Event("a.3", ["g1"], raisedAt: At(-10)));
        await AppendOneAsync(store, Event("a.4", ["g1"], raisedAt: At(-5)));
        var leases = (await LeaseAsync(store, "g1", max: 3, now: At(1), leaseUntil: At(31))).Deliveries;
        await SettleOneAsync(store, "g1", Reject(leases[1], "poison"), At(2));

        // At(100) the remaining leases are past their end but not yet expired by housekeeping: still in flight.
        var stats = (await store.GetGroupStatsAsync(At(100), Ct)).ToDictionary(s => s.Name);
        var g1 = stats["g1"];
        AssertSameSet(["a.*"], g1.Patterns);
        Assert.Equal(3, g1.Backlog);
        Assert.Equal(2, g1.InFlight);
        Assert.Equal(1, g1.DeadLetters);
        Assert.Equal(At(-30), g1.OldestUnackedRaisedAt);

        var empty = stats["empty"];
        AssertSameSet(["b"], empty.Patterns);
        Assert.Equal(0, empty.Backlog);
        Assert.Equal(0, empty.InFlight);
        Assert.Equal(0, empty.DeadLetters);
        Assert.Null(empty.OldestUnackedRaisedAt);

        await store.SettleAsync("g1", [Ack(leases[0]), Ack(leases[2])], At(3), Ct);
        g1 = await StatsAsync(store, "g1");
        Assert.Equal(1, g1.Backlog);
        Assert.Equal(0, g1.InFlight);
        Assert.Equal(At(-5), g1.OldestUnackedRaisedAt);
    }

    // ---------------------------------------------------------------- dead letters and redrive

    [Fact(Timeout = 30_000)]
    public async Task ListDeadLetters_pages_oldest_first_with_every_field()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await AppendOneAsync(store, Event($"lbl.{i}", ["g1"], orderingKey: i == 2 ? "K" : null, source: "src", raisedAt: At(-i), payload: [(byte)i, 0, 7])));
        }

        // Dead-letter them newest first, so event id order differs from dead-letter order.
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        for (var i = leases.Count - 1; i >= 0; i--)
        {
            await SettleOneAsync(store, "g1", Reject(leases[i], $"err{i}"), At(10 + (leases.Count - i)));
        }

        var page1 = (await store.ListDeadLettersAsync("g1", 0, 2, Ct))!;
        Assert.Equal(ids[..2], page1.Select(d => d.EventId));
        var page2 = (await store.ListDeadLettersAsync("g1", page1[^1].EventId, 2, Ct))!;
        Assert.Equal(ids[2..4], page2.Select(d => d.EventId));
        var page3 = (await store.ListDeadLettersAsync("g1", page2[^1].EventId, 2, Ct))!;
        Assert.Equal(ids[4..], page3.Select(d => d.EventId));
        Assert.Empty((await store.ListDeadLettersAsync("g1", ids[^1], 2, Ct))!);

        var third = page2[0];
        Assert.Equal("lbl.2", third.Label);
        Assert.Equal([2, 0, 7], third.Payload.ToArray());
        Assert.Equal("K", third.OrderingKey);
        Assert.Equal("src", third.Source);
        Assert.Equal(At(-2), third.RaisedAt);
        Assert.Equal(1, third.Attempts);
        Assert.Equal("err2", third.LastError);
        Assert.Equal(DeadLetterReasons.Rejected, third.Reason);
        Assert.Equal(At(13), third.DeadLetteredAt);
        Assert.Null(page1[0].OrderingKey);

        Assert.Null(await store.ListDeadLettersAsync("missing", 0, 10, Ct));
    }

    [Fact(Timeout = 30_000)]
    public async Task Redrive_all_moves_dead_letters_back_with_the_attempt_reset()
    {
        var (store, listener) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 3);
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        await store.SettleAsync("g1", [Reject(leases[0], "a"), Reject(leases[2], "c"), Ack(leases[1])], At(2), Ct);
        listener.Clear();

        Assert.Equal(2, await store.RedriveAsync("g1", null, At(50), At(5000), Ct));
        Assert.Contains(listener.EventsAvailable, groups => groups.Contains("g1"));
        Assert.Empty((await store.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        var stats = await StatsAsync(store, "g1");
        Assert.Equal(2, stats.Backlog);
        Assert.Equal(0, stats.DeadLetters);
        Assert.All(await store.GetOutcomesAsync(ids[0], ["g1", "g1"], Ct), Assert.Null);

        // Due at the redrive time.
        Assert.Empty((await LeaseAsync(store, "g1", now: At(49))).Deliveries);
        var again = await LeaseAsync(store, "g1", now: At(50));
        Assert.Equal([ids[0], ids[2]], again.Deliveries.Select(d => d.EventId));
        Assert.All(again.Deliveries, d => Assert.Equal(1, d.Attempt));

        Assert.Equal(0, await store.RedriveAsync("g1", null, At(51), At(5000), Ct));
    }

    [Fact(Timeout = 30_000)]
    public async Task Redrive_selected_ids_moves_only_those_and_uses_the_new_retention()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var ids = await AppendManyAsync(store, "g1", 3, retainUntil: At(10));
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        await store.SettleAsync("g1", [.. leases.Select(l => Reject(l, "x"))], At(2), Ct);

        Assert.Equal(1, await store.RedriveAsync("g1", [ids[1], 999_999], At(20), At(100), Ct));
        Assert.Equal([ids[0], ids[2]], (await store.ListDeadLettersAsync("g1", 0, 10, Ct))!.Select(d => d.EventId));
        Assert.Null(await store.RedriveAsync("missing", null, At(20), At(100), Ct));

        // Retained until the new time, not the original one.
        Assert.Equal(0, (await store.ExpireAsync(At(99), new FixedPolicies(5), 100, Ct)).RetentionExpired);
        Assert.Equal(1, (await store.ExpireAsync(At(100), new FixedPolicies(5), 100, Ct)).RetentionExpired);
        Assert.Equal(3, (await StatsAsync(store, "g1")).DeadLetters);
    }

    // ---------------------------------------------------------------- fan-out and payloads

    [Fact(Timeout = 30_000)]
    public async Task Fan_out_delivers_once_per_group_and_settling_in_one_leaves_the_other_alone()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "a");
        await AddGroupAsync(store, "b");
        var id = await AppendOneAsync(store, Event("x", ["a", "b"], payload: [9, 8, 7]));

        var inA = Assert.Single((await LeaseAsync(store, "a")).Deliveries);
        Assert.Empty((await LeaseAsync(store, "a")).Deliveries);
        await SettleOneAsync(store, "a", Ack(inA));

        var inB = Assert.Single((await LeaseAsync(store, "b")).Deliveries);
        Assert.Equal(id, inB.EventId);
        Assert.Equal(1, inB.Attempt);
        Assert.Equal([9, 8, 7], inB.Payload.ToArray());
        Assert.Empty((await LeaseAsync(store, "b")).Deliveries);

        var outcomes = await store.GetOutcomesAsync(id, ["a", "b"], Ct);
        Assert.Equal(OutcomeKind.Handled, outcomes[0]!.Kind);
        Assert.Null(outcomes[1]);

        await SettleOneAsync(store, "b", Reject(inB, "poison"));
        Assert.Empty((await store.ListDeadLettersAsync("a", 0, 10, Ct))!);
        var dead = Assert.Single((await store.ListDeadLettersAsync("b", 0, 10, Ct))!);
        Assert.Equal([9, 8, 7], dead.Payload.ToArray());
    }

    [Fact(Timeout = 30_000)]
    public async Task Payload_bytes_round_trip_exactly()
    {
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var big = new byte[300 * 1024];
        new Random(42).NextBytes(big);
        byte[][] payloads = [[], [0], [0, 0, 0], [0xFF, 0xFE, 0x00, 0x80], "{\"username\":\"ann\"}"u8.ToArray(), big];

        var buffer = payloads.Select(p => p.ToArray()).ToArray();
        var results = await store.AppendAsync([.. buffer.Select(p => Event("x", ["g1"], payload: p))], At(0), Ct);

        // The caller may reuse its buffers once the append returned.
        foreach (var b in buffer)
        {
            Array.Clear(b);
        }

        var leased = (await LeaseAsync(store, "g1", max: 100)).Deliveries;
        Assert.Equal(results.Select(r => r.EventId), leased.Select(d => d.EventId));
        for (var i = 0; i < payloads.Length; i++)
        {
            Assert.Equal(payloads[i], leased[i].Payload.ToArray());
        }
    }

    // ---------------------------------------------------------------- durability

    [Fact(Timeout = 30_000)]
    public async Task Reopen_keeps_events_groups_attempts_dead_letters_and_keys()
    {
        RequireDurable();
        var (store, _) = await OpenAsync();
        await store.AddGroupPatternsAsync("g1", ["a.*"], At(0), Ct);
        await store.AddGroupPatternsAsync("g2", ["b"], At(0), Ct);
        var failed = await AppendOneAsync(store, Event("a.1", ["g1"], payload: [1, 2, 3], orderingKey: "K", source: "s"));
        var dead = await AppendOneAsync(store, Event("a.2", ["g1"]));
        var acked = await AppendOneAsync(store, Event("a.3", ["g1", "g2"], idempotencyKey: "key", idempotencyUntil: At(600)));
        var leases = (await LeaseAsync(store, "g1", now: At(1))).Deliveries;
        Assert.Equal([failed, dead, acked], leases.Select(l => l.EventId));
        await store.SettleAsync("g1", [Nack(leases[0], At(5), "boom"), Reject(leases[1], "poison"), Ack(leases[2])], At(2), Ct);

        var (reopened, _) = await RestartAsync(store, At(3));

        AssertSameSet(["g1", "g2"], (await reopened.ListGroupsAsync(Ct)).Select(g => g.Name));
        AssertSameSet(["a.*"], (await reopened.ListGroupsAsync(Ct)).Single(g => g.Name == "g1").Patterns);

        var dl = Assert.Single((await reopened.ListDeadLettersAsync("g1", 0, 10, Ct))!);
        Assert.Equal(dead, dl.EventId);
        Assert.Equal("poison", dl.LastError);
        Assert.Equal(DeadLetterReasons.Rejected, dl.Reason);

        var dup = Assert.Single(await reopened.AppendAsync([Event("a.3", ["g1"], idempotencyKey: "key")], At(4), Ct));
        Assert.Equal(AppendStatus.Duplicate, dup.Status);
        Assert.Equal(acked, dup.EventId);

        var newer = await AppendOneAsync(reopened, Event("a.4", ["g1"]), At(4));
        Assert.True(newer > acked);

        AssertOutcome((await reopened.GetOutcomesAsync(failed, ["g1"], Ct))[0], failed, "g1", OutcomeKind.Failed, 1, "boom", true);
        var retried = (await LeaseAsync(reopened, "g1", now: At(5))).Deliveries;
        Assert.Equal([failed, newer], retried.Select(d => d.EventId));
        Assert.Equal(2, retried[0].Attempt);
        Assert.Equal([1, 2, 3], retried[0].Payload.ToArray());
        Assert.Equal("K", retried[0].OrderingKey);
        Assert.Equal("s", retried[0].Source);

        // Acked in g1 stays acked; still pending in g2.
        var inG2 = Assert.Single((await LeaseAsync(reopened, "g2", now: At(5))).Deliveries);
        Assert.Equal(acked, inG2.EventId);
        Assert.Equal(OutcomeKind.Handled, (await reopened.GetOutcomesAsync(acked, ["g1"], Ct))[0]!.Kind);
    }

    [Fact(Timeout = 30_000)]
    public async Task Reopen_returns_leases_of_the_previous_process_to_pending_with_the_attempt_kept()
    {
        RequireDurable();
        var (store, _) = await OpenAsync();
        await AddGroupAsync(store, "g1");
        var id = await AppendOneAsync(store, Event("a", ["g1"]));
        var lease = Assert.Single((await LeaseAsync(store, "g1", now: At(1), leaseUntil: At(1000))).Deliveries);

        var (reopened, _) = await RestartAsync(store, At(2));

        Assert.Equal(0, (await StatsAsync(reopened, "g1")).InFlight);
        Assert.Equal(SettleStatus.Stale, (await SettleOneAsync(reopened, "g1", Ack(lease), At(3))).Status);
        var again = Assert.Single((await LeaseAsync(reopened, "g1", now: At(3))).Deliveries);
        Assert.Equal(id, again.EventId);
        Assert.Equal(2, again.Attempt);
        Assert.True(again.LeaseNo > lease.LeaseNo);
    }

    // ---------------------------------------------------------------- helpers

    protected async Task<(IHookStore Store, RecordingListener Listener)> OpenAsync()
    {
        var name = $"{GetType().Name}-{Guid.NewGuid():N}";
        _created.Add(name);
        var store = await CreateStoreAsync(name);
        _stores.Add(store);
        _names[store] = name;
        var listener = new RecordingListener();
        await store.InitializeAsync(listener, T0, Ct);
        return (store, listener);
    }

    private async Task<(IHookStore Store, RecordingListener Listener)> RestartAsync(IHookStore store, DateTimeOffset now)
    {
        var name = _names[store];
        await store.DisposeAsync();
        _stores.Remove(store);
        var reopened = await ReopenStoreAsync(name);
        _stores.Add(reopened);
        _names[reopened] = name;
        var listener = new RecordingListener();
        await reopened.InitializeAsync(listener, now, Ct);
        return (reopened, listener);
    }

    private void RequireDurable()
    {
        if (!SurvivesRestart)
        {
            Assert.Skip("memory engine does not persist");
        }
    }

    private static async Task AddGroupAsync(IHookStore store, string group) =>
        await store.AddGroupPatternsAsync(group, [">"], At(0), Ct);

    private static NewEvent Event(
        string label,
        string[] groups,
        string? orderingKey = null,
        string? idempotencyKey = null,
        DateTimeOffset? idempotencyUntil = null,
        string? source = null,
        DateTimeOffset? raisedAt = null,
        byte[]? payload = null,
        DateTimeOffset? retainUntil = null,
        long maxBacklog = NoLimit) =>
        new(
            label,
            payload ?? "{}"u8.ToArray(),
            orderingKey,
            idempotencyKey,
            idempotencyUntil ?? At(600),
            source,
            raisedAt ?? T0,
            [.. groups.Select(g => new RoutedGroup(g, retainUntil ?? At(7 * 24 * 3600), maxBacklog))]);

    private static async Task<long> AppendOneAsync(IHookStore store, NewEvent e, DateTimeOffset? now = null)
    {
        var result = Assert.Single(await store.AppendAsync([e], now ?? At(0), Ct));
        Assert.Equal(AppendStatus.Stored, result.Status);
        Assert.True(result.EventId > 0);
        return result.EventId;
    }

    private static async Task<long[]> AppendManyAsync(IHookStore store, string group, int count, DateTimeOffset? retainUntil = null)
    {
        var results = await store.AppendAsync([.. Enumerable.Range(0, count).Select(i => Event($"e.{i}", [group], retainUntil: retainUntil))], At(0), Ct);
        Assert.All(results, r => Assert.Equal(AppendStatus.Stored, r.Status));
        return [.. results.Select(r => r.EventId)];
    }

    private static ValueTask<LeaseBatch> LeaseAsync(
        IHookStore store,
        string group,
        int max = 100,
        DateTimeOffset? now = null,
        DateTimeOffset? leaseUntil = null,
        ILabelFilter? filter = null)
    {
        var at = now ?? At(1);
        return store.LeaseAsync(new LeaseRequest(group, "worker-1", filter ?? AllLabels.Instance, max, at, leaseUntil ?? at.AddSeconds(30)), Ct);
    }

    private static async Task<SettleResult> SettleOneAsync(IHookStore store, string group, SettleItem item, DateTimeOffset? now = null) =>
        Assert.Single(await store.SettleAsync(group, [item], now ?? At(2), Ct));

    private static async Task<GroupStats> StatsAsync(IHookStore store, string group) =>
        (await store.GetGroupStatsAsync(At(0), Ct)).Single(s => s.Name == group);

    private static LeaseRef Ref(LeasedEvent lease) => new(lease.EventId, lease.LeaseNo);

    private static SettleItem Ack(LeasedEvent lease) => new(Ref(lease), SettleKind.Ack, default, null, 5);

    private static SettleItem Nack(LeasedEvent lease, DateTimeOffset retryAt, string error, int maxAttempts = 5) =>
        new(Ref(lease), SettleKind.Nack, retryAt, error, maxAttempts);

    private static SettleItem Extend(LeasedEvent lease, DateTimeOffset until) => new(Ref(lease), SettleKind.Extend, until, null, 5);

    private static SettleItem Reject(LeasedEvent lease, string error) => new(Ref(lease), SettleKind.Reject, default, error, 5);

    private static void AssertOutcome(OutcomeNotice? outcome, long eventId, string group, OutcomeKind kind, int attempt, string? error, bool willRetry)
    {
        Assert.NotNull(outcome);
        Assert.Equal(new OutcomeNotice(eventId, group, kind, attempt, error, willRetry), outcome);
    }

    private static void AssertSameSet(IEnumerable<string> expected, IEnumerable<string> actual) =>
        Assert.Equal(expected.Order(StringComparer.Ordinal), actual.Order(StringComparer.Ordinal));

    /// <summary>Records what the engine reports.</summary>
    protected sealed class RecordingListener : IHookStoreListener
    {
        private readonly ConcurrentQueue<string[]> _available = new();
        private readonly ConcurrentQueue<OutcomeNotice> _outcomes = new();
        private int _groupsChanged;

        public IReadOnlyList<string[]> EventsAvailable => [.. _available];

        public IReadOnlyList<OutcomeNotice> Outcomes => [.. _outcomes];

        public int GroupsChanged => Volatile.Read(ref _groupsChanged);

        public void OnEventsAvailable(IReadOnlyCollection<string> groups) => _available.Enqueue([.. groups]);

        public void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes)
        {
            foreach (var outcome in outcomes)
            {
                _outcomes.Enqueue(outcome);
            }
        }

        public void OnGroupsChanged() => Interlocked.Increment(ref _groupsChanged);

        public void Clear()
        {
            _available.Clear();
            _outcomes.Clear();
        }
    }

    private sealed class AllLabels : ILabelFilter
    {
        public static readonly AllLabels Instance = new();

        public bool Matches(string label) => true;
    }

    private sealed class PrefixFilter(string prefix) : ILabelFilter
    {
        public bool Matches(string label) => label.StartsWith(prefix, StringComparison.Ordinal);
    }

    private sealed class FixedPolicies(int maxAttempts) : IGroupPolicies
    {
        public int MaxAttempts(string group) => maxAttempts;
    }

    private sealed class MapPolicies(Dictionary<string, int> maxAttempts) : IGroupPolicies
    {
        public int MaxAttempts(string group) => maxAttempts[group];
    }
}
