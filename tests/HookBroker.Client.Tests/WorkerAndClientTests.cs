using System.Collections.Concurrent;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Hosting;

namespace HookBroker.Client.Tests;

/// <summary>The SDK's client and worker host against the real broker process.</summary>
public sealed class WorkerAndClientTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static Dictionary<string, string> FastRetries(string group) => new()
    {
        [$"Groups:{group}:MaxAttempts"] = "2",
        [$"Groups:{group}:BackoffInitial"] = "00:00:00.100",
    };

    private static HookBrokerClient Client(BrokerProcess broker, Action<HookBrokerClientOptions>? configure = null)
    {
        var options = new HookBrokerClientOptions { Address = broker.GrpcAddress, Source = "client-tests" };
        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(50);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(500);
        configure?.Invoke(options);
        return new HookBrokerClient(options);
    }

    private static async Task WaitForWorkerAsync(BrokerProcess broker, string group)
    {
        using var channel = broker.CreateChannel();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        await Poll.UntilAsync(
            async () => (await admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token)).Groups.Any(g => g.Name == group && g.ConnectedWorkers > 0),
            Wait,
            $"a worker of group '{group}' to connect",
            Token);
    }

    private static async Task<IReadOnlyList<DeadLetter>> DeadLettersAsync(BrokerProcess broker, string group)
    {
        using var channel = broker.CreateChannel();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        return (await admin.ListDeadLettersAsync(new ListDeadLettersRequest { Group = group }, cancellationToken: Token)).DeadLetters;
    }

    [Fact(Timeout = 60_000)]
    public async Task A_raise_reaches_the_worker_hook_with_bound_args_and_wait_mode_reports_handled()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var received = new ConcurrentQueue<(string Username, string Email, int Attempt, string? Source)>();
        var hooks = new Hooks().Event("user_created", async (string username, string email, HookContext context, CancellationToken ct) =>
        {
            await Task.Yield();
            received.Enqueue((username, email, context.Attempt, context.Source));
        });
        using var worker = await WorkerHost.StartAsync(broker, "email-sender", hooks, Token);
        await WaitForWorkerAsync(broker, "email-sender");
        await using var client = Client(broker);

        var stored = await client.ExecuteEventAsync("user_created", new { username = "ali", email = "ali@example.com" }, cancellationToken: Token);
        var waited = await client.ExecuteEventAsync(
            "user_created", new Dictionary<string, object?> { ["Username"] = "sara", ["email"] = "sara@example.com" },
            new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(10) }, Token);

        Assert.Equal(1, stored.RoutedGroups);
        Assert.False(string.IsNullOrEmpty(stored.EventId));
        var outcome = Assert.Single(waited.Outcomes);
        Assert.Equal(new HookGroupOutcome("email-sender", HookOutcome.Handled, "", 1, false), outcome with { Error = "" });
        await Poll.UntilAsync(() => received.Count == 2, Wait, "both events to be handled", Token);
        Assert.Contains(("ali", "ali@example.com", 1, "client-tests"), received);
        Assert.Contains(("sara", "sara@example.com", 1, "client-tests"), received);
        await worker.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 60_000)]
    public async Task A_throwing_hook_fails_the_wait_is_retried_and_lands_in_dead_letters_with_its_error()
    {
        await using var broker = new BrokerProcess(FastRetries("billing"));
        await broker.StartAsync(Token);
        var attempts = new ConcurrentQueue<int>();
        var hooks = new Hooks().Event("invoice_paid", (int amount, HookContext context) =>
        {
            attempts.Enqueue(context.Attempt);
            throw new InvalidOperationException($"payment gateway refused {amount}");
        });
        using var worker = await WorkerHost.StartAsync(broker, "billing", hooks, Token);
        await WaitForWorkerAsync(broker, "billing");
        await using var client = Client(broker);

        var error = await Assert.ThrowsAsync<HookFailedException>(async () =>
            await client.ExecuteEventAsync("invoice_paid", new { amount = 42 }, new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(10) }, Token));

        var failure = Assert.Single(error.Failures);
        Assert.Equal(HookOutcome.Failed, failure.Outcome);
        Assert.Equal("billing", failure.Group);
        Assert.True(failure.WillRetry);
        Assert.Contains("payment gateway refused 42", failure.Error, StringComparison.Ordinal);
        Assert.Contains("payment gateway refused 42", error.Message, StringComparison.Ordinal);

        await Poll.UntilAsync(async () => (await DeadLettersAsync(broker, "billing")).Count == 1, Wait, "the event to be dead-lettered", Token);
        var dead = Assert.Single(await DeadLettersAsync(broker, "billing"));
        Assert.Equal("max_attempts", dead.Reason);
        Assert.Equal(2, dead.Attempts);
        Assert.Contains("InvalidOperationException: payment gateway refused 42", dead.LastError, StringComparison.Ordinal);
        Assert.Equal([1, 2], attempts);
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_hook_missing_an_argument_is_rejected_at_once_naming_the_parameter()
    {
        await using var broker = new BrokerProcess(FastRetries("email-sender"));
        await broker.StartAsync(Token);
        var calls = 0;
        var hooks = new Hooks().Event("user_created", (string username, string email) => Interlocked.Increment(ref calls));
        using var worker = await WorkerHost.StartAsync(broker, "email-sender", hooks, Token);
        await WaitForWorkerAsync(broker, "email-sender");
        await using var client = Client(broker);

        var error = await Assert.ThrowsAsync<HookFailedException>(async () =>
            await client.ExecuteEventAsync("user_created", new { username = "ali" }, new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(10) }, Token));

        Assert.Equal(HookOutcome.DeadLettered, Assert.Single(error.Failures).Outcome);
        var dead = Assert.Single(await DeadLettersAsync(broker, "email-sender"));
        Assert.Equal("rejected", dead.Reason);
        Assert.Equal(1, dead.Attempts);
        Assert.Contains("missing required argument 'email'", dead.LastError, StringComparison.Ordinal);
        Assert.Equal(0, calls);
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 90_000)]
    public async Task Restarting_the_broker_makes_the_worker_reconnect_and_a_retried_raise_is_stored_once()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var handled = new ConcurrentQueue<string>();
        var hooks = new Hooks().Event("order_placed", (string order) => handled.Enqueue(order));
        using var worker = await WorkerHost.StartAsync(broker, "orders", hooks, Token);
        await WaitForWorkerAsync(broker, "orders");
        await using var client = Client(broker, o =>
        {
            o.Retry.MaxRetryAttempts = 100;
            o.CircuitBreaker.Enabled = false;
        });
        await client.ExecuteEventAsync("order_placed", new { order = "before" }, cancellationToken: Token);
        await Poll.UntilAsync(() => handled.Contains("before"), Wait, "the first event to be handled", Token);

        await broker.StopAsync(Token);
        var raise = client.ExecuteEventAsync("order_placed", new { order = "during" }, cancellationToken: Token).AsTask();
        await Poll.UntilAsync(() => !broker.IsRunning, Wait, "the broker to stop", Token);
        Assert.False(raise.IsCompleted, "the raise must wait for the broker through its retries");
        await broker.StartAsync(Token);

        var result = await raise;
        Assert.Equal(1, result.RoutedGroups);
        await Poll.UntilAsync(() => handled.Contains("during"), Wait, "the worker to reconnect and handle the retried raise", Token);
        await client.ExecuteEventAsync("order_placed", new { order = "after" }, cancellationToken: Token);
        await Poll.UntilAsync(() => handled.Contains("after"), Wait, "the worker to carry on", Token);
        Assert.Single(handled, h => h == "during");

        using var channel = broker.CreateChannel();
        var stats = await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token);
        Assert.Equal(2ul, stats.RaisedEvents); // "during" and "after" since the restart: the retries stored "during" once
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Client_errors_are_typed_and_idempotency_keys_deduplicate()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var hooks = new Hooks().Event("ping", () => { });
        using var worker = await WorkerHost.StartAsync(broker, "pingers", hooks, Token);
        await WaitForWorkerAsync(broker, "pingers");
        await using var client = Client(broker);

        var unrouted = await client.ExecuteEventAsync("nobody_listens", cancellationToken: Token);
        var first = await client.ExecuteEventAsync("ping", new { n = 1 }, new RaiseOptions { IdempotencyKey = "k-1" }, Token);
        var again = await client.ExecuteEventAsync("ping", new { n = 2 }, new RaiseOptions { IdempotencyKey = "k-1" }, Token);
        var invalid = await Assert.ThrowsAsync<InvalidEventException>(async () => await client.ExecuteEventAsync("bad label!", cancellationToken: Token));
        var tooBig = await Assert.ThrowsAsync<BrokerLimitException>(async () =>
            await client.ExecuteEventAsync("ping", new { blob = new string('x', 300_000) }, cancellationToken: Token));

        Assert.Equal(0, unrouted.RoutedGroups);
        Assert.False(unrouted.IsRouted);
        Assert.False(first.Duplicate);
        Assert.True(again.Duplicate);
        Assert.Equal(first.EventId, again.EventId);
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("label", invalid.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, tooBig.StatusCode);
        await worker.StopAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_unreachable_broker_gives_BrokerUnavailable_after_retries_and_the_circuit_then_fails_fast()
    {
        await using var broker = new BrokerProcess(); // never started: nothing listens on its port
        await using var client = Client(broker, o =>
        {
            o.Retry.MaxRetryAttempts = 2;
            o.Retry.InitialDelay = TimeSpan.FromMilliseconds(10);
            o.CircuitBreaker.MinimumThroughput = 3;
            o.CircuitBreaker.BreakDuration = TimeSpan.FromSeconds(30);
        });

        var down = await Assert.ThrowsAsync<BrokerUnavailableException>(async () => await client.ExecuteEventAsync("ping", cancellationToken: Token));
        var open = await Assert.ThrowsAsync<BrokerUnavailableException>(async () => await client.ExecuteEventAsync("ping", cancellationToken: Token));

        Assert.IsType<Grpc.Core.RpcException>(down.InnerException, exactMatch: false);
        Assert.Equal(Grpc.Core.StatusCode.Unavailable, down.StatusCode);
        Assert.IsType<Polly.CircuitBreaker.BrokenCircuitException>(open.InnerException, exactMatch: false);
    }
}
