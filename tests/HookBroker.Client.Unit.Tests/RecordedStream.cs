using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using HookBroker.Client.Internal;
using HookBroker.Protocol.V1;
using HookBroker.Wire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// A Subscribe call in memory: the test pushes responses, the session's request messages are recorded. Each delivery's
/// args are <c>{"id": its delivery id}</c>.
/// </summary>
internal sealed class RecordedStream(Action<IServiceCollection>? configureServices = null) : IAsyncDisposable
{
    private readonly Channel<RawSubscribeResponse> responses = Channel.CreateBounded<RawSubscribeResponse>(16);
    private readonly ConcurrentQueue<SubscribeRequest> requests = new();
    private readonly ServiceProvider services = Services(configureServices);

    public IReadOnlyCollection<string> Acks => [.. requests.SelectMany(r => r.Acks)];

    public IReadOnlyCollection<Nack> Nacks => [.. requests.SelectMany(r => r.Nacks)];

    public IReadOnlyCollection<string> Extends => [.. requests.SelectMany(r => r.Extends).Select(e => e.DeliveryId)];

    public int MessagesWithAcks => requests.Count(r => r.Acks.Count > 0);

    public SubscriptionSession Session(Hooks hooks, int maxConcurrency, TimeSpan linger, TimeSpan? ackDeadline = null)
    {
        var call = new AsyncDuplexStreamingCall<SubscribeRequest, RawSubscribeResponse>(
            new RecordingWriter(requests),
            new ChannelResponses(responses.Reader),
            Task.FromResult(new Metadata()),
            () => Status.DefaultSuccess,
            () => [],
            () => { });
        var options = new HookWorkerOptions { Group = "g", MaxInFlight = 100, MaxConcurrency = maxConcurrency };
        var subscribed = new Subscribed { Group = "g", WorkerId = "w", MaxInFlight = 100 };
        if (ackDeadline is { } deadline)
        {
            subscribed.AckDeadline = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(deadline);
        }

        return new SubscriptionSession(
            call, subscribed, hooks.Snapshot(), options, services.GetRequiredService<IServiceScopeFactory>(), NullLogger.Instance, TimeProvider.System, linger);
    }

    public async Task DeliverAsync(IEnumerable<string> ids)
    {
        var response = new RawSubscribeResponse();
        foreach (var id in ids)
        {
            var args = new Google.Protobuf.WellKnownTypes.Struct { Fields = { ["id"] = Google.Protobuf.WellKnownTypes.Value.ForString(id) } };
            response.Deliveries.Add(new RawDelivery { DeliveryId = id, EventId = id, Event = "e", Attempt = 1, Args = args.ToByteString() });
        }

        await responses.Writer.WriteAsync(response);
    }

    public void End() => responses.Writer.TryComplete();

    private static ServiceProvider Services(Action<IServiceCollection>? configure)
    {
        var collection = new ServiceCollection();
        configure?.Invoke(collection);
        return collection.BuildServiceProvider();
    }

    public async ValueTask DisposeAsync()
    {
        End();
        await services.DisposeAsync();
    }
}

internal sealed class RecordingWriter(ConcurrentQueue<SubscribeRequest> requests) : IClientStreamWriter<SubscribeRequest>
{
    public WriteOptions? WriteOptions { get; set; }

    public Task WriteAsync(SubscribeRequest message) => WriteAsync(message, CancellationToken.None);

    public Task WriteAsync(SubscribeRequest message, CancellationToken cancellationToken)
    {
        requests.Enqueue(message);
        return Task.CompletedTask;
    }

    public Task CompleteAsync() => Task.CompletedTask;
}

internal sealed class ChannelResponses(ChannelReader<RawSubscribeResponse> reader) : IAsyncStreamReader<RawSubscribeResponse>
{
    public RawSubscribeResponse Current { get; private set; } = null!;

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (!await reader.WaitToReadAsync(cancellationToken) || !reader.TryRead(out var next))
        {
            return false;
        }

        Current = next;
        return true;
    }
}
