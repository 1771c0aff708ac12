using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>
/// Every rule of the contract, broken over the wire: refused with the documented code and a message naming the rule or
/// limit, and the broker keeps serving.
/// </summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() => _broker = await BrokerTestHost.StartAsync();

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
    }

    // ---- Raise: labels, args, headers, keys ------------------------------------------------------------------------

    [Theory(Timeout = 30_000)]
    [InlineData("", "event is required")]
    [InlineData("user created", "contains '\\u0020'")]
    [InlineData("user/created", "contains '/'")]
    [InlineData("user*", "contains '*'")]
    public async Task A_raise_with_a_bad_label_is_invalid_argument_naming_the_rule(string label, string expected)
    {
        var error = await RaiseFailsAsync(new RaiseRequest { Event = label });

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("[A-Za-z0-9_.:-]", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task A_label_of_201_chars_is_invalid_argument_naming_the_200_char_limit()
    {
        var error = await RaiseFailsAsync(new RaiseRequest { Event = new string('a', 201) });

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("201 chars", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("at most 200", error.Status.Detail, StringComparison.Ordinal);

        // 200 is fine.
        Assert.Equal(0, (await _broker.RaiseAsync(new string('a', 200))).RoutedGroups);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task Args_over_256_KiB_are_resource_exhausted_naming_the_limit_and_the_setting()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var args = new Struct { Fields = { ["blob"] = Value.ForString(new string('x', 256 * 1024)) } };

        var error = await RaiseFailsAsync(new RaiseRequest { Event = "user_created", Args = args });

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("limit is 262144 bytes", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("HookBroker:MaxArgsBytes", error.Status.Detail, StringComparison.Ordinal);
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(50)));

        // Just under the limit is stored and delivered.
        var fits = new Struct { Fields = { ["blob"] = Value.ForString(new string('x', 255 * 1024)) } };
        var raised = await _broker.Client.RaiseAsync(new RaiseRequest { Event = "user_created", Args = fits }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(raised.EventId, (await worker.NextAsync()).EventId);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(33)]
    public async Task Args_nested_deeper_than_32_are_invalid_argument_naming_the_depth_limit(int depth)
    {
        var error = await RaiseFailsAsync(new RaiseRequest { Event = "user_created", Args = Nested(depth) });

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains($"nested {depth} levels deep", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("limit is 32", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("HookBroker:MaxArgsDepth", error.Status.Detail, StringComparison.Ordinal);

        // Exactly the limit is fine.
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var raised = await _broker.Client.RaiseAsync(new RaiseRequest { Event = "user_created", Args = Nested(32) }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(raised.EventId, (await worker.NextAsync()).EventId);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(34)]
    [InlineData(100)]
    public async Task Args_nested_beyond_protobufs_parse_limit_are_still_invalid_argument_naming_the_depth_limit(int depth)
    {
        var error = await RaiseFailsAsync(new RaiseRequest { Event = "user_created", Args = Nested(depth) });

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("HookBroker:MaxArgsDepth", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task Args_nested_in_lists_count_towards_the_depth_limit()
    {
        // A list is a level too: 16 structs each holding a list holding the next struct make 33 levels.
        var args = new Struct();
        for (var i = 0; i < 16; i++)
        {
            args = new Struct { Fields = { ["l"] = Value.ForList(Value.ForStruct(args)) } };
        }

        var error = await RaiseFailsAsync(new RaiseRequest { Event = "user_created", Args = args });

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("nested 33 levels deep", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task Sixty_five_headers_are_invalid_argument_naming_the_limit_of_64()
    {
        var request = new RaiseRequest { Event = "user_created" };
        for (var i = 0; i < 65; i++)
        {
            request.Headers[$"h{i}"] = "v";
        }

        var error = await RaiseFailsAsync(request);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("headers has 65 entries; at most 64", error.Status.Detail, StringComparison.Ordinal);
        request.Headers.Remove("h64");
        Assert.Equal(0, (await _broker.Client.RaiseAsync(request, cancellationToken: TestContext.Current.CancellationToken)).RoutedGroups);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData(129, 1, "headers key")]
    [InlineData(4, 4097, "at most 4096")]
    public async Task An_oversized_header_key_or_value_is_invalid_argument(int keyLength, int valueLength, string expected)
    {
        var request = new RaiseRequest { Event = "user_created", Headers = { [new string('k', keyLength)] = new string('v', valueLength) } };

        var error = await RaiseFailsAsync(request);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData("idempotency_key")]
    [InlineData("ordering_key")]
    [InlineData("source")]
    public async Task A_key_of_201_chars_is_invalid_argument_naming_the_field_and_the_limit(string field)
    {
        var request = new RaiseRequest { Event = "user_created" };
        var value = new string('k', 201);
        switch (field)
        {
            case "idempotency_key":
                request.IdempotencyKey = value;
                break;
            case "ordering_key":
                request.OrderingKey = value;
                break;
            default:
                request.Source = value;
                break;
        }

        var error = await RaiseFailsAsync(request);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal($"{field} is 201 chars; at most 200", error.Status.Detail);
        await AssertStillServingAsync();
    }

    // ---- Subscribe: group, patterns, max_in_flight, stream order ---------------------------------------------------

    [Theory(Timeout = 30_000)]
    [InlineData("user*", "uses '*' inside a segment")]
    [InlineData("user.*x", "uses '*' inside a segment")]
    [InlineData("a.>.b", "'>' before its last segment")]
    [InlineData("", "empty pattern")]
    [InlineData("user created", "contains '\\u0020'")]
    [InlineData("user/created", "contains '/'")]
    public async Task A_subscribe_with_a_bad_pattern_is_invalid_argument_naming_the_rule(string pattern, string expected)
    {
        var error = await SubscribeFailsAsync("email-sender", ["user_created", pattern]);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("subscribe.events", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(expected, error.Status.Detail, StringComparison.Ordinal);

        // Nothing of the refused subscription was kept.
        Assert.Empty((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task A_subscribe_without_events_is_invalid_argument()
    {
        var error = await SubscribeFailsAsync("email-sender", []);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("subscribe.events is empty", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData("", "subscribe.group is required")]
    [InlineData("email/sender", "contains '/'")]
    [InlineData("email:sender", "contains ':'")]
    public async Task A_subscribe_with_a_bad_group_name_is_invalid_argument_naming_the_rule(string group, string expected)
    {
        var error = await SubscribeFailsAsync(group, ["user_created"]);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("[A-Za-z0-9_.-]", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task A_group_name_of_101_chars_is_invalid_argument_naming_the_100_char_limit()
    {
        var error = await SubscribeFailsAsync(new string('g', 101), ["user_created"]);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("101 chars", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("at most 100", error.Status.Detail, StringComparison.Ordinal);

        await using var worker = await _broker.SubscribeAsync(new string('g', 100), ["user_created"]);
        Assert.Equal(new string('g', 100), worker.Info!.Group);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_subscribe_with_more_than_1000_patterns_or_a_worker_name_over_200_chars_is_invalid_argument()
    {
        var tooMany = await SubscribeFailsAsync("email-sender", [.. Enumerable.Range(0, 1001).Select(i => $"label_{i}")]);
        Assert.Equal(StatusCode.InvalidArgument, tooMany.StatusCode);
        Assert.Contains("subscribe.events has 1001 patterns; at most 1000", tooMany.Status.Detail, StringComparison.Ordinal);

        using var call = _broker.Client.Subscribe(cancellationToken: TestContext.Current.CancellationToken);
        await call.RequestStream.WriteAsync(
            new SubscribeRequest { Subscribe = new SubscribeStart { Group = "email-sender", Events = { "user_created" }, WorkerName = new string('w', 201) } },
            TestContext.Current.CancellationToken);
        var longName = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));
        Assert.Equal(StatusCode.InvalidArgument, longName.StatusCode);
        Assert.Contains("subscribe.worker_name is 201 chars; at most 200", longName.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData(-1)]
    [InlineData(10_001)]
    public async Task A_max_in_flight_out_of_range_is_invalid_argument_naming_the_range(int maxInFlight)
    {
        var error = await SubscribeFailsAsync("email-sender", ["user_created"], maxInFlight);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains($"subscribe.max_in_flight {maxInFlight} is out of range; use 1-10000", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData(0, 100)]
    [InlineData(1, 1)]
    [InlineData(10_000, 10_000)]
    public async Task Max_in_flight_zero_means_the_default_and_the_bounds_are_accepted(int asked, int expected)
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"], asked);

        Assert.Equal(expected, worker.Info!.MaxInFlight);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_subscribe_stream_whose_first_message_is_not_subscribe_is_failed_precondition()
    {
        using var call = _broker.Client.Subscribe(cancellationToken: TestContext.Current.CancellationToken);
        await call.RequestStream.WriteAsync(new SubscribeRequest { Acks = { "1.1" } }, TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("first message of a Subscribe stream must carry 'subscribe'", error.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task A_second_subscribe_on_the_same_stream_is_failed_precondition_and_its_leases_are_released()
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var raised = await _broker.RaiseAsync("user_created");
        await worker.NextAsync();

        await worker.SendAsync(new SubscribeRequest { Subscribe = new SubscribeStart { Group = "email-sender", Events = { "user.*" } } });

        var ended = await worker.Ended.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(StatusCode.FailedPrecondition, ended?.StatusCode);
        Assert.Contains("'subscribe' may only be sent once", ended!.Status.Detail, StringComparison.Ordinal);
        await worker.DisposeAsync();

        // The refused stream's lease went back at once, and the refused patterns were not added.
        await using var next = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var again = await next.NextAsync();
        Assert.Equal(raised.EventId, again.EventId);
        Assert.Equal(2, again.Attempt);
        var group = Assert.Single((await _broker.Admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: TestContext.Current.CancellationToken)).Groups);
        Assert.Equal(["user_created"], group.Patterns);
    }

    // ---- Settlements: bad items get their own status; the stream goes on -------------------------------------------

    [Fact(Timeout = 30_000)]
    public async Task A_malformed_delivery_id_is_invalid_while_the_valid_ack_beside_it_is_confirmed_and_the_stream_goes_on()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        await worker.SendAsync(new SubscribeRequest { Acks = { "nope", delivery.DeliveryId } });

        var confirmations = new[] { await worker.NextConfirmationAsync(), await worker.NextConfirmationAsync() };
        var invalid = confirmations.Single(c => c.DeliveryId == "nope");
        Assert.Equal(SettleKind.Ack, invalid.Kind);
        Assert.Equal(SettleStatus.Invalid, invalid.Status);
        Assert.Contains("'nope' is not a delivery id issued by this broker", invalid.Message, StringComparison.Ordinal);
        var confirmed = confirmations.Single(c => c.DeliveryId == delivery.DeliveryId);
        Assert.Equal(SettleKind.Ack, confirmed.Kind);
        Assert.Equal(SettleStatus.Confirmed, confirmed.Status);

        await AssertWorkerStillServedAsync(worker);
    }

    [Theory(Timeout = 30_000)]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("1.")]
    [InlineData(".1")]
    [InlineData("-1.1")]
    [InlineData("0.1")]
    [InlineData("1.1.1")]
    [InlineData("99999999999999999999.1")]
    public async Task Garbage_delivery_ids_are_answered_invalid(string id)
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        await worker.SendAsync(new SubscribeRequest { Acks = { id } });

        var confirmation = await worker.NextConfirmationAsync();
        Assert.Equal(id, confirmation.DeliveryId);
        Assert.Equal(SettleStatus.Invalid, confirmation.Status);
        Assert.Contains("is not a delivery id issued by this broker", confirmation.Message, StringComparison.Ordinal);
        await AssertWorkerStillServedAsync(worker);
    }

    [Fact(Timeout = 30_000)]
    public async Task An_unknown_but_well_formed_delivery_id_is_stale_for_every_kind()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        await worker.SendAsync(new SubscribeRequest
        {
            Acks = { "999.1" },
            Nacks = { new Nack { DeliveryId = "999.2", Error = "x" } },
            Extends = { new Extend { DeliveryId = "999.3" } },
            Rejects = { new Reject { DeliveryId = "999.4", Error = "x" } },
        });

        var confirmations = new List<SettleConfirmation>();
        for (var i = 0; i < 4; i++)
        {
            confirmations.Add(await worker.NextConfirmationAsync());
        }

        Assert.Equal(
            [("999.1", SettleKind.Ack), ("999.2", SettleKind.Nack), ("999.3", SettleKind.Extend), ("999.4", SettleKind.Reject)],
            confirmations.Select(c => (c.DeliveryId, c.Kind)).Order());
        Assert.All(confirmations, c => Assert.Equal(SettleStatus.Stale, c.Status));
        Assert.All(confirmations, c => Assert.NotEmpty(c.Message));
        await AssertWorkerStillServedAsync(worker);
    }

    [Fact(Timeout = 30_000)]
    public async Task Settling_another_workers_lease_is_stale_and_changes_nothing()
    {
        await using var holder = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await holder.NextAsync();
        await using var other = await _broker.SubscribeAsync("email-sender", ["user_created"]);

        await other.SendAsync(new SubscribeRequest { Acks = { delivery.DeliveryId }, Rejects = { new Reject { DeliveryId = delivery.DeliveryId, Error = "x" } } });

        var first = await other.NextConfirmationAsync();
        var second = await other.NextConfirmationAsync();
        Assert.All(new[] { first, second }, c =>
        {
            Assert.Equal(SettleStatus.Stale, c.Status);
            Assert.Contains("does not hold that lease", c.Message, StringComparison.Ordinal);
        });
        Assert.Equal(SettleStatus.Confirmed, (await holder.AckAsync(delivery)).Status);
        Assert.Empty((await _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = "email-sender" }, cancellationToken: TestContext.Current.CancellationToken)).DeadLetters);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_second_settlement_of_the_same_lease_in_one_message_is_stale()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        await worker.SendAsync(new SubscribeRequest { Acks = { delivery.DeliveryId, delivery.DeliveryId } });

        var statuses = new[] { (await worker.NextConfirmationAsync()).Status, (await worker.NextConfirmationAsync()).Status };
        Assert.Equal(new[] { SettleStatus.Confirmed, SettleStatus.Stale }, statuses.Order());
        await AssertWorkerStillServedAsync(worker);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_with_a_negative_delay_is_invalid_and_leaves_the_lease_held()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        await worker.SendAsync(new SubscribeRequest { Nacks = { new Nack { DeliveryId = delivery.DeliveryId, Delay = new Duration { Seconds = -5 }, Error = "x" } } });

        var confirmation = await worker.NextConfirmationAsync();
        Assert.Equal(SettleKind.Nack, confirmation.Kind);
        Assert.Equal(SettleStatus.Invalid, confirmation.Status);
        Assert.Contains("nack.delay must not be negative", confirmation.Message, StringComparison.Ordinal);

        // Nothing changed: the worker still holds the lease and can ack it.
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_nack_delay_over_24_hours_is_invalid_naming_the_limit()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        var confirmation = await worker.NackAsync(delivery, "x", TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));

        Assert.Equal(SettleStatus.Invalid, confirmation.Status);
        Assert.Contains("nack.delay 86401s is longer than the limit of 86400s", confirmation.Message, StringComparison.Ordinal);
        Assert.Equal(SettleStatus.Confirmed, (await worker.NackAsync(delivery, "x", TimeSpan.FromHours(24))).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task An_extend_longer_than_one_hour_is_invalid_naming_the_limit()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created");
        var delivery = await worker.NextAsync();

        var confirmation = await worker.ExtendAsync(delivery, TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));

        Assert.Equal(SettleKind.Extend, confirmation.Kind);
        Assert.Equal(SettleStatus.Invalid, confirmation.Status);
        Assert.Contains("extend.lease 3601s is longer than the limit of 3600s", confirmation.Message, StringComparison.Ordinal);

        var allowed = await worker.ExtendAsync(delivery, TimeSpan.FromHours(1));
        Assert.Equal(SettleStatus.Confirmed, allowed.Status);
        Assert.Equal(_broker.Time.GetUtcNow() + TimeSpan.FromHours(1), allowed.LeaseExpiresAt.ToDateTimeOffset());
    }

    [Fact(Timeout = 30_000)]
    public async Task Durations_past_their_valid_range_are_invalid_items_and_the_acks_beside_them_still_apply()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await _broker.RaiseAsync("user_created", new { n = 1 });
        await _broker.RaiseAsync("user_created", new { n = 2 });
        await _broker.RaiseAsync("user_created", new { n = 3 });
        var deliveries = await worker.TakeAsync(3);

        // Past a Duration's valid range (±315,576,000,000 s), which the wire does not stop a client from sending.
        var huge = new Duration { Seconds = 400_000_000_000 };
        var request = new SubscribeRequest { Acks = { deliveries[0].DeliveryId } };
        request.Nacks.Add(new Nack { DeliveryId = deliveries[1].DeliveryId, Delay = huge, Error = "x" });
        request.Extends.Add(new Extend { DeliveryId = deliveries[2].DeliveryId, Lease = huge });
        await worker.SendAsync(request);

        var answers = new[] { await worker.NextConfirmationAsync(), await worker.NextConfirmationAsync(), await worker.NextConfirmationAsync() }
            .ToDictionary(c => c.DeliveryId);
        Assert.Equal(SettleStatus.Confirmed, answers[deliveries[0].DeliveryId].Status);
        Assert.Equal(SettleStatus.Invalid, answers[deliveries[1].DeliveryId].Status);
        Assert.Contains("nack.delay 400000000000s is longer than the limit of 86400s", answers[deliveries[1].DeliveryId].Message, StringComparison.Ordinal);
        Assert.Equal(SettleStatus.Invalid, answers[deliveries[2].DeliveryId].Status);
        Assert.Contains("extend.lease 400000000000s is longer than the limit of 3600s", answers[deliveries[2].DeliveryId].Message, StringComparison.Ordinal);

        // The stream goes on, and the refused items changed nothing.
        Assert.False(worker.Ended.IsCompleted);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(deliveries[1])).Status);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(deliveries[2])).Status);
    }

    // ---- Admin ---------------------------------------------------------------------------------------------------

    [Theory(Timeout = 30_000)]
    [InlineData("list-dead-letters")]
    [InlineData("redrive")]
    [InlineData("remove-patterns")]
    [InlineData("delete-group")]
    public async Task Admin_calls_with_a_bad_group_name_are_invalid_argument_and_with_a_missing_group_not_found(string operation)
    {
        var invalid = await Assert.ThrowsAsync<RpcException>(() => AdminAsync(operation, "bad/group"));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("group 'bad/group' contains '/'", invalid.Status.Detail, StringComparison.Ordinal);

        var empty = await Assert.ThrowsAsync<RpcException>(() => AdminAsync(operation, string.Empty));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Contains("group is required", empty.Status.Detail, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<RpcException>(() => AdminAsync(operation, "nobody"));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Contains("group 'nobody' does not exist", missing.Status.Detail, StringComparison.Ordinal);

        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task Admin_argument_checks_come_before_the_group_lookup()
    {
        var noPatterns = await Assert.ThrowsAsync<RpcException>(() => _broker.Admin.RemovePatternsAsync(
            new RemovePatternsRequest { Group = "nobody" }, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noPatterns.StatusCode);
        Assert.Contains("patterns is empty", noPatterns.Status.Detail, StringComparison.Ordinal);

        var badId = await Assert.ThrowsAsync<RpcException>(() => _broker.Admin.RedriveDeadLettersAsync(
            new RedriveDeadLettersRequest { Group = "nobody", EventIds = { "abc" } }, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badId.StatusCode);
        Assert.Contains("event_ids contains 'abc', which is not an event id", badId.Status.Detail, StringComparison.Ordinal);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(1001, "", "page_size 1001 is out of range; use 1-1000")]
    [InlineData(-1, "", "page_size -1 is out of range; use 1-1000")]
    [InlineData(0, "garbage", "page_token is not one this broker issued")]
    [InlineData(0, "-5", "page_token is not one this broker issued")]
    public async Task List_dead_letters_with_a_bad_page_size_or_token_is_invalid_argument(int pageSize, string pageToken, string expected)
    {
        var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        await worker.LeaveAsync();
        await worker.DisposeAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => _broker.Admin.ListDeadLettersAsync(
            new ListDeadLettersRequest { Group = "email-sender", PageSize = pageSize, PageToken = pageToken },
            cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail, StringComparison.Ordinal);
        var page = await _broker.Admin.ListDeadLettersAsync(
            new ListDeadLettersRequest { Group = "email-sender", PageSize = 1000 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Empty(page.DeadLetters);
        Assert.Equal(string.Empty, page.NextPageToken);
    }

    [Fact(Timeout = 30_000)]
    public async Task Dead_letter_pages_follow_their_tokens_to_the_end()
    {
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user_created"]);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await _broker.RaiseAsync("user_created", new { n = i })).EventId);
        }

        foreach (var delivery in await worker.TakeAsync(5))
        {
            await worker.RejectAsync(delivery, "poison");
        }

        var seen = new List<string>();
        var token = string.Empty;
        var pages = 0;
        do
        {
            var page = await _broker.Admin.ListDeadLettersAsync(
                new ListDeadLettersRequest { Group = "email-sender", PageSize = 2, PageToken = token }, cancellationToken: TestContext.Current.CancellationToken);
            seen.AddRange(page.DeadLetters.Select(d => d.EventId));
            token = page.NextPageToken;
            pages++;
        }
        while (token.Length > 0 && pages < 10);

        Assert.Equal(ids, seen);
        Assert.Equal(3, pages);
    }

    // ---- Helpers ----------------------------------------------------------------------------------------------------

    private async Task<RpcException> RaiseFailsAsync(RaiseRequest request) =>
        await Assert.ThrowsAsync<RpcException>(() => _broker.Client.RaiseAsync(request, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync);

    private async Task<RpcException> SubscribeFailsAsync(string group, string[] events, int maxInFlight = 0)
    {
        await using var worker = new TestWorker(_broker.Client.Subscribe(cancellationToken: TestContext.Current.CancellationToken));
        return await Assert.ThrowsAsync<RpcException>(() => worker.SubscribeAsync(group, events, maxInFlight));
    }

    private Task AdminAsync(string operation, string group)
    {
        var token = TestContext.Current.CancellationToken;
        return operation switch
        {
            "list-dead-letters" => _broker.Admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = group }, cancellationToken: token).ResponseAsync,
            "redrive" => _broker.Admin.RedriveDeadLettersAsync(new RedriveDeadLettersRequest { Group = group }, cancellationToken: token).ResponseAsync,
            "remove-patterns" => _broker.Admin.RemovePatternsAsync(new RemovePatternsRequest { Group = group, Patterns = { "user_created" } }, cancellationToken: token).ResponseAsync,
            _ => _broker.Admin.DeleteGroupAsync(new DeleteGroupRequest { Group = group }, cancellationToken: token).ResponseAsync,
        };
    }

    /// <summary>A good raise right after a refused request is stored and delivered.</summary>
    private async Task AssertStillServingAsync()
    {
        await using var worker = await _broker.SubscribeAsync("still-serving", ["still.serving"]);
        var raised = await _broker.RaiseAsync("still.serving", new { ok = true });
        Assert.Equal(1, raised.RoutedGroups);
        var delivery = await worker.NextAsync();
        Assert.Equal(raised.EventId, delivery.EventId);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);
    }

    /// <summary>The worker's stream is still open: it gets the next event and its ack is confirmed.</summary>
    private async Task AssertWorkerStillServedAsync(TestWorker worker)
    {
        var raised = await _broker.RaiseAsync("user_created", new { after = "bad item" });
        var delivery = await worker.NextAsync();
        Assert.Equal(raised.EventId, delivery.EventId);
        Assert.Equal(SettleStatus.Confirmed, (await worker.AckAsync(delivery)).Status);
        Assert.False(worker.Ended.IsCompleted);
    }

    private static Struct Nested(int depth)
    {
        var args = new Struct { Fields = { ["leaf"] = Value.ForString("x") } };
        for (var level = 1; level < depth; level++)
        {
            args = new Struct { Fields = { ["n"] = Value.ForStruct(args) } };
        }

        return args;
    }
}
