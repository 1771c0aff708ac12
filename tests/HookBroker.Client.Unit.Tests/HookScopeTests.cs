using HookBroker.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// A class hook runs in a service scope of its own per delivery; the scope's end is part of the hook's work (a unit of
/// work that commits when disposed). Drives a real <see cref="Internal.SubscriptionSession"/> over an in-memory stream.
/// </summary>
public sealed class HookScopeTests
{
    [Fact(Timeout = 20_000)]
    public async Task A_hook_whose_scope_fails_as_it_ends_is_nacked_with_that_error_and_the_worker_goes_on()
    {
        await using var stream = new RecordedStream(services => services.AddScoped<CommitsOnDispose>());
        var hooks = new Hooks().Add<RecordsInUnitOfWork>();
        // One handler: a handler loop that died at the first delivery would leave the second unhandled.
        using var session = stream.Session(hooks, maxConcurrency: 1, linger: TimeSpan.FromMilliseconds(10));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);

        await stream.DeliverAsync(["d1", "d2"]);

        await Poll.UntilAsync(() => stream.Nacks.Count == 2, TimeSpan.FromSeconds(15), "both deliveries nacked", TestContext.Current.CancellationToken);
        Assert.Equal(["d1", "d2"], stream.Nacks.Select(n => n.DeliveryId).Order(StringComparer.Ordinal));
        Assert.All(stream.Nacks, n => Assert.Equal("InvalidOperationException: the commit failed", n.Error));
        Assert.Empty(stream.Acks);

        // It stops as usual: no exception escapes the session.
        await stopping.CancelAsync();
        stream.End();
        await run;
    }

    /// <summary>A scoped service whose end fails, like a unit of work whose commit on dispose fails.</summary>
    private sealed class CommitsOnDispose : IDisposable
    {
        public void Dispose() => throw new InvalidOperationException("the commit failed");
    }

    private sealed class RecordsInUnitOfWork(CommitsOnDispose unitOfWork)
    {
        [HookEvent("e")]
        public Task Run(string id)
        {
            GC.KeepAlive(unitOfWork);
            return Task.CompletedTask;
        }
    }
}
