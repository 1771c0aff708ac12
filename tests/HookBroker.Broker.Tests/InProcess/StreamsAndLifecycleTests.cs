using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Broker.Storage;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>RaiseStream, WatchInterest, the backlog limit, shutdown and configuration checks, over the wire.</summary>
public sealed class StreamsAndLifecycleTests : IAsyncLifetime
{
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() => _broker = await BrokerTestHost.StartAsync();

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
    }

    // ---- RaiseStream ---------------------------------------------------------------------------------------------

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_answers_every_item_once_bad_ones_with_their_own_status_and_the_stream_goes_on()
    {
        await MakeOfflineGroupAsync(_broker, "email-sender", "user_created");
        using var call = _broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);

        var request = new RaiseStreamRequest();
        for (ulong sequence = 1; sequence <= 52; sequence++)
        {
            var raise = sequence switch
            {
                10 => new RaiseRequest { Event = "user created" },
                40 => new RaiseRequest { Event = "user_created", Args = new Struct { Fields = { ["blob"] = Value.ForString(new string('x', 300 * 1024)) } } },
                _ => new RaiseRequest { Event = "user_created", Args = Args.Of(new { n = sequence }) },
            };
            request.Items.Add(new RaiseItem { Sequence = sequence, Raise = raise });
        }

        await call.RequestStream.WriteAsync(request, TestContext.Current.CancellationToken);
        var results = await ReadResultsAsync(call, 52);

        Assert.Equal(Enumerable.Range(1, 52).Select(i => (ulong)i), results.Select(r => r.Sequence).Order());
        var badLabel = results.Single(r => r.Sequence == 10);
        Assert.Equal((int)StatusCode.InvalidArgument, badLabel.Status.Code);
        Assert.Contains("contains '\\u0020'", badLabel.Status.Message, StringComparison.Ordinal);
        Assert.Null(badLabel.Response);
        var tooBig = results.Single(r => r.Sequence == 40);
        Assert.Equal((int)StatusCode.ResourceExhausted, tooBig.Status.Code);
        Assert.Contains("HookBroker:MaxArgsBytes", tooBig.Status.Message, StringComparison.Ordinal);
        var good = results.Where(r => r.Sequence is not 10 and not 40).ToList();
        Assert.Equal(50, good.Count);
        Assert.All(good, r =>
        {
            Assert.Equal((int)StatusCode.OK, r.Status.Code);
            Assert.Equal(string.Empty, r.Status.Message);
            Assert.Equal(1, r.Response.RoutedGroups);
            Assert.NotEmpty(r.Response.EventId);
        });
        Assert.Equal(50, good.Select(r => r.Response.EventId).Distinct().Count());
        var group = Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        Assert.Equal(50, group.Backlog);

        // The stream did not end: a later request is answered, and a key repeated inside one request is a duplicate.
        var next = new RaiseStreamRequest
        {
            Items =
            {
                new RaiseItem { Sequence = 100, Raise = new RaiseRequest { Event = "user_created", IdempotencyKey = "k" } },
                new RaiseItem { Sequence = 101, Raise = new RaiseRequest { Event = "user_created", IdempotencyKey = "k" } },
                new RaiseItem { Sequence = 102, Raise = new RaiseRequest { Event = "nobody_listens" } },
                new RaiseItem { Sequence = 103 },
            },
        };
        await call.RequestStream.WriteAsync(next, TestContext.Current.CancellationToken);
        var more = (await ReadResultsAsync(call, 4)).ToDictionary(r => r.Sequence);
        Assert.False(more[100].Response.Duplicate);
        Assert.True(more[101].Response.Duplicate);
        Assert.Equal(more[100].Response.EventId, more[101].Response.EventId);
        Assert.Equal(0, more[102].Response.RoutedGroups);
        Assert.Equal(string.Empty, more[102].Response.EventId);
        Assert.Equal((int)StatusCode.InvalidArgument, more[103].Status.Code);
        Assert.Contains("event is required", more[103].Status.Message, StringComparison.Ordinal);

        // Half-closing ends the stream cleanly.
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_answers_a_wait_mode_item_when_its_outcome_arrives_in_a_later_message()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        using var call = _broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(
            new RaiseStreamRequest
            {
                Items =
                {
                    new RaiseItem { Sequence = 1, Raise = new RaiseRequest { Event = "user_created", Args = Args.Of(new { waits = true }), WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(30)) } },
                    new RaiseItem { Sequence = 2, Raise = new RaiseRequest { Event = "user_created", Args = Args.Of(new { waits = false }) } },
                },
            },
            TestContext.Current.CancellationToken);

        // The plain item is answered at once; the waiting one is not.
        var first = await ReadMessageAsync(call);
        Assert.Equal([2UL], first.Results.Select(r => r.Sequence));
        var deliveries = await worker.TakeAsync(2);

        var waited = deliveries.Single(d => d.Args.Fields["waits"].BoolValue);
        await worker.NackAsync(waited, "smtp down", TimeSpan.FromSeconds(5));
        var second = await ReadMessageAsync(call);
        var result = Assert.Single(second.Results);
        Assert.Equal(1UL, result.Sequence);
        Assert.Equal((int)StatusCode.OK, result.Status.Code);
        Assert.Equal(waited.EventId, result.Response.EventId);
        var outcome = Assert.Single(result.Response.Outcomes);
        Assert.Equal(Outcome.Failed, outcome.Outcome);
        Assert.Equal("smtp down", outcome.Error);
        Assert.True(outcome.WillRetry);
    }

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_answers_waiting_items_before_it_ends_after_the_client_half_closes()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        using var call = _broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(
            new RaiseStreamRequest { Items = { new RaiseItem { Sequence = 7, Raise = new RaiseRequest { Event = "user_created", WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(30)) } } } },
            TestContext.Current.CancellationToken);
        await call.RequestStream.CompleteAsync();
        await worker.AckAsync(await worker.NextAsync());

        var result = Assert.Single((await ReadMessageAsync(call)).Results);
        Assert.Equal(7UL, result.Sequence);
        Assert.Equal(Outcome.Handled, Assert.Single(result.Response.Outcomes).Outcome);
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_checks_a_wait_timeout_against_the_streams_deadline()
    {
        await MakeOfflineGroupAsync(_broker, "email-sender", "user_created");
        using var call = _broker.Client.RaiseStream(deadline: DateTime.UtcNow.AddSeconds(20), cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(
            new RaiseStreamRequest { Items = { new RaiseItem { Sequence = 1, Raise = new RaiseRequest { Event = "user_created", WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(25)) } } } },
            TestContext.Current.CancellationToken);

        var result = Assert.Single((await ReadMessageAsync(call)).Results);
        Assert.Equal((int)StatusCode.InvalidArgument, result.Status.Code);
        Assert.Contains("shorter than the call's deadline", result.Status.Message, StringComparison.Ordinal);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 30_000)]
    public async Task RaiseStream_refuses_a_wait_timeout_past_a_Durations_range_alone_and_stores_the_items_beside_it()
    {
        await MakeOfflineGroupAsync(_broker, "email-sender", "user_created");
        using var call = _broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(
            new RaiseStreamRequest
            {
                Items =
                {
                    new RaiseItem { Sequence = 1, Raise = new RaiseRequest { Event = "user_created" } },
                    new RaiseItem { Sequence = 2, Raise = new RaiseRequest { Event = "user_created", WaitTimeout = new Duration { Seconds = 400_000_000_000 } } },
                },
            },
            TestContext.Current.CancellationToken);
        await call.RequestStream.CompleteAsync();

        var bySequence = (await ReadResultsAsync(call, 2)).ToDictionary(r => r.Sequence);
        Assert.Equal((int)StatusCode.OK, bySequence[1].Status.Code);
        Assert.NotEmpty(bySequence[1].Response.EventId);
        Assert.Equal((int)StatusCode.InvalidArgument, bySequence[2].Status.Code);
        Assert.Contains("wait_timeout 400000000000s is longer than the limit of 300s", bySequence[2].Status.Message, StringComparison.Ordinal);
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    // ---- WatchInterest -------------------------------------------------------------------------------------------

    [Fact(Timeout = 30_000)]
    public async Task WatchInterest_starts_with_a_snapshot_and_sends_a_new_one_with_a_higher_version_on_each_change()
    {
        using var call = _broker.Client.WatchInterest(new WatchInterestRequest(), cancellationToken: TestContext.Current.CancellationToken);

        var initial = await NextSnapshotAsync(call);
        Assert.Empty(initial.Patterns);

        await using var email = await _broker.SubscribeAsync("email-sender", ["user_created", "user.*"]);
        var afterEmail = await SnapshotWithAsync(call, ["user.*", "user_created"]);
        Assert.True(afterEmail.Version > initial.Version);

        await using var audit = await _broker.SubscribeAsync("audit", ["user_created", "billing.>"]);
        var afterAudit = await SnapshotWithAsync(call, ["billing.>", "user.*", "user_created"]);
        Assert.True(afterAudit.Version > afterEmail.Version);

        await _broker.Admin.RemovePatternsAsync(new RemovePatternsRequest { Group = "email-sender", Patterns = { "user.*" } }, cancellationToken: TestContext.Current.CancellationToken);
        var afterRemove = await SnapshotWithAsync(call, ["billing.>", "user_created"]);
        Assert.True(afterRemove.Version > afterAudit.Version);

        await _broker.Admin.DeleteGroupAsync(new DeleteGroupRequest { Group = "audit" }, cancellationToken: TestContext.Current.CancellationToken);
        var afterDelete = await SnapshotWithAsync(call, ["user_created"]);
        Assert.True(afterDelete.Version > afterRemove.Version);
        await audit.Ended.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_new_watcher_gets_the_current_patterns_in_its_first_snapshot()
    {
        await MakeOfflineGroupAsync(_broker, "email-sender", "user_created");
        using var call = _broker.Client.WatchInterest(new WatchInterestRequest(), cancellationToken: TestContext.Current.CancellationToken);

        var first = await NextSnapshotAsync(call);

        Assert.Equal(["user_created"], first.Patterns);
    }

    // ---- Backlog limit -------------------------------------------------------------------------------------------

    [Fact(Timeout = 30_000)]
    public async Task A_raise_beyond_a_groups_backlog_limit_is_resource_exhausted_naming_the_group_and_the_setting()
    {
        await using var broker = await BrokerTestHost.StartAsync(new Dictionary<string, string?> { ["Defaults:MaxBacklog"] = "2" });
        await MakeOfflineGroupAsync(broker, "email-sender", "user_created");
        await MakeOfflineGroupAsync(broker, "audit", "user_created");

        await broker.RaiseAsync("user_created");
        await broker.RaiseAsync("user_created");
        var error = await Assert.ThrowsAsync<RpcException>(() => broker.RaiseAsync("user_created"));

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("group 'audit' has reached its backlog limit of 2", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("MaxBacklog", error.Status.Detail, StringComparison.Ordinal);

        // Nothing was stored for the refused raise, in any group.
        var groups = (await broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups;
        Assert.All(groups, g => Assert.Equal(2, g.Backlog));
        var stats = await broker.Admin.GetStatsAsync(new GetStatsRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(2UL, stats.RaisedEvents);

        // Once a worker drains one, there is room again.
        await using var worker = await broker.SubscribeAsync("audit", ["user_created"]);
        await worker.AckAsync(await worker.NextAsync());
        await using var email = await broker.SubscribeAsync("email-sender", ["user_created"]);
        await email.AckAsync(await email.NextAsync());
        Assert.Equal(2, (await broker.RaiseAsync("user_created")).RoutedGroups);
        Assert.Empty(broker.Logs.Errors);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_per_group_backlog_limit_overrides_the_default_and_applies_in_raise_streams_per_item()
    {
        await using var broker = await BrokerTestHost.StartAsync(new Dictionary<string, string?> { ["Groups:email-sender:MaxBacklog"] = "1" });
        await MakeOfflineGroupAsync(broker, "email-sender", "user_created");
        using var call = broker.Client.RaiseStream(cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(
            new RaiseStreamRequest
            {
                Items =
                {
                    new RaiseItem { Sequence = 1, Raise = new RaiseRequest { Event = "user_created" } },
                    new RaiseItem { Sequence = 2, Raise = new RaiseRequest { Event = "user_created" } },
                },
            },
            TestContext.Current.CancellationToken);

        var results = (await ReadResultsAsync(call, 2)).ToDictionary(r => r.Sequence);
        Assert.Equal((int)StatusCode.OK, results[1].Status.Code);
        Assert.Equal((int)StatusCode.ResourceExhausted, results[2].Status.Code);
        Assert.Contains("group 'email-sender' has reached its backlog limit of 1", results[2].Status.Message, StringComparison.Ordinal);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Empty(broker.Logs.Errors);
    }

    // ---- Shutdown ------------------------------------------------------------------------------------------------

    [Fact(Timeout = 30_000)]
    public async Task Stopping_ends_subscriber_streams_with_unavailable_and_releases_their_leases()
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var raised = await _broker.RaiseAsync("user_created");
        var held = await worker.NextAsync();
        Assert.Equal(raised.EventId, held.EventId);

        await _broker.StopAsync();

        var ended = await worker.Ended.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(StatusCode.Unavailable, ended?.StatusCode);
        Assert.Contains("shutting down", ended!.Status.Detail, StringComparison.Ordinal);
        await worker.DisposeAsync();

        // The lease went back to pending at once (no expiry needed): nothing is lost, nothing is in flight.
        var store = _broker.Services.GetRequiredService<IHookStore>();
        GroupStats stats;
        do
        {
            stats = Assert.Single(await store.GetGroupStatsAsync(_broker.Time.GetUtcNow(), TestContext.Current.CancellationToken));
            if (stats.InFlight != 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), TestContext.Current.CancellationToken);
            }
        }
        while (stats.InFlight != 0);

        Assert.Equal(1, stats.Backlog);
        Assert.Equal(0, stats.DeadLetters);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stopping_answers_a_waiting_raise_with_what_is_known_and_ends_watchers_with_unavailable()
    {
        await MakeOfflineGroupAsync(_broker, "email-sender", "user_created");
        using var watch = _broker.Client.WatchInterest(new WatchInterestRequest(), cancellationToken: TestContext.Current.CancellationToken);
        await NextSnapshotAsync(watch);
        var waiting = _broker.RaiseAsync("user_created", configure: r => r.WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromMinutes(1)));
        await WaitForGroupBacklogAsync(1);

        await _broker.StopAsync();

        var response = await waiting;
        Assert.NotEmpty(response.EventId);
        Assert.Equal(Outcome.TimedOut, Assert.Single(response.Outcomes).Outcome);
        var ended = await Assert.ThrowsAsync<RpcException>(() => watch.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
    }

    // ---- Configuration -------------------------------------------------------------------------------------------

    [Theory(Timeout = 30_000)]
    [InlineData("Defaults:MaxAttempts", "0", "HookBroker:Defaults:MaxAttempts 0 must be 1-1000")]
    [InlineData("GrpcPort", "0", "HookBroker:GrpcPort 0 must be 1-65535")]
    [InlineData("DefaultMaxInFlight", "20000", "HookBroker:DefaultMaxInFlight 20000 must be 1-10000")]
    [InlineData("MaxArgsBytes", "100", "HookBroker:MaxArgsBytes 100 must be 1024 to 4128768")]
    [InlineData("Defaults:AckDeadline", "00:00:00.5", "HookBroker:Defaults:AckDeadline")]
    [InlineData("Groups:email-sender:MaxBacklog", "0", "HookBroker:Groups:email-sender:MaxBacklog 0 must be at least 1")]
    [InlineData("Groups:bad!name:MaxAttempts", "3", "group 'bad!name' contains '!'")]
    public async Task An_invalid_setting_fails_the_start_naming_the_setting(string key, string value, string expected)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => BrokerTestHost.StartAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(error.Failures, f => f.Contains(expected, StringComparison.Ordinal));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_backoff_start_above_its_maximum_fails_the_start()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => BrokerTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Defaults:BackoffInitial"] = "00:05:00",
            ["Defaults:BackoffMax"] = "00:01:00",
        }));

        Assert.Contains("HookBroker:Defaults:BackoffInitial 00:05:00 must not exceed BackoffMax 00:01:00", error.Message, StringComparison.Ordinal);
    }

    // ---- Helpers -------------------------------------------------------------------------------------------------

    private static async Task MakeOfflineGroupAsync(BrokerTestHost broker, string group, string label)
    {
        var worker = await broker.SubscribeAsync(group, [label]);
        await worker.LeaveAsync();
        await worker.DisposeAsync();
    }

    private async Task WaitForGroupBacklogAsync(long backlog)
    {
        while (Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups).Backlog != backlog)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), TestContext.Current.CancellationToken);
        }
    }

    private static async Task<RaiseStreamResponse> ReadMessageAsync(AsyncDuplexStreamingCall<RaiseStreamRequest, RaiseStreamResponse> call)
    {
        Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken), "the raise stream ended early");
        return call.ResponseStream.Current;
    }

    /// <summary>Reads response messages until <paramref name="count"/> results arrived (they may be split over messages).</summary>
    private static async Task<List<RaiseResult>> ReadResultsAsync(AsyncDuplexStreamingCall<RaiseStreamRequest, RaiseStreamResponse> call, int count)
    {
        var results = new List<RaiseResult>();
        while (results.Count < count)
        {
            results.AddRange((await ReadMessageAsync(call)).Results);
        }

        Assert.Equal(count, results.Count);
        return results;
    }

    private static async Task<InterestSnapshot> NextSnapshotAsync(AsyncServerStreamingCall<InterestSnapshot> call)
    {
        Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken), "the interest stream ended early");
        return call.ResponseStream.Current;
    }

    /// <summary>Reads snapshots until one holds exactly <paramref name="patterns"/> (changes may coalesce or come in steps).</summary>
    private static async Task<InterestSnapshot> SnapshotWithAsync(AsyncServerStreamingCall<InterestSnapshot> call, string[] patterns)
    {
        var previous = 0UL;
        while (true)
        {
            var snapshot = await NextSnapshotAsync(call);
            Assert.True(snapshot.Version > previous);
            previous = snapshot.Version;
            if (snapshot.Patterns.SequenceEqual(patterns))
            {
                return snapshot;
            }
        }
    }
}
