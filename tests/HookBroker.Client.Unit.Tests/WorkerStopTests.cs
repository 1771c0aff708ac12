using HookBroker.Tests.Infrastructure;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// How a worker stops: it finishes the hooks running, and the deliveries it will not start stay leased to it, extended,
/// until its stream closes and the broker releases them at once. Drives a real <see cref="Internal.SubscriptionSession"/>
/// over an in-memory stream.
/// </summary>
public sealed class WorkerStopTests
{
    [Fact(Timeout = 20_000)]
    public async Task While_it_drains_a_worker_keeps_extending_the_deliveries_it_will_not_start()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hooks = new Hooks().Event("e", async (string id) =>
        {
            if (id == "slow")
            {
                started.TrySetResult();
                await release.Task;
            }
        });
        await using var stream = new RecordedStream();
        // One handler, busy with "slow": "waiting" waits behind it. A 400 ms ack deadline: leases with less than half of
        // it left are extended.
        using var session = stream.Session(hooks, maxConcurrency: 1, linger: TimeSpan.FromMilliseconds(10), ackDeadline: TimeSpan.FromMilliseconds(400));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);
        await stream.DeliverAsync(["slow", "waiting"]);
        await started.Task.WaitAsync(TestContext.Current.CancellationToken);

        await stopping.CancelAsync();

        // Not left to expire (an expiry counts a failed attempt): still extended while the running hook finishes.
        await Poll.UntilAsync(() => stream.Extends.Contains("waiting"), TimeSpan.FromSeconds(10), "the waiting delivery extended", TestContext.Current.CancellationToken);
        release.TrySetResult();
        await Poll.UntilAsync(() => stream.Acks.Contains("slow"), TimeSpan.FromSeconds(10), "the running hook's ack", TestContext.Current.CancellationToken);
        stream.End();
        await run;
        Assert.DoesNotContain("waiting", stream.Acks);
        Assert.DoesNotContain(stream.Nacks, n => n.DeliveryId == "waiting");
    }
}
