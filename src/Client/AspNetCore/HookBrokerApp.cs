using System.Diagnostics.Metrics;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>
/// The app side of the ASP.NET Core integration: the client, the hooks attached to the app, and the remote path of the
/// default events (interest + bounded background publisher). One per app; owns the client's channel.
/// </summary>
internal sealed class HookBrokerApp : IAsyncDisposable
{
    public const string StartupEvent = "startup";
    public const string ShutdownEvent = "shutdown";
    public const string RequestStartEvent = "request_start";
    public const string RequestEndEvent = "request_end";

    private readonly HookBrokerClient client;

    public HookBrokerApp(Hooks hooks, HookBrokerAppOptions options, ILoggerFactory loggerFactory, TimeProvider time, IMeterFactory meterFactory)
    {
        Hooks = hooks;
        Options = options;
        client = new HookBrokerClient(options.Client, loggerFactory, time);
        var logger = loggerFactory.CreateLogger("HookBroker.Client.AspNetCore");
        Interest = new InterestWatcher(client.Api, options, time, logger);
        Publisher = new DefaultEventPublisher(client.Api, Interest, new DefaultEventMetrics(meterFactory), options, time, logger);
        Client = new AppHookBrokerClient(client, hooks);
    }

    public Hooks Hooks { get; }

    public HookBrokerAppOptions Options { get; }

    /// <summary>The app-attached client: raises remotely, then runs the app's hooks.</summary>
    public IHookBrokerClient Client { get; }

    public InterestWatcher Interest { get; }

    public DefaultEventPublisher Publisher { get; }

    /// <summary>
    /// Fires a default event: queues it for the broker when a group may listen (never waiting for the broker), then runs
    /// the app's hooks inline; a hook's error reaches the caller.
    /// </summary>
    public async ValueTask RaiseDefaultEventAsync(string label, IReadOnlyDictionary<string, object?>? args, CancellationToken cancellationToken)
    {
        if (Options.RaiseDefaultEventsRemotely && Publisher.ShouldPublish(label))
        {
            Publisher.Publish(new RaiseRequest
            {
                Event = label,
                Args = ToStruct(args),
                // The publisher may retry a batch: the key keeps a retried event from being stored twice.
                IdempotencyKey = IdempotencyKeys.New(),
                Source = Options.Client.Source ?? string.Empty,
            });
        }

        if (Hooks.HasHooksFor(label))
        {
            await Hooks.ExecuteAsync(label, args, cancellationToken);
        }
    }

    public ValueTask DisposeAsync() => client.DisposeAsync();

    private static Struct ToStruct(IReadOnlyDictionary<string, object?>? args)
    {
        var result = new Struct();
        if (args is null)
        {
            return result;
        }

        foreach (var (key, value) in args)
        {
            result.Fields[key] = value switch
            {
                null => Value.ForNull(),
                string text => Value.ForString(text),
                int number => Value.ForNumber(number),
                double number => Value.ForNumber(number),
                bool flag => Value.ForBool(flag),
                _ => Value.ForString(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)),
            };
        }

        return result;
    }
}

/// <summary>
/// <see cref="IHookBrokerClient"/> of an app with <c>AddHookBroker</c>: like Backendpy's <c>app.execute_event</c>, it
/// raises through the broker (awaiting its answer) and then runs the hooks attached to the app, in registration order.
/// </summary>
internal sealed class AppHookBrokerClient(HookBrokerClient client, Hooks hooks) : IHookBrokerClient
{
    public async ValueTask<RaiseResult> ExecuteEventAsync(string label, object? args = null, RaiseOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await client.ExecuteEventAsync(label, args, options, cancellationToken);
        if (hooks.HasHooksFor(label))
        {
            await hooks.ExecuteAsync(label, args, cancellationToken);
        }

        return result;
    }

    /// <summary>The channel belongs to the app (disposed with the service provider), not to this view of it.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
