using System.Collections.Concurrent;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.BlackBox.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using AdminApi = HookBroker.Protocol.V1.HookBrokerAdmin;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.BlackBox.Tests;

/// <summary>
/// Scale-out on the Redis engine, from outside: two real broker processes (nodes A and B) share one Redis (a single
/// redis-server, or a 3-master Redis Cluster) under one key prefix, and keep no state of their own. A worker on one node
/// gets what is raised on the other; a wait on A is completed by an ack on B; SIGKILL of node A in the middle of raises
/// and acks loses no answered raise and brings back no event whose ack was confirmed.
/// </summary>
public sealed class ScaleOutTests
{
    private const string Label = "order_placed";
    private static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RouteTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(30);

    [Fact(Timeout = 120_000)]
    public async Task A_worker_subscribed_on_node_B_receives_an_event_raised_on_node_A()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var redis = await RedisServerProcess.StartNewAsync(RedisPersistence.None, cancellationToken);
        await using var nodes = await TwoNodes.StartAsync(redis.Configuration, RedisServerProcess.NewKeyPrefix("scale-out"), partitions: null, ackDeadline: null, cancellationToken);
        using var channelA = nodes.A.CreateChannel();
        using var channelB = nodes.B.CreateChannel();
        await using var worker = await TestWorker.SubscribeAsync(new BrokerApi.HookBrokerClient(channelB), "fulfilment", [Label], 10, cancellationToken);

        var request = new RaiseRequest
        {
            Event = Label,
            Args = new Struct { Fields = { ["order"] = Value.ForString("A-1"), ["total"] = Value.ForNumber(42.5) } },
            Headers = { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
            IdempotencyKey = "order-A-1",
            Source = "node-a-raiser",
        };
        var raised = await RaiseUntilRoutedAsync(new BrokerApi.HookBrokerClient(channelA), request, cancellationToken);

        var delivery = await worker.NextDeliveryAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(raised.EventId, delivery.EventId);
        Assert.Equal(Label, delivery.Event);
        Assert.Equal(request.Args, delivery.Args);
        Assert.Equal(request.Headers["traceparent"], delivery.Headers["traceparent"]);
        Assert.Equal("node-a-raiser", delivery.Source);
        Assert.Equal(1, delivery.Attempt);
        await worker.AckAsync([delivery.DeliveryId], cancellationToken);
        var confirmation = await worker.NextConfirmationAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal((delivery.DeliveryId, SettleKind.Ack, SettleStatus.Confirmed), (confirmation.DeliveryId, confirmation.Kind, confirmation.Status));

        // The same key raised on node B is a duplicate of node A's event: idempotency keys live in Redis.
        var again = await new BrokerApi.HookBrokerClient(channelB).RaiseAsync(request, deadline: Deadline(), cancellationToken: cancellationToken);
        Assert.True(again.Duplicate, $"The repeat on node B was not a duplicate: {again}");
        Assert.Equal(raised.EventId, again.EventId);
        nodes.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_raise_waiting_on_node_A_completes_when_the_worker_acks_on_node_B()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var redis = await RedisServerProcess.StartNewAsync(RedisPersistence.None, cancellationToken);
        await using var nodes = await TwoNodes.StartAsync(redis.Configuration, RedisServerProcess.NewKeyPrefix("scale-wait"), partitions: null, ackDeadline: null, cancellationToken);
        using var channelA = nodes.A.CreateChannel();
        using var channelB = nodes.B.CreateChannel();
        await using var worker = await TestWorker.SubscribeAsync(new BrokerApi.HookBrokerClient(channelB), "fulfilment", [Label], 10, cancellationToken);
        var acked = new TaskCompletionSource<Delivery>(TaskCreationOptions.RunContinuationsAsynchronously);
        var acker = Task.Run(
            async () =>
            {
                var delivery = await worker.NextDeliveryAsync(RouteTimeout + DeliveryTimeout, cancellationToken);
                await worker.AckAsync([delivery.DeliveryId], cancellationToken);
                var confirmation = await worker.NextConfirmationAsync(DeliveryTimeout, cancellationToken);
                Assert.Equal(SettleStatus.Confirmed, confirmation.Status);
                acked.SetResult(delivery);
            },
            cancellationToken);

        var request = new RaiseRequest
        {
            Event = Label,
            Args = new Struct { Fields = { ["order"] = Value.ForString("W-1") } },
            WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(25)),
        };
        var response = await RaiseUntilRoutedAsync(new BrokerApi.HookBrokerClient(channelA), request, cancellationToken);

        await acker;
        var delivery = await acked.Task;
        Assert.Equal(delivery.EventId, response.EventId);
        var outcome = Assert.Single(response.Outcomes);
        Assert.Equal(("fulfilment", Outcome.Handled, 1), (outcome.Group, outcome.Outcome, outcome.Attempt));
        nodes.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 300_000)]
    public async Task SIGKILL_of_node_A_mid_stream_loses_no_answered_raise_and_redelivers_no_confirmed_ack_on_one_redis()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var redis = await RedisServerProcess.StartNewAsync(RedisPersistence.None, cancellationToken);

        await KillNodeMidStreamAsync(redis.Configuration, RedisServerProcess.NewKeyPrefix("scale-kill"), partitions: null, atKill: null, cancellationToken);
    }

    [Fact(Timeout = 300_000)]
    public async Task SIGKILL_of_node_A_mid_stream_loses_no_answered_raise_and_redelivers_no_confirmed_ack_on_a_redis_cluster()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var cluster = await RedisClusterProcess.StartNewAsync(RedisPersistence.None, cancellationToken);
        long[]? sizesAtKill = null;

        // 16 partitions over 3 masters: each master owns some (a fixed prefix keeps the slots the same run to run).
        await KillNodeMidStreamAsync(
            cluster.Configuration,
            "hb-cluster-kill",
            partitions: 16,
            atKill: async ct => sizesAtKill = await cluster.DbSizesAsync(ct),
            cancellationToken);

        Assert.NotNull(sizesAtKill);
        TestContext.Current.TestOutputHelper?.WriteLine($"Keys per master at the kill (DBSIZE): {string.Join(", ", sizesAtKill)}");
        Assert.True(sizesAtKill.All(size => size > 0), $"The broker's keys are not spread over the masters: DBSIZE per master = {string.Join(", ", sizesAtKill)}");
    }

    // ------------------------------------------------------------------------------------------ SIGKILL of a node

    private const string Group = "scale-out";
    private const int Raisers = 12;
    private const int TotalRaises = 3_000;
    private const int KillAfterAnsweredRaises = 1_000;
    private const int KillAfterConfirmedAcks = 100;
    // Node A's worker never acks the first attempt of these: at the kill, it holds leases only their expiry brings back.
    private const int HoldEvery = 37;
    private const int MaxInFlight = 64;
    private static readonly TimeSpan AckDeadline = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan KillTriggerTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Workers on both nodes in one group; raisers with idempotency keys on node A; node A SIGKILLed once enough raises
    /// were answered and acks confirmed. The raisers then resend every unanswered raise (same key) to node B and go on
    /// there; node A's worker subscribes again on node B. Checks: every raise answered, every answered event delivered
    /// under its one event id and acked (confirmed), none delivered again after a confirmed ack.
    /// </summary>
    private static async Task KillNodeMidStreamAsync(
        string redisConfiguration, string keyPrefix, int? partitions, Func<CancellationToken, Task>? atKill, CancellationToken cancellationToken)
    {
        var output = TestContext.Current.TestOutputHelper;
        await using var nodes = await TwoNodes.StartAsync(redisConfiguration, keyPrefix, partitions, AckDeadline, cancellationToken);
        using var channelA = nodes.A.CreateChannel();
        using var channelB = nodes.B.CreateChannel();
        var clientA = new BrokerApi.HookBrokerClient(channelA);
        var clientB = new BrokerApi.HookBrokerClient(channelB);
        var ledger = new Ledger();
        var killed = 0;

        var workerA = await TestWorker.SubscribeAsync(clientA, Group, [Label], MaxInFlight, cancellationToken);
        await using var workerB = await TestWorker.SubscribeAsync(clientB, Group, [Label], MaxInFlight, cancellationToken);
        Assert.Equal(AckDeadline, workerA.Subscribed.AckDeadline?.ToTimeSpan());
        var consumers = new List<Task>
        {
            ConsumeAsync(workerA, "A", ledger, hold: true, cancellationToken),
            ConsumeAsync(workerB, "B", ledger, hold: false, cancellationToken),
        };

        var next = -1;
        var raisers = Enumerable.Range(0, Raisers).Select(_ => Task.Run(RaiseWithFailoverAsync, cancellationToken)).ToArray();
        await Poll.UntilAsync(
            () =>
            {
                if (raisers.All(r => r.IsCompleted) || !ledger.Failures.IsEmpty)
                {
                    throw new InvalidOperationException(
                        $"Raising ended before the kill ({ledger.Answered.Count} answered, {ledger.ConfirmedAcks.Count} acks confirmed; "
                        + $"failures: {string.Join("; ", ledger.Failures.Take(5))}).\n{nodes.LogTails}");
                }

                return ledger.Answered.Count >= KillAfterAnsweredRaises && ledger.ConfirmedAcks.Count >= KillAfterConfirmedAcks;
            },
            KillTriggerTimeout,
            $"{KillAfterAnsweredRaises} answered raises and {KillAfterConfirmedAcks} confirmed acks",
            cancellationToken);

        if (atKill is not null)
        {
            await atKill(cancellationToken);
        }

        var answeredAtKill = ledger.Answered.Count;
        var confirmedAtKill = ledger.ConfirmedAcks.Count;
        Volatile.Write(ref killed, 1);
        await nodes.A.KillAsync(cancellationToken);

        // Node A's worker fails over too: its stream ends; it subscribes again, on node B.
        await consumers[0];
        await workerA.DisposeAsync();
        await using var workerAOnB = await TestWorker.SubscribeAsync(clientB, Group, [Label], MaxInFlight, cancellationToken);
        consumers.Add(ConsumeAsync(workerAOnB, "A-on-B", ledger, hold: false, cancellationToken));

        await Task.WhenAll(raisers);
        Assert.True(ledger.Failures.IsEmpty, string.Join('\n', ledger.Failures.Take(20)) + $"\n{nodes.LogTails}");
        var unanswered = Enumerable.Range(0, TotalRaises).Where(n => !ledger.Answered.ContainsKey(n)).ToList();
        Assert.True(unanswered.Count == 0, $"{unanswered.Count} raises never answered, e.g. n = {string.Join(", ", unanswered.Take(10))}");

        // Every answered event must be delivered and acked; a lease node A's worker held comes back after its deadline.
        // An ack node A applied just before it died is never answered: such an event is not delivered again, so it can
        // only be judged by asking storage (below), once the group has drained.
        try
        {
            await Poll.UntilAsync(
                () => ledger.Answered.Values.All(a => ledger.ConfirmedAcks.ContainsKey(a.EventId) || ledger.AckWritten(a.EventId)),
                DrainTimeout,
                "every answered raise to be delivered and acked",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            var lost = ledger.Answered.Where(a => !ledger.ConfirmedAcks.ContainsKey(a.Value.EventId) && !ledger.AckWritten(a.Value.EventId))
                .Select(a => a.Key).Order().ToList();
            Assert.Fail($"{e.Message} {lost.Count} answered raises without an ack: {ledger.Describe(lost.Take(10))}.\n{nodes.LogTails}");
        }

        // Nothing left in the group: only then can "never delivered again" be judged.
        var admin = new AdminApi.HookBrokerAdminClient(channelB);
        await Poll.UntilAsync(
            async () =>
            {
                var groups = await admin.ListGroupsAsync(new ListGroupsRequest(), deadline: Deadline(), cancellationToken: cancellationToken);
                var group = groups.Groups.SingleOrDefault(g => g.Name == Group)
                    ?? throw new InvalidOperationException($"Group {Group} is missing on node B: {groups}");
                return group.Backlog == 0 && group.InFlight == 0;
            },
            DrainTimeout,
            $"group {Group} to have no backlog and nothing in flight on node B",
            cancellationToken);

        // Events whose only ack went unanswered: storage must hold them as handled. A wait-mode raise of the same
        // idempotency key answers with the first event's outcome.
        var unconfirmed = ledger.Answered.Where(a => !ledger.ConfirmedAcks.ContainsKey(a.Value.EventId)).Select(a => a.Key).Order().ToList();
        foreach (var n in unconfirmed)
        {
            var again = await clientB.RaiseAsync(
                new RaiseRequest
                {
                    Event = Label,
                    IdempotencyKey = $"{keyPrefix}-{n}",
                    Args = new Struct { Fields = { ["n"] = Value.ForNumber(n) } },
                    WaitTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)),
                },
                deadline: Deadline(),
                cancellationToken: cancellationToken);
            Assert.True(again.Duplicate, $"raise n={n} again: not a duplicate ({again})");
            var outcome = Assert.Single(again.Outcomes);
            Assert.True(
                outcome.Outcome == Outcome.Handled,
                $"n={n}: its ack was written but never answered, and storage holds {outcome.Outcome} for it: {ledger.Describe([n])}");
        }

        await workerB.DisposeAsync();
        await workerAOnB.DisposeAsync();
        await Task.WhenAll(consumers);

        var answeredIds = ledger.Answered.ToDictionary(a => a.Value.EventId, a => a.Key);
        var byEvent = ledger.Deliveries.GroupBy(d => d.Delivery.EventId).ToDictionary(g => g.Key, g => g.ToList());
        var strangers = byEvent.Keys.Where(id => !answeredIds.ContainsKey(id)).ToList();
        var keysWithTwoEvents = byEvent.Values
            .Select(ds => (N: N(ds[0].Delivery), Id: ds[0].Delivery.EventId))
            .GroupBy(x => x.N)
            .Where(g => g.Count() > 1)
            .Select(g => $"n={g.Key}: events {string.Join(", ", g.Select(x => x.Id))}")
            .ToList();
        var backAfterConfirmedAck = new List<string>();
        foreach (var (eventId, deliveries) in byEvent)
        {
            if (ledger.ConfirmedAcks.TryGetValue(eventId, out var acked))
            {
                backAfterConfirmedAck.AddRange(deliveries
                    .Where(d => d.Delivery.DeliveryId != acked.DeliveryId && d.Delivery.Attempt >= acked.Attempt)
                    .Select(d => $"event {eventId} (n={N(d.Delivery)}): ack of attempt {acked.Attempt} confirmed, then attempt {d.Delivery.Attempt} delivered to {d.Worker}"));
            }
        }

        // Something was at stake: node A's worker held leases when node A died, which only node B could bring back.
        var heldAtKill = ledger.Deliveries.Count(d => d.Worker == "A" && d.Delivery.Attempt == 1 && N(d.Delivery) % HoldEvery == 0);
        Assert.True(heldAtKill > 0, "Node A's worker held no lease at the kill; nothing was at risk.");
        var redelivered = byEvent.Count(e => e.Value.Count > 1);
        var stale = ledger.Confirmations.Count(c => c.Status == SettleStatus.Stale);
        var answeredAcks = ledger.Confirmations.Select(c => c.DeliveryId).ToHashSet();
        var unconfirmedAcks = ledger.AckedDeliveries.Keys.Count(id => !answeredAcks.Contains(id));
        output?.WriteLine(
            $"At the kill: {answeredAtKill} raises answered, {confirmedAtKill} acks confirmed, {heldAtKill} leases held by node A's worker. In all: {ledger.Answered.Count} raises answered "
            + $"({ledger.AnsweredByB} by node B, {ledger.Answered.Values.Count(a => a.Duplicate)} as duplicates of a raise node A stored without answering), "
            + $"{ledger.Deliveries.Count} deliveries of {byEvent.Count} events, {redelivered} events delivered more than once, "
            + $"{stale} acks answered STALE, {unconfirmedAcks} acks written but never answered, {ledger.ConfirmedAcks.Count} acks confirmed.");

        Assert.True(strangers.Count == 0, $"Delivered events that no answered raise names: {string.Join(", ", strangers.Take(10))}");
        Assert.True(keysWithTwoEvents.Count == 0, "Idempotency keys stored twice (one event on each node): " + string.Join("; ", keysWithTwoEvents.Take(10)));
        Assert.True(backAfterConfirmedAck.Count == 0, $"{backAfterConfirmedAck.Count} deliveries of events whose ack was CONFIRMED: " + string.Join("; ", backAfterConfirmedAck.Take(10)));
        Assert.True(
            ledger.Confirmations.All(c => c.Status is SettleStatus.Confirmed or SettleStatus.Stale),
            "Acks answered neither CONFIRMED nor STALE: " + string.Join("; ", ledger.Confirmations.Where(c => c.Status is not (SettleStatus.Confirmed or SettleStatus.Stale)).Take(10)));
        nodes.B.AssertNoErrorsLogged();

        async Task RaiseWithFailoverAsync()
        {
            for (var n = Interlocked.Increment(ref next); n < TotalRaises; n = Interlocked.Increment(ref next))
            {
                var request = new RaiseRequest
                {
                    Event = Label,
                    IdempotencyKey = $"{keyPrefix}-{n}",
                    Args = new Struct { Fields = { ["n"] = Value.ForNumber(n) } },
                };
                if (Volatile.Read(ref killed) == 0)
                {
                    try
                    {
                        ledger.Answer(n, await clientA.RaiseAsync(request, deadline: Deadline(), cancellationToken: cancellationToken), byB: false);
                        continue;
                    }
                    catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
                    {
                        if (Volatile.Read(ref killed) == 0)
                        {
                            ledger.Failures.Enqueue($"raise n={n} failed on node A before the kill: {e.Status}");
                            return;
                        }

                        // Node A died with this raise unanswered: resend it, same key, to node B.
                    }
                }

                try
                {
                    ledger.Answer(n, await clientB.RaiseAsync(request, deadline: Deadline(), cancellationToken: cancellationToken), byB: true);
                }
                catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
                {
                    ledger.Failures.Enqueue($"raise n={n} failed on node B: {e.Status}");
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Records every delivery and acks it (in batches, as they come), except the first attempt of every
    /// <see cref="HoldEvery"/>-th when <paramref name="hold"/>; records every confirmation. Ends with the stream.
    /// </summary>
    private static async Task ConsumeAsync(TestWorker worker, string name, Ledger ledger, bool hold, CancellationToken cancellationToken)
    {
        var confirmations = Task.Run(
            async () =>
            {
                await foreach (var confirmation in worker.Confirmations.ReadAllAsync(cancellationToken))
                {
                    ledger.Confirm(confirmation);
                }
            },
            cancellationToken);
        var acks = new List<string>();
        while (await worker.Deliveries.WaitToReadAsync(cancellationToken))
        {
            acks.Clear();
            while (worker.Deliveries.TryRead(out var delivery))
            {
                ledger.Deliver(name, delivery);
                if (!(hold && delivery.Attempt == 1 && N(delivery) % HoldEvery == 0))
                {
                    acks.Add(delivery.DeliveryId);
                }
            }

            // Recorded before the write: a write that fails as the node dies may still have reached it.
            ledger.AcksWritten(acks);
            if (acks.Count > 0 && !await TrySendAcksAsync(worker, acks, cancellationToken))
            {
                break;
            }
        }

        await confirmations;
    }

    /// <summary>False once the stream is broken (its node was killed, or the test disposed it).</summary>
    private static async Task<bool> TrySendAcksAsync(TestWorker worker, List<string> acks, CancellationToken cancellationToken)
    {
        try
        {
            await worker.AckAsync(acks, cancellationToken);
            return true;
        }
        catch (RpcException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        catch (InvalidOperationException) when (!cancellationToken.IsCancellationRequested)
        {
            return false; // "the call is complete": the response side ended first
        }
    }

    private static int N(Delivery delivery) => (int)delivery.Args.Fields["n"].NumberValue;

    private static DateTime Deadline() => DateTime.UtcNow + CallDeadline;

    /// <summary>
    /// Raises until the raising node routes the event to a group (a group subscribed on the other node reaches this one
    /// through Redis; until then the raise is unrouted, which stores nothing).
    /// </summary>
    private static async Task<RaiseResponse> RaiseUntilRoutedAsync(BrokerApi.HookBrokerClient client, RaiseRequest request, CancellationToken cancellationToken)
    {
        RaiseResponse? response = null;
        await Poll.UntilAsync(
            async () =>
            {
                response = await client.RaiseAsync(request, deadline: Deadline(), cancellationToken: cancellationToken);
                return response.RoutedGroups > 0;
            },
            RouteTimeout,
            "node A to route the raise to the group subscribed on node B",
            cancellationToken);
        Assert.Equal(1, response!.RoutedGroups);
        Assert.False(response.Duplicate);
        return response;
    }

    /// <summary>What the kill test saw: answers, deliveries, confirmations.</summary>
    private sealed class Ledger
    {
        private readonly ConcurrentDictionary<string, Delivery> byDeliveryId = new();
        private int answeredByB;

        public ConcurrentDictionary<int, RaiseResponse> Answered { get; } = new();

        public ConcurrentQueue<(string Worker, Delivery Delivery)> Deliveries { get; } = new();

        public ConcurrentDictionary<string, bool> DeliveredEvents { get; } = new();

        public ConcurrentQueue<SettleConfirmation> Confirmations { get; } = new();

        /// <summary>Event id -> the delivery whose ack was CONFIRMED.</summary>
        public ConcurrentDictionary<string, Delivery> ConfirmedAcks { get; } = new();

        public ConcurrentQueue<string> Failures { get; } = new();

        public int AnsweredByB => Volatile.Read(ref answeredByB);

        public void Answer(int n, RaiseResponse response, bool byB)
        {
            if (response.RoutedGroups != 1 || string.IsNullOrEmpty(response.EventId) || (response.Duplicate && !byB))
            {
                Failures.Enqueue($"raise n={n} answered {response} by node {(byB ? "B" : "A")}: expected one group and an event id"
                    + (byB ? string.Empty : ", not a duplicate"));
            }

            if (!Answered.TryAdd(n, response))
            {
                Failures.Enqueue($"raise n={n} answered twice");
            }

            if (byB)
            {
                Interlocked.Increment(ref answeredByB);
            }
        }

        /// <summary>Delivery ids whose ack was written (or tried) on a stream, confirmed or not.</summary>
        public ConcurrentDictionary<string, bool> AckedDeliveries { get; } = new();

        /// <summary>Event id -> whether an ack of one of its deliveries was written.</summary>
        private ConcurrentDictionary<string, bool> AckedEvents { get; } = new();

        public void AcksWritten(IEnumerable<string> deliveryIds)
        {
            foreach (var id in deliveryIds)
            {
                AckedDeliveries[id] = true;
                AckedEvents[byDeliveryId[id].EventId] = true;
            }
        }

        public bool AckWritten(string eventId) => AckedEvents.ContainsKey(eventId);

        /// <summary>What happened to these raises: answer, deliveries (worker, attempt), acks written and answered.</summary>
        public string Describe(IEnumerable<int> raises)
        {
            var confirmations = Confirmations.ToLookup(c => c.DeliveryId);
            return string.Join("; ", raises.Select(n =>
            {
                var eventId = Answered[n].EventId;
                var deliveries = Deliveries.Where(d => d.Delivery.EventId == eventId).Select(d =>
                    $"{d.Worker}#{d.Delivery.Attempt}{(AckedDeliveries.ContainsKey(d.Delivery.DeliveryId) ? " ack written" : string.Empty)}"
                    + string.Concat(confirmations[d.Delivery.DeliveryId].Select(c => $" {c.Kind}:{c.Status}")));
                return $"n={n} event {eventId}: [{string.Join(", ", deliveries)}]";
            }));
        }

        public void Deliver(string worker, Delivery delivery)
        {
            Deliveries.Enqueue((worker, delivery));
            DeliveredEvents[delivery.EventId] = true;
            byDeliveryId[delivery.DeliveryId] = delivery;
        }

        public void Confirm(SettleConfirmation confirmation)
        {
            Confirmations.Enqueue(confirmation);
            if (confirmation is { Kind: SettleKind.Ack, Status: SettleStatus.Confirmed })
            {
                if (!byDeliveryId.TryGetValue(confirmation.DeliveryId, out var delivery))
                {
                    Failures.Enqueue($"confirmed ack of an unknown delivery {confirmation.DeliveryId}");
                }
                else if (!ConfirmedAcks.TryAdd(delivery.EventId, delivery))
                {
                    Failures.Enqueue($"event {delivery.EventId}: a second ack CONFIRMED ({confirmation.DeliveryId}, after {ConfirmedAcks[delivery.EventId].DeliveryId})");
                }
            }
        }
    }

    /// <summary>Two broker processes on one Redis and one key prefix.</summary>
    private sealed class TwoNodes : IAsyncDisposable
    {
        private TwoNodes(BrokerProcess a, BrokerProcess b) => (A, B) = (a, b);

        public BrokerProcess A { get; }

        public BrokerProcess B { get; }

        public string LogTails => $"Node A output:\n{A.LogTail}\n\nNode B output:\n{B.LogTail}";

        public static async Task<TwoNodes> StartAsync(
            string redisConfiguration, string keyPrefix, int? partitions, TimeSpan? ackDeadline, CancellationToken cancellationToken)
        {
            var more = new Dictionary<string, string>();
            if (ackDeadline is { } deadline)
            {
                more[$"Groups:{Group}:AckDeadline"] = deadline.ToString("c", CultureInfo.InvariantCulture);
            }

            var settings = BrokerProcess.RedisSettings(redisConfiguration, keyPrefix, partitions, more);
            var nodes = new TwoNodes(new BrokerProcess(settings), new BrokerProcess(settings));
            try
            {
                // Both at once, as an orchestrator starts them: they meet the same empty key space.
                await Task.WhenAll(nodes.A.StartAsync(cancellationToken), nodes.B.StartAsync(cancellationToken));
                return nodes;
            }
            catch
            {
                await nodes.DisposeAsync();
                throw;
            }
        }

        public void AssertNoErrorsLogged()
        {
            A.AssertNoErrorsLogged();
            B.AssertNoErrorsLogged();
        }

        public async ValueTask DisposeAsync()
        {
            await A.DisposeAsync();
            await B.DisposeAsync();
        }
    }
}
