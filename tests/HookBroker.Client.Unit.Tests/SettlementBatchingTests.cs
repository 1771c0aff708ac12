using HookBroker.Tests.Infrastructure;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// The worker's settlement writer gathers the acks of deliveries still being handled into one message, within its
/// linger, and never holds an ack back longer than that for a hook that is still running. Drives a real
/// <see cref="Internal.SubscriptionSession"/> over an in-memory stream that records every request message.
/// </summary>
public sealed class SettlementBatchingTests
{
    private const int Delivered = 20;

    [Fact(Timeout = 20_000)]
    public async Task The_acks_of_a_delivered_batch_leave_in_one_message_when_the_hooks_finish_within_the_linger()
    {
        // Every delivery of the batch is received and started first; then the hooks finish one by one, about a
        // millisecond apart, so a writer that sent what it had at each wake-up would send many messages.
        var entered = 0;
        var turns = Enumerable.Range(0, Delivered).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var hooks = new Hooks().Event("e", async (string id) =>
        {
            if (Interlocked.Increment(ref entered) == Delivered)
            {
                turns[0].TrySetResult();
            }

            var index = int.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture);
            await turns[index].Task;
            if (index + 1 < Delivered)
            {
                _ = Task.Delay(1).ContinueWith(_ => turns[index + 1].TrySetResult(), TaskScheduler.Default);
            }
        });
        await using var stream = new RecordedStream();
        using var session = stream.Session(hooks, maxConcurrency: Delivered, linger: TimeSpan.FromSeconds(10));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);

        await stream.DeliverAsync(Enumerable.Range(0, Delivered).Select(i => $"d{i}"));
        await Poll.UntilAsync(() => stream.Acks.Count == Delivered, TimeSpan.FromSeconds(15), "every ack", TestContext.Current.CancellationToken);

        // The writer woke at the first ack and kept gathering while deliveries were unsettled: one message for all.
        Assert.Equal(1, stream.MessagesWithAcks);
        Assert.Equal(Enumerable.Range(0, Delivered).Select(i => $"d{i}").Order(), stream.Acks.Order());
        await stopping.CancelAsync();
        stream.End();
        await run;
    }

    [Fact(Timeout = 20_000)]
    public async Task A_hook_still_running_holds_the_others_acks_back_no_longer_than_the_linger()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hooks = new Hooks().Event("e", async (string id) =>
        {
            if (id == "slow")
            {
                await release.Task;
            }
        });
        await using var stream = new RecordedStream();
        using var session = stream.Session(hooks, maxConcurrency: 2, linger: TimeSpan.FromMilliseconds(50));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);

        await stream.DeliverAsync(["slow", "fast"]);

        // The fast one's ack leaves after the linger although the slow hook is still running.
        await Poll.UntilAsync(() => stream.Acks.Contains("fast"), TimeSpan.FromSeconds(15), "the fast hook's ack", TestContext.Current.CancellationToken);
        Assert.DoesNotContain("slow", stream.Acks);
        release.TrySetResult();
        await Poll.UntilAsync(() => stream.Acks.Contains("slow"), TimeSpan.FromSeconds(15), "the slow hook's ack", TestContext.Current.CancellationToken);
        Assert.Equal(2, stream.MessagesWithAcks);
        await stopping.CancelAsync();
        stream.End();
        await run;
    }
}
