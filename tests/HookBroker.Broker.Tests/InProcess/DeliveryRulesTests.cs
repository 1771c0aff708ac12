using Grpc.Core;
using HookBroker.Protocol.V1;
using HookBroker.Tests.Infrastructure;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>The delivery promise, through the wire, on fake time.</summary>
public sealed class DeliveryRulesTests : IAsyncLifetime
{
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() => _broker = await BrokerTestHost.StartAsync(new Dictionary<string, string?>
    {
        ["Defaults:MaxAttempts"] = "3",
    });

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task An_event_no_group_listens_to_is_unrouted_and_counted()
    {
        var response = await _broker.RaiseAsync("user_created", new { username = "ali" });

        Assert.Equal(0, response.RoutedGroups);
        Assert.Equal(string.Empty, response.EventId);
        var stats = await _broker.Admin.GetStatsAsync(new GetStatsRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(1UL, stats.UnroutedEvents);
        Assert.Equal(0UL, stats.RaisedEvents);
    }

    [Fact(Timeout = 30_000)]
    public async Task Every_matching_group_gets_the_event_once_with_its_args_and_headers()
    {
        await using var email = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await using var audit = await _broker.SubscribeAsync("audit", ["user.*", "user_created"]);

        var raised = await _broker.RaiseAsync("user_created", new { username = "ali", email = "ali@example.com" }, r =>
        {
            r.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            r.Source = "web";
        });

        Assert.Equal(2, raised.RoutedGroups);
        foreach (var worker in new[] { email, audit })
        {
            var delivery = await worker.NextAsync();
            Assert.Equal(raised.EventId, delivery.EventId);
            Assert.Equal("user_created", delivery.Event);
            Assert.Equal("ali", delivery.Args.Fields["username"].StringValue);
            Assert.Equal("ali@example.com", delivery.Args.Fields["email"].StringValue);
            Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", delivery.Headers["traceparent"]);
            Assert.Equal("web", delivery.Source);
            Assert.Equal(1, delivery.Attempt);
            Assert.Equal(_broker.Time.GetUtcNow(), delivery.RaisedAt.ToDateTimeOffset());
            Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);
            Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Workers_of_one_group_compete_so_each_event_goes_to_one_of_them()
    {
        await using var first = await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 10);
        await using var second = await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 10);

        var ids = new HashSet<string>();
        for (var i = 0; i < 20; i++)
        {
            ids.Add((await _broker.RaiseAsync("user_created", new { n = i })).EventId);
        }

        // Both hold at most 10, so 20 events must be split between them, and nobody gets one twice.
        var a = await first.TakeAsync(10);
        var b = await second.TakeAsync(10);
        var seen = a.Concat(b).Select(d => d.EventId).ToList();
        Assert.Equal(20, seen.Distinct().Count());
        Assert.True(ids.SetEquals(seen));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_worker_only_gets_labels_it_declared_itself()
    {
        await using var users = await _broker.SubscribeAsync("mixed", ["user.*"]);
        await using var billing = await _broker.SubscribeAsync("mixed", ["billing.>"]);

        await _broker.RaiseAsync("billing.invoice.paid");
        await _broker.RaiseAsync("user.created");

        Assert.Equal("user.created", (await users.NextAsync()).Event);
        Assert.Equal("billing.invoice.paid", (await billing.NextAsync()).Event);
        Assert.Null(await users.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_durable_group_keeps_events_while_its_workers_are_offline()
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await worker.LeaveAsync();
        await worker.DisposeAsync();

        var raised = await _broker.RaiseAsync("user_created", new { username = "offline" });
        Assert.Equal(1, raised.RoutedGroups);

        await using var back = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        Assert.Equal(raised.EventId, (await back.NextAsync()).EventId);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_worker_that_omits_confirmed_settlements_is_answered_only_for_those_that_changed_nothing_or_were_refused()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"], omitConfirmed: true);
        await _broker.RaiseAsync("user_created", new { username = "ali" });
        await _broker.RaiseAsync("user_created", new { username = "bo" });
        var first = await worker.NextAsync();
        var second = await worker.NextAsync();

        // Applied, refused, applied: only the refused ack is answered.
        var request = new SubscribeRequest();
        request.Acks.Add(first.DeliveryId);
        request.Acks.Add("not-a-delivery-id");
        request.Acks.Add(second.DeliveryId);
        await worker.SendAsync(request);
        // Then an ack of a lease already settled: answered as stale. Confirmations keep their order on the stream, so
        // the next two read prove that no CONFIRMED one came between.
        var again = new SubscribeRequest();
        again.Acks.Add(first.DeliveryId);
        await worker.SendAsync(again);

        var refused = await worker.NextConfirmationAsync();
        Assert.Equal(("not-a-delivery-id", SettleStatus.Invalid), (refused.DeliveryId, refused.Status));
        var stale = await worker.NextConfirmationAsync();
        Assert.Equal((first.DeliveryId, SettleStatus.Stale), (stale.DeliveryId, stale.Status));
        var stats = await _broker.Admin.GetStatsAsync(new GetStatsRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(2UL, stats.Acked);
    }

    [Fact(Timeout = 30_000)]
    public async Task Deliveries_leased_together_beyond_a_clients_4_MiB_message_limit_arrive_in_several_messages()
    {
        // 24 events of ~200 KB of args wait; the worker may hold 100, so one lease round takes them all. Merged into one
        // message they would be ~4.8 MB, over the 4 MiB a gRPC client (this test's included) accepts by default.
        await using (await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 1))
        {
        }

        var blob = new string('x', 200_000);
        for (var i = 0; i < 24; i++)
        {
            await _broker.RaiseAsync("user_created", new { n = i, blob });
        }

        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 100);
        var deliveries = await worker.TakeAsync(24);

        Assert.Equal(24, deliveries.Select(d => d.EventId).Distinct(StringComparer.Ordinal).Count());
        Assert.All(deliveries, d => Assert.Equal(1, d.Attempt));
        Assert.False(worker.Ended.IsCompleted);
    }

    [Fact(Timeout = 30_000)]
    public async Task An_expired_lease_is_redelivered_and_a_late_ack_is_stale()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var first = await worker.NextAsync();

        await _broker.AdvanceAsync(TimeSpan.FromSeconds(31));

        var again = await worker.NextAsync();
        Assert.Equal(first.EventId, again.EventId);
        Assert.Equal(2, again.Attempt);
        Assert.NotEqual(first.DeliveryId, again.DeliveryId);
        var late = await worker.AckAsync(first);
        Assert.Equal(SettleStatus.Stale, late.Status);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(again)).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Extending_a_lease_keeps_the_delivery_past_the_ack_deadline()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        _broker.Time.Advance(TimeSpan.FromSeconds(20));
        var extended = await worker.ExtendAsync(delivery, TimeSpan.FromMinutes(2));
        Assert.Equal(SettleStatus.Confirmed, extended.Status);
        Assert.Equal(_broker.Time.GetUtcNow() + TimeSpan.FromMinutes(2), extended.LeaseExpiresAt.ToDateTimeOffset());

        await _broker.AdvanceAsync(TimeSpan.FromSeconds(60));
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_with_a_delay_is_redelivered_only_after_the_delay()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        Assert.Equal(SettleStatus.Confirmed, (await worker.NackAsync(delivery, "smtp down", TimeSpan.FromSeconds(30))).Status);
        _broker.Time.Advance(TimeSpan.FromSeconds(29));
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));

        _broker.Time.Advance(TimeSpan.FromSeconds(1));
        var again = await worker.NextAsync();
        Assert.Equal(2, again.Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_retry_is_delivered_at_its_due_time_when_the_clock_moved_while_the_broker_armed_its_timer()
    {
        // The race a test's clock meets when it advances while the dispatcher arms its retry timer: armed with the
        // reading from before the move, the timer fired that much late, and a retry due at 2 s came at 3 s.
        var clock = new ClockMovingWhileArming();
        await using var broker = await BrokerTestHost.StartAsync(configureServices: clock.ReplaceHostClock);
        await using var worker = await broker.SubscribeAsync("email-sender", ["user_created"]);
        await broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        clock.MoveWhenNextArmed(TimeSpan.FromSeconds(1));
        Assert.Equal(SettleStatus.Confirmed, (await worker.NackAsync(delivery, "smtp down", TimeSpan.FromSeconds(2))).Status);
        await Poll.UntilAsync(() => clock.Moved, TimeSpan.FromSeconds(10), "the retry timer armed", TestContext.Current.CancellationToken);

        // 1 s moved while arming, 1 s more now: the retry is due.
        broker.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, (await worker.NextAsync()).Attempt);
        Assert.Empty(broker.Logs.Errors);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_without_delay_uses_the_groups_exponential_backoff_with_jitter()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");

        // Backoff starts at 1 s and doubles, each within +/-20%: 0.8-1.2 s, then 1.6-2.4 s.
        var delivery = await worker.NextAsync();
        await worker.NackAsync(delivery, "boom");
        _broker.Time.Advance(TimeSpan.FromMilliseconds(790));
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        _broker.Time.Advance(TimeSpan.FromMilliseconds(420));
        delivery = await worker.NextAsync();
        Assert.Equal(2, delivery.Attempt);

        await worker.NackAsync(delivery, "boom");
        _broker.Time.Advance(TimeSpan.FromMilliseconds(1590));
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        _broker.Time.Advance(TimeSpan.FromMilliseconds(820));
        Assert.Equal(3, (await worker.NextAsync()).Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Past_max_attempts_the_event_is_dead_lettered_with_its_last_error_and_can_be_redriven()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var raised = await _broker.RaiseAsync("user_created", new { username = "ali" });

        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var delivery = await worker.NextAsync();
            Assert.Equal(attempt, delivery.Attempt);
            await worker.NackAsync(delivery, $"smtp refused #{attempt}", TimeSpan.FromSeconds(1));
            _broker.Time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        var letters = await _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken);
        var letter = Assert.Single(letters.DeadLetters);
        Assert.Equal(raised.EventId, letter.EventId);
        Assert.Equal("smtp refused #3", letter.LastError);
        Assert.Equal("max_attempts", letter.Reason);
        Assert.Equal(3, letter.Attempts);
        Assert.Equal("ali", letter.Args.Fields["username"].StringValue);

        var redriven = await _broker.Admin.RedriveDeadLettersAsync(new RedriveDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(1, redriven.Redriven);
        var again = await worker.NextAsync();
        Assert.Equal(raised.EventId, again.EventId);
        Assert.Equal(1, again.Attempt);
        Assert.Empty((await _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken)).DeadLetters);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_rejected_delivery_is_dead_lettered_at_once()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        Assert.Equal(SettleStatus.Confirmed, (await worker.RejectAsync(delivery, "missing argument 'email'")).Status);

        var letter = Assert.Single((await _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken)).DeadLetters);
        Assert.Equal("rejected", letter.Reason);
        Assert.Equal("missing argument 'email'", letter.LastError);
        Assert.Equal(1, letter.Attempts);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_worker_never_holds_more_than_its_max_in_flight()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 3);
        for (var i = 0; i < 10; i++)
        {
            await _broker.RaiseAsync("user_created", new { n = i });
        }

        var held = await worker.TakeAsync(3);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(200)));

        await worker.AckAsync(held[0]);
        var next = await worker.NextAsync();
        Assert.DoesNotContain(next.EventId, held.Select(d => d.EventId));
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(200)));
    }

    [Fact(Timeout = 30_000)]
    public async Task When_a_worker_stream_closes_its_leases_go_to_another_worker_at_once()
    {
        var leaving = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var held = await leaving.NextAsync();

        await using var staying = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await leaving.LeaveAsync();
        await leaving.DisposeAsync();

        // No clock advance: the release, not lease expiry, makes it deliverable.
        var moved = await staying.NextAsync();
        Assert.Equal(held.EventId, moved.EventId);
        Assert.Equal(2, moved.Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task Events_with_one_ordering_key_reach_a_group_in_order_one_at_a_time_and_a_failure_blocks_only_its_key()
    {
        await using var worker = await _broker.SubscribeAsync("billing", ["invoice"]);
        var a1 = await _broker.RaiseAsync("invoice", new { n = "a1" }, r => r.OrderingKey = "customer-a");
        var a2 = await _broker.RaiseAsync("invoice", new { n = "a2" }, r => r.OrderingKey = "customer-a");
        var b1 = await _broker.RaiseAsync("invoice", new { n = "b1" }, r => r.OrderingKey = "customer-b");

        var first = await worker.TakeAsync(2);
        Assert.Equal([a1.EventId, b1.EventId], first.Select(d => d.EventId).Order().ToArray());
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));

        // a1 fails: a2 stays blocked behind it, while customer-b flows.
        var deliveredA1 = first.Single(d => d.EventId == a1.EventId);
        await worker.NackAsync(deliveredA1, "try later", TimeSpan.FromSeconds(5));
        var b2 = await _broker.RaiseAsync("invoice", new { n = "b2" }, r => r.OrderingKey = "customer-b");
        await worker.AckAsync(first.Single(d => d.EventId == b1.EventId));
        Assert.Equal(b2.EventId, (await worker.NextAsync()).EventId);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));

        _broker.Time.Advance(TimeSpan.FromSeconds(5));
        var retried = await worker.NextAsync();
        Assert.Equal(a1.EventId, retried.EventId);
        await worker.AckAsync(retried);
        Assert.Equal(a2.EventId, (await worker.NextAsync()).EventId);
    }

    [Fact(Timeout = 30_000)]
    public async Task An_undelivered_event_past_its_retention_is_dead_lettered_as_expired()
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await worker.LeaveAsync();
        await worker.DisposeAsync();
        await _broker.RaiseAsync("user_created");

        await _broker.AdvanceAsync(TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1));

        var letter = Assert.Single((await _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken)).DeadLetters);
        Assert.Equal("expired", letter.Reason);
        var group = Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        Assert.Equal(0, group.Backlog);
        Assert.Equal(1, group.DeadLetters);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_repeated_idempotency_key_returns_the_first_event_inside_the_window_only()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var first = await _broker.RaiseAsync("user_created", new { v = 1 }, r => r.IdempotencyKey = "signup-42");
        var repeat = await _broker.RaiseAsync("user_created", new { v = 2 }, r => r.IdempotencyKey = "signup-42");

        Assert.False(first.Duplicate);
        Assert.True(repeat.Duplicate);
        Assert.Equal(first.EventId, repeat.EventId);
        Assert.Equal(1, repeat.RoutedGroups);
        var delivery = await worker.NextAsync();
        Assert.Equal(1, delivery.Args.Fields["v"].NumberValue);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));

        await _broker.AdvanceAsync(TimeSpan.FromMinutes(10));
        var later = await _broker.RaiseAsync("user_created", new { v = 3 }, r => r.IdempotencyKey = "signup-42");
        Assert.False(later.Duplicate);
        Assert.NotEqual(first.EventId, later.EventId);
    }

    [Fact(Timeout = 30_000)]
    public async Task Admin_lists_groups_with_backlog_in_flight_and_oldest_age()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"], maxInFlight: 1);
        await _broker.RaiseAsync("user_created");
        await _broker.RaiseAsync("user_created");
        await worker.NextAsync();
        _broker.Time.Advance(TimeSpan.FromSeconds(5));

        var group = Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        Assert.Equal("email-sender", group.Name);
        Assert.Equal(["user_created"], group.Patterns);
        Assert.Equal(2, group.Backlog);
        Assert.Equal(1, group.InFlight);
        Assert.Equal(TimeSpan.FromSeconds(5), group.OldestUnackedAge.ToTimeSpan());
        Assert.Equal(1, group.ConnectedWorkers);
    }

    [Fact(Timeout = 30_000)]
    public async Task Deleting_a_group_ends_its_streams_with_not_found_and_stops_routing_to_it()
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.Admin.DeleteGroupAsync(new DeleteGroupRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken);

        var ended = await worker.Ended.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(StatusCode.NotFound, ended?.StatusCode);
        Assert.Equal(0, (await _broker.RaiseAsync("user_created")).RoutedGroups);
        await worker.DisposeAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task An_idle_stream_gets_heartbeats()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        Assert.Equal(TimeSpan.FromSeconds(15), worker.Info!.HeartbeatInterval.ToTimeSpan());

        _broker.Time.Advance(TimeSpan.FromSeconds(15));

        var heartbeat = await worker.NextHeartbeatAsync();
        Assert.Equal(_broker.Time.GetUtcNow(), heartbeat.ServerTime.ToDateTimeOffset());
    }

    /// <summary>The host's fake clock, which moves forward once, just before the next one-shot timer is armed.</summary>
    private sealed class ClockMovingWhileArming : FakeClockView
    {
        private long _moveTicks;
        private int _moved;

        /// <summary>True once the clock moved.</summary>
        public bool Moved => Volatile.Read(ref _moved) == 1;

        /// <summary>Moves the clock by <paramref name="by"/> when a one-shot timer is next created or changed.</summary>
        public void MoveWhenNextArmed(TimeSpan by) => Interlocked.Exchange(ref _moveTicks, by.Ticks);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            MoveIfArming(dueTime, period);
            return new Timer(this, base.CreateTimer(callback, state, dueTime, period));
        }

        private void MoveIfArming(TimeSpan dueTime, TimeSpan period)
        {
            if (period == Timeout.InfiniteTimeSpan && dueTime > TimeSpan.Zero && dueTime != Timeout.InfiniteTimeSpan
                && Interlocked.Exchange(ref _moveTicks, 0) is > 0 and var ticks)
            {
                Inner.Advance(TimeSpan.FromTicks(ticks));
                Volatile.Write(ref _moved, 1);
            }
        }

        private sealed class Timer(ClockMovingWhileArming clock, ITimer inner) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                clock.MoveIfArming(dueTime, period);
                return inner.Change(dueTime, period);
            }

            public void Dispose() => inner.Dispose();

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
