using System.Collections.Concurrent;
using Grpc.Core;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests;

/// <summary>
/// <c>ExecuteEventAsync</c> with <see cref="HookBrokerClientOptions.Batching"/> (the default): concurrent raises share one
/// long-lived RaiseStream call and keep every guarantee of a unary raise. A <see cref="CountingProxy"/> between the
/// client and a real broker process counts the messages on the wire.
/// </summary>
public sealed class BatchingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    /// <summary>
    /// More raises than a client holds unanswered (4 stream messages of 256 raises, and 16,384 queued): the last 2,592 of
    /// them wait for room in the queue.
    /// </summary>
    private const int BeyondTheQueue = 20_000;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Concurrent_raises_travel_in_few_stream_messages_and_each_gets_its_own_event()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });

        // The first messages' answers are held, so at most four messages (the client's limit in flight) leave before
        // every raise is queued: a raise queues before its call first awaits. Then they leave in messages of up to 256.
        proxy.HoldAnswers();
        var raising = Task.WhenAll(Enumerable.Range(0, 500)
            .Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()));
        await Poll.UntilAsync(() => proxy.StreamMessages >= 1, TimeSpan.FromSeconds(30), "the first RaiseStream message", Token);
        proxy.ReleaseAnswers();
        var results = await raising;

        Assert.All(results, r => Assert.Equal(1, r.RoutedGroups));
        Assert.All(results, r => Assert.False(r.Duplicate));
        Assert.Equal(500, results.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(0, proxy.UnaryRaises);
        Assert.Equal(1, proxy.StreamCalls);
        Assert.Equal(500, proxy.StreamItems);
        Assert.True(proxy.StreamMessages <= 8, $"500 concurrent raises took {proxy.StreamMessages} RaiseStream messages");
        TestContext.Current.TestOutputHelper?.WriteLine($"500 raises in {proxy.StreamMessages} RaiseStream message(s)");
        Assert.Equal(500UL, (await StatsAsync(broker)).RaisedEvents);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_bad_raise_fails_alone_with_its_own_exception_and_the_stream_goes_on()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });

        var good = Enumerable.Range(0, 100).Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()).ToList();
        var badLabel = client.ExecuteEventAsync("bad label!", new { n = -1 }, cancellationToken: Token).AsTask();
        var badWait = client.ExecuteEventAsync("order_placed", new { n = -2 }, new RaiseOptions { WaitTimeout = TimeSpan.FromMinutes(10) }, Token).AsTask();

        var label = await Assert.ThrowsAsync<InvalidEventException>(() => badLabel);
        Assert.Equal(StatusCode.InvalidArgument, label.StatusCode);
        Assert.Contains("bad label!", label.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidEventException>(() => badWait);
        Assert.All(await Task.WhenAll(good), r => Assert.Equal(1, r.RoutedGroups));
        Assert.Equal(1, (await client.ExecuteEventAsync("order_placed", new { n = 100 }, cancellationToken: Token)).RoutedGroups);

        // Refused items were answered on the stream, which went on: no retry, no second call, nothing unary.
        Assert.Equal(1, proxy.StreamCalls);
        Assert.Equal(0, proxy.UnaryRaises);
        Assert.Equal(103, proxy.StreamItems);
        Assert.Equal(101UL, (await StatsAsync(broker)).RaisedEvents);
    }

    [Fact(Timeout = 120_000)]
    public async Task Wait_mode_raises_ride_the_stream_and_a_long_wait_holds_up_no_other_raise()
    {
        await using var broker = await StartBrokerAsync();
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hooks = new Hooks()
            .Event("slow_job", async (CancellationToken ct) =>
            {
                slowStarted.TrySetResult();
                await release.Task.WaitAsync(ct);
            })
            .Event("quick_job", (int n) => { })
            .Event("failing_job", void (int n) => throw new InvalidOperationException($"job {n} failed"));
        using var worker = await WorkerHost.StartAsync(broker, "jobs", hooks, Token, o => o.MaxConcurrency = 8);
        await Poll.UntilAsync(() => HasWorkerAsync(broker, "jobs"), Wait, "the worker to subscribe", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });
        var waitMode = new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(20) };

        var slow = client.ExecuteEventAsync("slow_job", null, waitMode, Token).AsTask();
        await slowStarted.Task.WaitAsync(Wait, Token);

        // While the slow raise waits for its outcome, others are answered on the same stream.
        var quick = await Task.WhenAll(Enumerable.Range(0, 20).Select(n => client.ExecuteEventAsync("quick_job", new { n }, waitMode, Token).AsTask()));
        Assert.All(quick, r => Assert.Equal(HookOutcome.Handled, Assert.Single(r.Outcomes).Outcome));
        var failed = await Assert.ThrowsAsync<HookFailedException>(() => client.ExecuteEventAsync("failing_job", new { n = 7 }, waitMode, Token).AsTask());
        var outcome = Assert.Single(failed.Result.Outcomes);
        Assert.Equal(HookOutcome.Failed, outcome.Outcome);
        Assert.Contains("job 7 failed", outcome.Error, StringComparison.Ordinal);
        Assert.False(slow.IsCompleted, "the slow raise answered before its hook finished");

        release.SetResult();
        var slowResult = await slow.WaitAsync(Wait, Token);
        Assert.Equal(HookOutcome.Handled, Assert.Single(slowResult.Outcomes).Outcome);
        Assert.Equal(1, proxy.StreamCalls);
        Assert.Equal(0, proxy.UnaryRaises);
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task Canceling_one_raise_ends_only_that_raise()
    {
        await using var broker = await StartBrokerAsync();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hooks = new Hooks()
            .Event("slow_job", async (CancellationToken ct) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct);
            })
            .Event("quick_job", (int n) => { });
        using var worker = await WorkerHost.StartAsync(broker, "jobs", hooks, Token, o => o.DrainTimeout = TimeSpan.FromMilliseconds(200));
        await Poll.UntilAsync(() => HasWorkerAsync(broker, "jobs"), Wait, "the worker to subscribe", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });
        var waitMode = new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(60) };

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var slow = client.ExecuteEventAsync("slow_job", null, waitMode, cancel.Token).AsTask();
        var meanwhile = client.ExecuteEventAsync("quick_job", new { n = 0 }, waitMode, Token).AsTask();
        await started.Task.WaitAsync(Wait, Token);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow.WaitAsync(Wait, Token));
        Assert.Equal(HookOutcome.Handled, Assert.Single((await meanwhile.WaitAsync(Wait, Token)).Outcomes).Outcome);
        var after = await Task.WhenAll(Enumerable.Range(1, 20).Select(n => client.ExecuteEventAsync("quick_job", new { n }, cancellationToken: Token).AsTask()));
        Assert.All(after, r => Assert.Equal(1, r.RoutedGroups));
        Assert.Equal(1, proxy.StreamCalls);
        Assert.Equal(0, proxy.UnaryRaises);
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_unanswered_raise_fails_at_its_attempt_timeout_each_time_and_a_canceled_one_ends_alone()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = SingleAttemptClient(proxy.Address, TimeSpan.FromMilliseconds(500));
        await client.ExecuteEventAsync("order_placed", new { n = 0 }, cancellationToken: Token); // opens the stream

        // Every attempt shares one deadline timer: it fires for the first unanswered raise, then again for the next.
        proxy.HoldAnswers();
        foreach (var n in new[] { 1, 2 })
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var unanswered = await Assert.ThrowsAsync<BrokerUnavailableException>(
                () => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token));
            Assert.Equal(StatusCode.DeadlineExceeded, unanswered.StatusCode);
            Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(450), $"timed out after {clock.Elapsed}");
        }

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var canceled = client.ExecuteEventAsync("order_placed", new { n = 3 }, cancellationToken: cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => canceled.WaitAsync(Wait, Token));

        // The late answers of the abandoned raises are ignored; the stream carries on.
        proxy.ReleaseAnswers();
        var after = await Task.WhenAll(Enumerable.Range(4, 20).Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()));
        Assert.All(after, r => Assert.Equal(1, r.RoutedGroups));
        Assert.Equal(1, proxy.StreamCalls);
        Assert.Equal(0, proxy.UnaryRaises);
    }

    [Fact(Timeout = 120_000)]
    public async Task Raises_beyond_the_queue_are_sent_as_room_frees_and_each_gets_its_own_event()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address, AttemptTimeout = TimeSpan.FromSeconds(60) });
        await client.ExecuteEventAsync("order_placed", new { n = -1 }, cancellationToken: Token); // opens the stream

        proxy.HoldAnswers();
        var raising = Task.WhenAll(Enumerable.Range(0, BeyondTheQueue)
            .Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()));
        await Poll.UntilAsync(() => proxy.StreamMessages >= 2, TimeSpan.FromSeconds(30), "RaiseStream messages", Token);
        proxy.ReleaseAnswers();
        var results = await raising.WaitAsync(TimeSpan.FromSeconds(60), Token);

        Assert.Equal(BeyondTheQueue, results.Select(r => r.EventId).Distinct().Count());
        Assert.All(results, r => Assert.False(r.Duplicate));
        Assert.Equal(BeyondTheQueue + 1, proxy.StreamItems);
        Assert.Equal((ulong)BeyondTheQueue + 1, (await StatsAsync(broker)).RaisedEvents);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task Raises_beyond_the_queue_wait_for_room_and_still_end_at_their_timeout_or_their_token()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = SingleAttemptClient(proxy.Address, TimeSpan.FromSeconds(3));
        await client.ExecuteEventAsync("order_placed", new { n = -1 }, cancellationToken: Token); // opens the stream

        // Unanswered, the stream takes 4 messages of 256 raises and the queue 16,384 more: the rest wait for room.
        proxy.HoldAnswers();
        var raises = Enumerable.Range(0, BeyondTheQueue)
            .Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask())
            .ToList();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var canceled = client.ExecuteEventAsync("order_placed", new { n = BeyondTheQueue }, cancellationToken: cancel.Token).AsTask();
        await cancel.CancelAsync();

        // Its token ends a raise waiting for room at once, long before the others' timeout.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => canceled.WaitAsync(Wait, Token));
        Assert.Equal(0, raises.Count(r => r.IsCompleted));

        // The deadline ends each of the others, queued or waiting for room, as DEADLINE_EXCEEDED.
        var failures = await Task.WhenAll(raises.Select(async r =>
            await Assert.ThrowsAsync<BrokerUnavailableException>(() => r.WaitAsync(Wait, Token))));
        Assert.All(failures, f => Assert.Equal(StatusCode.DeadlineExceeded, f.StatusCode));

        // Once answers flow, what ended while queued is skipped and new raises go through.
        proxy.ReleaseAnswers();
        var after = await Task.WhenAll(Enumerable.Range(0, 20)
            .Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask().WaitAsync(Wait, Token)));
        Assert.All(after, r => Assert.Equal(1, r.RoutedGroups));
        Assert.True(proxy.StreamItems < BeyondTheQueue, $"{proxy.StreamItems} raises were sent, the ended ones among them");
        Assert.Equal(1, proxy.StreamCalls);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task Raises_waiting_for_room_fail_as_disposed_when_the_client_is_disposed()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });
        await client.ExecuteEventAsync("order_placed", new { n = -1 }, cancellationToken: Token); // opens the stream

        proxy.HoldAnswers();
        var raises = Enumerable.Range(0, BeyondTheQueue)
            .Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask())
            .ToList();
        await client.DisposeAsync();

        // Sent, queued or waiting for room: each fails as disposed, none is left hanging.
        await Task.WhenAll(raises.Select(r => Assert.ThrowsAsync<ObjectDisposedException>(() => r.WaitAsync(Wait, Token))));
        proxy.ReleaseAnswers();
    }

    [Fact(Timeout = 180_000)]
    public async Task Raises_pending_when_the_broker_is_killed_are_retried_on_the_restarted_broker_and_stored_once()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        var options = new HookBrokerClientOptions { Address = broker.GrpcAddress, Source = "batching-tests" };
        options.Retry.MaxRetryAttempts = 20;
        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(100);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(1);
        options.CircuitBreaker.Enabled = false;
        var retries = new RetryCounter();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(retries));
        await using var client = new HookBrokerClient(options, loggerFactory);
        var answered = new ConcurrentDictionary<int, string>();
        var failures = new ConcurrentQueue<string>();
        var next = 0;
        var stopping = false;

        async Task RaiseLoopAsync()
        {
            while (!Volatile.Read(ref stopping))
            {
                var n = Interlocked.Increment(ref next);
                try
                {
                    answered[n] = (await client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token)).EventId;
                }
                catch (HookBrokerException e)
                {
                    failures.Enqueue($"raise {n}: {e.GetType().Name}: {e.Message}");
                }
            }
        }

        var loops = Enumerable.Range(0, 32).Select(_ => Task.Run(RaiseLoopAsync, Token)).ToArray();
        await Poll.UntilAsync(() => answered.Count >= 500 || !failures.IsEmpty, Wait, "500 raises", Token);
        await broker.KillAsync(Token);
        var killedAt = answered.Count;
        await broker.StartAsync(Token);
        await Poll.UntilAsync(() => answered.Count >= killedAt + 500 || !failures.IsEmpty, Wait, "500 more raises after the restart", Token);
        Volatile.Write(ref stopping, true);
        await Task.WhenAll(loops);
        Assert.True(failures.IsEmpty, $"{failures.Count} raise(s) failed beyond the retry budget:\n{string.Join('\n', failures.Take(20))}");
        Assert.True(retries.Count > 0, "no raise was pending when the broker was killed");
        TestContext.Current.TestOutputHelper?.WriteLine($"{answered.Count} raises, {killedAt} before the kill; {retries.Count} retried attempt(s)");

        // Every answered raise was stored exactly once: one event id per raise, the one the client was given.
        var delivered = new ConcurrentDictionary<int, ConcurrentDictionary<string, byte>>();
        var hooks = new Hooks().Event("order_placed", (int n, HookContext context) => delivered.GetOrAdd(n, _ => new()).TryAdd(context.EventId ?? string.Empty, 0));
        using var worker = await WorkerHost.StartAsync(broker, "orders", hooks, Token);
        await Poll.UntilAsync(() => answered.Keys.All(delivered.ContainsKey), Wait, "every answered raise to be delivered", Token);
        await worker.StopAsync(Token);
        foreach (var (n, eventId) in answered)
        {
            Assert.Equal([eventId], delivered[n].Keys);
        }

        var duplicates = delivered.Where(d => d.Value.Count > 1).Select(d => d.Key).Take(20).ToList();
        Assert.True(duplicates.Count == 0, $"stored more than once: {string.Join(", ", duplicates)}");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_broker_without_RaiseStream_gets_unary_raises()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        proxy.RaiseStreamUnimplemented = true;
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address });

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()));
        Assert.Equal(1, (await client.ExecuteEventAsync("order_placed", new { n = 50 }, cancellationToken: Token)).RoutedGroups);

        Assert.Equal(50, results.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(51, proxy.UnaryRaises);
        Assert.Equal(0, proxy.StreamMessages);
        Assert.Equal(51UL, (await StatsAsync(broker)).RaisedEvents);
    }

    [Fact(Timeout = 120_000)]
    public async Task With_batching_off_every_raise_is_a_unary_call()
    {
        await using var broker = await StartBrokerAsync();
        await DurableGroups.CreateAsync(broker, "orders", "order_placed", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address, Batching = false });

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(n => client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token).AsTask()));

        Assert.Equal(50, results.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(50, proxy.UnaryRaises);
        Assert.Equal(0, proxy.StreamCalls);
    }

    /// <summary>A client whose raises make one attempt each (no retry, no circuit breaker), within <paramref name="attemptTimeout"/>.</summary>
    private static HookBrokerClient SingleAttemptClient(Uri address, TimeSpan attemptTimeout)
    {
        var options = new HookBrokerClientOptions { Address = address, AttemptTimeout = attemptTimeout };
        options.Retry.MaxRetryAttempts = 0;
        options.CircuitBreaker.Enabled = false;
        return new HookBrokerClient(options);
    }

    private static async Task<BrokerProcess> StartBrokerAsync()
    {
        var broker = new BrokerProcess();
        try
        {
            await broker.StartAsync(Token);
            return broker;
        }
        catch
        {
            await broker.DisposeAsync();
            throw;
        }
    }

    private static async Task<bool> HasWorkerAsync(BrokerProcess broker, string group)
    {
        using var channel = broker.CreateChannel();
        var groups = await new HookBrokerAdmin.HookBrokerAdminClient(channel).ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token);
        return groups.Groups.Any(g => g.Name == group && g.ConnectedWorkers > 0);
    }

    private static async Task<GetStatsResponse> StatsAsync(BrokerProcess broker)
    {
        using var channel = broker.CreateChannel();
        return await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token);
    }
}
