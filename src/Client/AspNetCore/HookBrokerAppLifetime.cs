using Microsoft.Extensions.Hosting;

namespace HookBroker.Client.Internal;

/// <summary>
/// Fires <c>startup</c> once the host has started (after every hosted service, the web server included, has started)
/// and <c>shutdown</c> once it has stopped, then flushes the default events still buffered for the broker. Also runs
/// the interest watcher and the publisher's loop.
/// </summary>
internal sealed class HookBrokerAppLifetime(HookBrokerApp app) : IHostedLifecycleService, IDisposable
{
    private readonly CancellationTokenSource stopWatching = new();
    private readonly CancellationTokenSource abortSending = new();
    private Task? watching;
    private Task? sending;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        if (app.Options.RaiseDefaultEventsRemotely)
        {
            watching = Task.Run(() => app.Interest.RunAsync(stopWatching.Token), CancellationToken.None);
            sending = Task.Run(() => app.Publisher.RunAsync(abortSending.Token), CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StartedAsync(CancellationToken cancellationToken) =>
        await app.RaiseDefaultEventAsync(HookBrokerApp.StartupEvent, null, cancellationToken);

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        try
        {
            await app.RaiseDefaultEventAsync(HookBrokerApp.ShutdownEvent, null, cancellationToken);
        }
        finally
        {
            await FlushAsync(cancellationToken);
        }
    }

    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        app.Publisher.Complete();
        try
        {
            if (sending is not null)
            {
                // What cannot reach the broker within the flush timeout (or the host's own stop deadline) is dropped and counted.
                using var registration = cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), abortSending);
                abortSending.CancelAfter(app.Options.ShutdownFlushTimeout);
                await sending;
            }
        }
        finally
        {
            await stopWatching.CancelAsync();
            if (watching is not null)
            {
                await watching;
            }
        }
    }

    public void Dispose()
    {
        stopWatching.Dispose();
        abortSending.Dispose();
    }
}
