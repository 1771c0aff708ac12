using System.Collections.Concurrent;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Hosting;

namespace HookBroker.Client.Tests;

/// <summary>
/// What happens to a delivery a worker holds when the worker dies, runs long or stops: real broker process, and worker
/// processes (tests/HookBroker.TestWorker, the SDK's AddHookWorker) that the tests kill with SIGKILL or stop with SIGTERM.
/// </summary>
public sealed class WorkerRedeliveryTests
{
    private const string Group = "reports";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Killing_a_worker_mid_handler_redelivers_the_event_to_the_other_worker_of_the_group()
    {
        // The ack deadline is only a safety net here: the killed worker's stream closes, and the broker releases its leases.
        await using var broker = new BrokerProcess(new Dictionary<string, string> { [$"Groups:{Group}:AckDeadline"] = "00:00:05" });
        await broker.StartAsync(Token);
        await using var workerA = TestWorkerProcess.Start(broker, Group, "worker-a");
        await using var workerB = TestWorkerProcess.Start(broker, Group, "worker-b");
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 2, "both workers to subscribe", workerA, workerB);
        await using var client = Client(broker);

        var raised = await client.ExecuteEventAsync("slow_job", new { job = "monthly", holdAttempts = 1 }, cancellationToken: Token);
        await Poll.UntilAsync(
            () => workerA.Reported("started", "monthly") || workerB.Reported("started", "monthly"), Wait, "a worker to start the hook", Token);
        var (holder, other) = workerA.Reported("started", "monthly") ? (workerA, workerB) : (workerB, workerA);
        Assert.Equal([new HookReport("started", "monthly", raised.EventId, 1)], holder.Reports());

        await holder.KillAsync(Token);

        await PollWithOutputAsync(() => other.Reported("finished", "monthly"), "the other worker to handle the redelivered event", other, holder);
        // Released because the killed worker's stream closed, not because its lease ran out.
        Assert.Contains("left; 1 leases released for redelivery", broker.LogTail, StringComparison.Ordinal);
        Assert.Equal(
            [new HookReport("started", "monthly", raised.EventId, 2), new HookReport("finished", "monthly", raised.EventId, 2)],
            other.Reports());
        await WaitForGroupAsync(
            broker, g => Settled(g) && g.ConnectedWorkers == 1, "the redelivered event to be acked", other);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_handler_running_past_the_ack_deadline_keeps_its_lease_and_is_acked_once()
    {
        await using var broker = new BrokerProcess(new Dictionary<string, string> { [$"Groups:{Group}:AckDeadline"] = "00:00:02" });
        await broker.StartAsync(Token);
        var invocations = new ConcurrentQueue<int>();
        var hooks = new Hooks().Event("long_job", async (HookContext context, CancellationToken ct) =>
        {
            invocations.Enqueue(context.Attempt);
            await Task.Delay(TimeSpan.FromSeconds(5), ct); // the scenario: 2.5 ack deadlines of work
        });
        using var worker = await WorkerHost.StartAsync(broker, Group, hooks, Token);
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 1, "the worker to subscribe");
        await using var client = Client(broker);

        var result = await client.ExecuteEventAsync("long_job", options: new RaiseOptions { WaitTimeout = TimeSpan.FromSeconds(30) }, cancellationToken: Token);

        Assert.Equal(new HookGroupOutcome(Group, HookOutcome.Handled, "", 1, false), Assert.Single(result.Outcomes) with { Error = "" });
        Assert.Equal([1], invocations);
        await WaitForGroupAsync(broker, Settled, "the event to be acked");
        Assert.Equal([1], invocations);
        await worker.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task Deliveries_waiting_for_a_busy_worker_keep_their_leases_and_are_handled_once()
    {
        await using var broker = new BrokerProcess(new Dictionary<string, string> { [$"Groups:{Group}:AckDeadline"] = "00:00:02" });
        await broker.StartAsync(Token);
        var invocations = new ConcurrentQueue<(string? EventId, int Attempt)>();
        var hooks = new Hooks().Event("long_job", async (HookContext context, CancellationToken ct) =>
        {
            invocations.Enqueue((context.EventId, context.Attempt));
            await Task.Delay(TimeSpan.FromSeconds(3), ct); // the scenario: whichever runs second waits 1.5 ack deadlines
        });
        // One handler at a time, but the broker may lease it up to 100 deliveries: the second waits in the worker.
        using var worker = await WorkerHost.StartAsync(broker, Group, hooks, Token, o => o.MaxConcurrency = 1);
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 1, "the worker to subscribe");
        await using var client = Client(broker);

        var first = await client.ExecuteEventAsync("long_job", cancellationToken: Token);
        var second = await client.ExecuteEventAsync("long_job", cancellationToken: Token);
        await WaitForGroupAsync(broker, Settled, "both events to be acked");

        Assert.Equal([(first.EventId, 1), (second.EventId, 1)], invocations.OrderBy(i => i.EventId == second.EventId));
        await worker.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task Stopping_a_worker_lets_the_running_handler_finish_and_ack()
    {
        await using var broker = new BrokerProcess(new Dictionary<string, string> { [$"Groups:{Group}:BackoffInitial"] = "00:00:00.100" });
        await broker.StartAsync(Token);
        await using var stopping = TestWorkerProcess.Start(broker, Group, "stopping");
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 1, "the first worker to subscribe", stopping);
        await using var client = Client(broker);
        var raised = await client.ExecuteEventAsync("slow_job", new { job = "finish-me", holdAttempts = 1 }, cancellationToken: Token);
        await PollWithOutputAsync(() => stopping.Reported("started", "finish-me"), "the first worker to start the hook", stopping);
        // A second worker of the group: it would get the event if the stopping worker released it instead of acking.
        await using var standby = TestWorkerProcess.Start(broker, Group, "standby");
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 2, "the second worker to subscribe", stopping, standby);

        await stopping.TerminateAsync(Token);
        await PollWithOutputAsync(
            () => stopping.LogTail.Contains($"Stopping group '{Group}': finishing 1 running handler(s)", StringComparison.Ordinal),
            "the worker to start draining",
            stopping);
        Assert.False(stopping.HasExited, "the worker must wait for its running handler");
        await stopping.ReleaseAsync("finish-me");
        await stopping.WaitForExitAsync(Wait, Token);

        Assert.Equal(0, stopping.ExitCode);
        Assert.True(stopping.HostStopped, stopping.LogTail);
        Assert.Equal(
            [new HookReport("started", "finish-me", raised.EventId, 1), new HookReport("finished", "finish-me", raised.EventId, 1)],
            stopping.Reports());
        await WaitForGroupAsync(
            broker, g => Settled(g) && g.ConnectedWorkers == 1, "the event to be acked", standby);
        Assert.Empty(standby.Reports());
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task Stopping_a_worker_past_its_drain_timeout_nacks_the_held_delivery_for_another_worker()
    {
        await using var broker = new BrokerProcess(new Dictionary<string, string> { [$"Groups:{Group}:BackoffInitial"] = "00:00:00.100" });
        await broker.StartAsync(Token);
        await using var stopping = TestWorkerProcess.Start(broker, Group, "stopping", new Dictionary<string, string> { ["DrainTimeout"] = "00:00:00.200" });
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 1, "the first worker to subscribe", stopping);
        await using var client = Client(broker);
        var raised = await client.ExecuteEventAsync("slow_job", new { job = "too-slow", holdAttempts = 1 }, cancellationToken: Token);
        await PollWithOutputAsync(() => stopping.Reported("started", "too-slow"), "the first worker to start the hook", stopping);
        await using var standby = TestWorkerProcess.Start(broker, Group, "standby");
        await WaitForGroupAsync(broker, g => g.ConnectedWorkers == 2, "the second worker to subscribe", stopping, standby);

        await stopping.TerminateAsync(Token); // never released: the handler outlives the 200 ms drain timeout
        await stopping.WaitForExitAsync(Wait, Token);

        Assert.Equal(0, stopping.ExitCode);
        Assert.Contains("nacked 1 delivery(ies)", stopping.LogTail, StringComparison.Ordinal);
        Assert.DoesNotContain(stopping.Reports(), r => r.What == "finished");
        await PollWithOutputAsync(() => standby.Reported("finished", "too-slow"), "the other worker to handle the nacked event", standby, stopping);
        Assert.Equal(
            [new HookReport("started", "too-slow", raised.EventId, 2), new HookReport("finished", "too-slow", raised.EventId, 2)],
            standby.Reports());
        await WaitForGroupAsync(
            broker, g => Settled(g) && g.ConnectedWorkers == 1, "the redelivered event to be acked", standby);
        broker.AssertNoErrorsLogged();
    }

    /// <summary>Nothing left in the group; throws (ending the wait) once anything was dead-lettered.</summary>
    private static bool Settled(GroupInfo group) =>
        group.DeadLetters == 0 ? group.Backlog == 0 && group.InFlight == 0 : throw new InvalidOperationException($"Group '{Group}' dead-lettered an event: {group}");

    private static HookBrokerClient Client(BrokerProcess broker) =>
        new(new HookBrokerClientOptions { Address = broker.GrpcAddress, Source = "redelivery-tests" });

    /// <summary>Polls the group's admin view until <paramref name="condition"/> holds; fails with the workers' output.</summary>
    private static async Task WaitForGroupAsync(BrokerProcess broker, Func<GroupInfo, bool> condition, string what, params TestWorkerProcess[] workers)
    {
        using var channel = broker.CreateChannel();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        GroupInfo? last = null;
        try
        {
            await PollWithOutputAsync(
                async () =>
                {
                    var groups = await admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token);
                    last = groups.Groups.FirstOrDefault(g => g.Name == Group);
                    return last is not null && condition(last);
                },
                what,
                workers);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nLast view of group '{Group}': {last}", e);
        }
    }

    private static Task PollWithOutputAsync(Func<bool> condition, string what, params TestWorkerProcess[] workers) =>
        PollWithOutputAsync(() => Task.FromResult(condition()), what, workers);

    /// <summary>Polls <paramref name="condition"/>; a timeout names the workers and shows their output.</summary>
    private static async Task PollWithOutputAsync(Func<Task<bool>> condition, string what, params TestWorkerProcess[] workers)
    {
        try
        {
            await Poll.UntilAsync(condition, Wait, what, Token);
        }
        catch (TimeoutException e)
        {
            var output = string.Join("\n", workers.Select(w => $"--- {w.Name} output ---\n{w.LogTail}"));
            throw new TimeoutException($"{e.Message}\n{output}", e);
        }
    }
}
