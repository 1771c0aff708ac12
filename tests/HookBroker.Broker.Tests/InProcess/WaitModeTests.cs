using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>Wait mode (RaiseRequest.wait_timeout) over the wire: each routed group's first outcome, on fake time.</summary>
public sealed class WaitModeTests : IAsyncLifetime
{
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() => _broker = await BrokerTestHost.StartAsync();

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task An_ack_answers_a_waiting_raise_with_handled_and_the_attempt()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10), new { username = "ali" });
        var delivery = await worker.NextAsync();
        Assert.False(raise.IsCompleted);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);

        var response = await raise;
        Assert.Equal(delivery.EventId, response.EventId);
        Assert.Equal(1, response.RoutedGroups);
        Assert.False(response.Duplicate);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal("email-sender", outcome.Group);
        Assert.Equal(Outcome.Handled, outcome.Outcome);
        Assert.Equal(1, outcome.Attempt);
        Assert.Equal(string.Empty, outcome.Error);
        Assert.False(outcome.WillRetry);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_answers_failed_with_the_error_and_the_event_keeps_its_retry_course()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10));
        var delivery = await worker.NextAsync();
        Assert.Equal(SettleStatus.Confirmed, (await worker.NackAsync(delivery, "smtp down", TimeSpan.FromSeconds(5))).Status);

        var outcome = Assert.Single((await raise).Outcomes);
        Assert.Equal(Outcome.Failed, outcome.Outcome);
        Assert.Equal("smtp down", outcome.Error);
        Assert.Equal(1, outcome.Attempt);
        Assert.True(outcome.WillRetry);

        // The answer did not end the event's course: it comes back after the nack's delay.
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        _broker.Time.Advance(TimeSpan.FromSeconds(5));
        var again = await worker.NextAsync();
        Assert.Equal(delivery.EventId, again.EventId);
        Assert.Equal(2, again.Attempt);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(again)).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task An_expired_lease_answers_failed_as_the_first_failed_attempt()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromMinutes(2));
        var delivery = await worker.NextAsync();
        await _broker.AdvanceAsync(TimeSpan.FromSeconds(31));

        var outcome = Assert.Single((await raise).Outcomes);
        Assert.Equal(Outcome.Failed, outcome.Outcome);
        Assert.Equal(1, outcome.Attempt);
        Assert.True(outcome.WillRetry);
        Assert.NotEmpty(outcome.Error);
        Assert.Equal(2, (await worker.NextAsync()).Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_worker_leaving_with_the_delivery_answers_failed_and_the_event_goes_to_another_worker()
    {
        var leaving = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10));
        var delivery = await leaving.NextAsync();
        await using var staying = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await leaving.LeaveAsync();
        await leaving.DisposeAsync();

        var outcome = Assert.Single((await raise).Outcomes);
        Assert.Equal(Outcome.Failed, outcome.Outcome);
        Assert.Equal(1, outcome.Attempt);
        Assert.True(outcome.WillRetry);
        Assert.Contains("disconnected", outcome.Error, StringComparison.Ordinal);
        var again = await staying.NextAsync();
        Assert.Equal(delivery.EventId, again.EventId);
        Assert.Equal(2, again.Attempt);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_of_the_last_allowed_attempt_answers_dead_lettered_not_failed()
    {
        await using var broker = await BrokerTestHost.StartAsync(new Dictionary<string, string?> { ["Defaults:MaxAttempts"] = "1" });
        await using var worker = await broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = broker.RaiseAsync("user_created", configure: r => r.WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(10)));
        await worker.NackAsync(await worker.NextAsync(), "smtp down");

        var outcome = Assert.Single((await raise).Outcomes);
        Assert.Equal(Outcome.DeadLettered, outcome.Outcome);
        Assert.Equal("smtp down", outcome.Error);
        Assert.Equal(1, outcome.Attempt);
        Assert.False(outcome.WillRetry);
        Assert.Empty(broker.Logs.Errors);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_reject_answers_dead_lettered_with_the_error()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10));
        var delivery = await worker.NextAsync();
        Assert.Equal(SettleStatus.Confirmed, (await worker.RejectAsync(delivery, "missing argument 'email'")).Status);

        var outcome = Assert.Single((await raise).Outcomes);
        Assert.Equal(Outcome.DeadLettered, outcome.Outcome);
        Assert.Equal("missing argument 'email'", outcome.Error);
        Assert.Equal(1, outcome.Attempt);
        Assert.False(outcome.WillRetry);
    }

    [Fact(Timeout = 30_000)]
    public async Task Without_a_worker_the_wait_ends_timed_out_at_the_wait_timeout_on_the_brokers_clock()
    {
        await MakeOfflineGroupAsync("email-sender", "user_created");
        var started = _broker.Time.GetUtcNow();

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(3));
        var response = await AdvanceUntilDoneAsync(raise, TimeSpan.FromSeconds(1));

        Assert.True(_broker.Time.GetUtcNow() - started >= TimeSpan.FromSeconds(3));
        Assert.NotEmpty(response.EventId);
        Assert.Equal(1, response.RoutedGroups);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal("email-sender", outcome.Group);
        Assert.Equal(Outcome.TimedOut, outcome.Outcome);
        Assert.Equal(0, outcome.Attempt);
        Assert.Equal(string.Empty, outcome.Error);

        // Timing out the wait does not touch the event: it still waits for the group.
        var group = Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        Assert.Equal(1, group.Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task Two_groups_get_their_own_outcomes_in_one_response()
    {
        await using var email = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await using var audit = await _broker.SubscribeAsync("audit", ["user.*", "user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10));
        await email.AckAsync(await email.NextAsync());
        Assert.False(raise.IsCompleted);
        await audit.RejectAsync(await audit.NextAsync(), "audit store refused it");

        var response = await raise;
        Assert.Equal(2, response.RoutedGroups);
        Assert.Equal(["audit", "email-sender"], response.Outcomes.Select(o => o.Group).Order(StringComparer.Ordinal));
        var emailOutcome = response.Outcomes.Single(o => o.Group == "email-sender");
        Assert.Equal(Outcome.Handled, emailOutcome.Outcome);
        Assert.Equal(1, emailOutcome.Attempt);
        var auditOutcome = response.Outcomes.Single(o => o.Group == "audit");
        Assert.Equal(Outcome.DeadLettered, auditOutcome.Outcome);
        Assert.Equal("audit store refused it", auditOutcome.Error);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_group_without_an_outcome_is_timed_out_while_the_other_reports_its_own()
    {
        await MakeOfflineGroupAsync("audit", "user_created");
        await using var email = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(5));
        await email.AckAsync(await email.NextAsync());
        var response = await AdvanceUntilDoneAsync(raise, TimeSpan.FromSeconds(1));

        Assert.Equal(Outcome.Handled, response.Outcomes.Single(o => o.Group == "email-sender").Outcome);
        Assert.Equal(Outcome.TimedOut, response.Outcomes.Single(o => o.Group == "audit").Outcome);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_duplicate_raise_in_wait_mode_waits_on_the_first_events_outcome()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var first = await _broker.RaiseAsync("user_created", new { v = 1 }, r => r.IdempotencyKey = "signup-42");
        var delivery = await worker.NextAsync();

        var duplicate = RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10), new { v = 2 }, r => r.IdempotencyKey = "signup-42");
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
        Assert.False(duplicate.IsCompleted);
        await worker.NackAsync(delivery, "first attempt failed", TimeSpan.FromSeconds(5));

        var response = await duplicate;
        Assert.True(response.Duplicate);
        Assert.Equal(first.EventId, response.EventId);
        Assert.Equal(1, response.RoutedGroups);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal(Outcome.Failed, outcome.Outcome);
        Assert.Equal("first attempt failed", outcome.Error);
        Assert.Equal(1, outcome.Attempt);
        Assert.True(outcome.WillRetry);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_duplicate_raise_in_wait_mode_after_the_first_event_was_handled_answers_at_once()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var first = await _broker.RaiseAsync("user_created", configure: r => r.IdempotencyKey = "signup-42");
        await worker.AckAsync(await worker.NextAsync());

        // No clock advance: the outcome is already known, so the wait returns without reaching its timeout.
        var response = await RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10), configure: r => r.IdempotencyKey = "signup-42");

        Assert.True(response.Duplicate);
        Assert.Equal(first.EventId, response.EventId);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal("email-sender", outcome.Group);
        Assert.Equal(Outcome.Handled, outcome.Outcome);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(100)));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_duplicate_raise_in_wait_mode_after_the_first_event_was_dead_lettered_reports_it()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var first = await _broker.RaiseAsync("user_created", configure: r => r.IdempotencyKey = "signup-42");
        await worker.RejectAsync(await worker.NextAsync(), "poison");

        var response = await RaiseWaitingAsync("user_created", TimeSpan.FromSeconds(10), configure: r => r.IdempotencyKey = "signup-42");

        Assert.True(response.Duplicate);
        Assert.Equal(first.EventId, response.EventId);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal(Outcome.DeadLettered, outcome.Outcome);
        Assert.Equal("poison", outcome.Error);
        Assert.Equal(1, outcome.Attempt);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(10)]
    [InlineData(20)]
    public async Task A_wait_timeout_not_shorter_than_the_calls_deadline_is_invalid_argument_naming_the_deadline(int waitSeconds)
    {
        await MakeOfflineGroupAsync("email-sender", "user_created");
        var request = new RaiseRequest { Event = "user_created", WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(waitSeconds)) };

        var error = await Assert.ThrowsAsync<RpcException>(() => _broker.Client.RaiseAsync(
            request, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("wait_timeout", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("shorter than the call's deadline", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups).Backlog);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_wait_timeout_shorter_than_the_calls_deadline_is_accepted()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var request = new RaiseRequest { Event = "user_created", WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)) };

        var call = _broker.Client.RaiseAsync(request, deadline: DateTime.UtcNow.AddSeconds(25), cancellationToken: TestContext.Current.CancellationToken);
        await worker.AckAsync(await worker.NextAsync());

        Assert.Equal(Outcome.Handled, Assert.Single((await call.ResponseAsync).Outcomes).Outcome);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_wait_timeout_past_a_Durations_range_is_invalid_argument_naming_the_limit()
    {
        await MakeOfflineGroupAsync("email-sender", "user_created");
        var request = new RaiseRequest { Event = "user_created", WaitTimeout = new Duration { Seconds = 400_000_000_000 } };

        var error = await Assert.ThrowsAsync<RpcException>(() => _broker.Client.RaiseAsync(request, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("wait_timeout 400000000000s is longer than the limit of 300s", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_wait_timeout_over_five_minutes_is_invalid_argument_naming_the_limit()
    {
        await MakeOfflineGroupAsync("email-sender", "user_created");

        var error = await Assert.ThrowsAsync<RpcException>(() => RaiseWaitingAsync("user_created", TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("wait_timeout 301s", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("limit of 300s", error.Status.Detail, StringComparison.Ordinal);

        // Exactly five minutes is allowed.
        var raise = RaiseWaitingAsync("user_created", TimeSpan.FromMinutes(5));
        Assert.Equal(Outcome.TimedOut, Assert.Single((await AdvanceUntilDoneAsync(raise, TimeSpan.FromMinutes(1))).Outcomes).Outcome);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_negative_wait_timeout_is_invalid_argument()
    {
        var request = new RaiseRequest { Event = "user_created", WaitTimeout = new Duration { Seconds = -1 } };

        var error = await Assert.ThrowsAsync<RpcException>(() => _broker.Client.RaiseAsync(request, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("wait_timeout must be a positive duration", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Wait_mode_on_an_unrouted_event_returns_at_once_with_no_groups()
    {
        var response = await RaiseWaitingAsync("nobody_listens", TimeSpan.FromSeconds(30));

        Assert.Equal(0, response.RoutedGroups);
        Assert.Equal(string.Empty, response.EventId);
        Assert.Empty(response.Outcomes);
        var stats = await _broker.Admin.GetStatsAsync(new GetStatsRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(1UL, stats.UnroutedEvents);
    }

    private Task<RaiseResponse> RaiseWaitingAsync(string label, TimeSpan wait, object? args = null, Action<RaiseRequest>? configure = null) =>
        _broker.RaiseAsync(label, args, r =>
        {
            r.WaitTimeout = Duration.FromTimeSpan(wait);
            configure?.Invoke(r);
        });

    /// <summary>
    /// Moves the broker's clock in steps until <paramref name="call"/> completes: the wait's timer exists only once the
    /// call reached it, so one advance made too early would be lost.
    /// </summary>
    private async Task<T> AdvanceUntilDoneAsync<T>(Task<T> call, TimeSpan step)
    {
        while (!call.IsCompleted)
        {
            _broker.Time.Advance(step);
            await Task.WhenAny(call, Task.Delay(TimeSpan.FromMilliseconds(20), TestContext.Current.CancellationToken));
        }

        return await call;
    }

    /// <summary>Creates a durable group with no worker connected.</summary>
    private async Task MakeOfflineGroupAsync(string group, string label)
    {
        var worker = await _broker.SubscribeAsync(group, [label]);
        await worker.LeaveAsync();
        await worker.DisposeAsync();
    }
}
