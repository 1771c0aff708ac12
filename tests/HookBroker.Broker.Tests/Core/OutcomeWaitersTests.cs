using HookBroker.Broker.Core;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Tests.Core;

public sealed class OutcomeWaitersTests
{
    private static OutcomeNotice Failed(long eventId, string group, int attempt) => new(eventId, group, OutcomeKind.Failed, attempt, "boom", true);

    [Fact(Timeout = 10_000)]
    public void An_outcome_published_inside_an_open_window_reaches_a_waiter_registered_after_it()
    {
        var waiters = new OutcomeWaiters();
        using var window = waiters.OpenWindow();

        waiters.Publish([Failed(7, "email-sender", attempt: 1)]);
        waiters.Publish([Failed(7, "email-sender", attempt: 2)]);
        using var waiter = waiters.Register(7, ["email-sender"]);

        Assert.True(waiter.Completed.IsCompleted);
        var outcome = Assert.Single(waiter.Snapshot());
        Assert.Equal(1, outcome!.Attempt);
    }

    [Fact(Timeout = 10_000)]
    public void Without_a_window_nothing_is_kept_for_later_waiters()
    {
        var waiters = new OutcomeWaiters();
        waiters.OpenWindow().Dispose();

        waiters.Publish([Failed(7, "email-sender", attempt: 1)]);
        using var waiter = waiters.Register(7, ["email-sender"]);

        Assert.False(waiter.Completed.IsCompleted);
        Assert.Null(Assert.Single(waiter.Snapshot()));
    }

    [Fact(Timeout = 10_000)]
    public void Under_sustained_load_only_the_last_two_generations_are_kept()
    {
        var waiters = new OutcomeWaiters();
        using var window = waiters.OpenWindow();

        // Three generations' worth: the first one is dropped, the newest event is still seen.
        for (long id = 1; id <= 3L * OutcomeWaiters.GenerationSize; id++)
        {
            waiters.Publish([Failed(id, "g", 1)]);
        }

        using var oldest = waiters.Register(1, ["g"]);
        using var newest = waiters.Register(3L * OutcomeWaiters.GenerationSize, ["g"]);
        Assert.False(oldest.Completed.IsCompleted);
        Assert.True(newest.Completed.IsCompleted);
    }

    [Fact(Timeout = 10_000)]
    public void A_waiter_keeps_the_first_outcome_per_group_and_completes_when_every_group_has_one()
    {
        var waiters = new OutcomeWaiters();
        using var waiter = waiters.Register(9, ["a", "b"]);

        waiters.Publish([Failed(9, "a", 1), Failed(9, "a", 2)]);
        Assert.False(waiter.Completed.IsCompleted);
        waiters.Publish([new OutcomeNotice(9, "b", OutcomeKind.Handled, 1, null, false)]);

        Assert.True(waiter.Completed.IsCompleted);
        Assert.Equal([1, 1], waiter.Snapshot().Select(o => o!.Attempt).ToArray());
        Assert.Equal([OutcomeKind.Failed, OutcomeKind.Handled], waiter.Snapshot().Select(o => o!.Kind).ToArray());
    }
}
