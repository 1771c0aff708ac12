using System.Threading.Channels;
using Grpc.Core;
using HookBroker.Broker.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Services;

/// <summary>The public HookBroker service: thin, it only moves messages between the wire and the core.</summary>
public sealed class HookBrokerService(
    RaiseCoordinator raises,
    SubscriptionManager subscriptions,
    GroupRouter router,
    IHostApplicationLifetime lifetime,
    TimeProvider time) : Protocol.V1.HookBroker.HookBrokerBase
{
    /// <summary>Most wait-mode raises one RaiseStream may have waiting; beyond it the stream stops reading (backpressure).</summary>
    public const int MaxWaitingPerStream = 10_000;

    /// <inheritdoc />
    public override async Task<RaiseResponse> Raise(RaiseRequest request, ServerCallContext context)
    {
        var stored = (await raises.StoreAsync([request], TimeLeft(context), context.CancellationToken))[0];
        if (stored.Error is not null)
        {
            throw stored.Error;
        }

        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        return await raises.CompleteAsync(stored, stopWaiting.Token);
    }

    /// <inheritdoc />
    public override async Task RaiseStream(IAsyncStreamReader<RaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var results = Channel.CreateBounded<RaiseResult>(new BoundedChannelOptions(MaxWaitingPerStream) { SingleReader = true });
        var writer = WriteResultsAsync(results.Reader, responseStream, context.CancellationToken);
        using var waitSlots = new SemaphoreSlim(MaxWaitingPerStream);
        var waits = new List<Task>();
        try
        {
            while (await requestStream.MoveNext(stopping.Token))
            {
                var items = requestStream.Current.Items;
                var stored = await raises.StoreAsync([.. items.Select(i => i.Raise ?? new RaiseRequest())], TimeLeft(context), context.CancellationToken);
                for (var i = 0; i < items.Count; i++)
                {
                    var sequence = items[i].Sequence;
                    var item = stored[i];
                    if (item.Error is not null)
                    {
                        await results.Writer.WriteAsync(Failed(sequence, item.Error), context.CancellationToken);
                    }
                    else if (item.Wait is null)
                    {
                        await results.Writer.WriteAsync(Succeeded(sequence, await raises.CompleteAsync(item, context.CancellationToken)), context.CancellationToken);
                    }
                    else
                    {
                        await waitSlots.WaitAsync(stopping.Token);
                        waits.RemoveAll(t => t.IsCompleted);
                        waits.Add(WaitAndAnswerAsync(sequence, item, results.Writer, waitSlots, stopping.Token));
                    }
                }
            }

            await Task.WhenAll(waits);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // Answer what was stored, then tell the client to go elsewhere.
            await Task.WhenAll(waits);
            results.Writer.TryComplete();
            await writer;
            throw BrokerException.ShuttingDown();
        }
        finally
        {
            results.Writer.TryComplete();
        }

        await writer;
    }

    /// <inheritdoc />
    public override async Task WatchInterest(WatchInterestRequest request, IServerStreamWriter<InterestSnapshot> responseStream, ServerCallContext context)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var sent = -1L;
        try
        {
            while (true)
            {
                var changed = router.Changed;
                var version = router.Version;
                if (version != sent)
                {
                    var snapshot = new InterestSnapshot { Version = (ulong)version };
                    snapshot.Patterns.AddRange(router.AllPatterns());
                    await responseStream.WriteAsync(snapshot, stopping.Token);
                    sent = version;
                }

                await changed.WaitAsync(stopping.Token);
            }
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw BrokerException.ShuttingDown();
        }
    }

    /// <inheritdoc />
    public override async Task Subscribe(IAsyncStreamReader<SubscribeRequest> requestStream, IServerStreamWriter<SubscribeResponse> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken))
        {
            return;
        }

        var start = requestStream.Current.Subscribe
            ?? throw BrokerException.Precondition("the first message of a Subscribe stream must carry 'subscribe' (group, events, max_in_flight)");
        var session = await subscriptions.OpenAsync(start, context.CancellationToken);
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, session.Aborted);
        try
        {
            await responseStream.WriteAsync(subscriptions.Subscribed(session), context.CancellationToken);
            var writer = WriteDeliveriesAsync(session, responseStream, ended.Token);
            var reader = ReadSettlementsAsync(session, requestStream, ended.Token);
            var first = await Task.WhenAny(writer, reader);
            await ended.CancelAsync();
            await Task.WhenAll(writer, reader).ContinueWith(static _ => { }, TaskScheduler.Default);
            // Surface a protocol error of the reader (e.g. a second subscribe) to the client.
            if (first == reader && reader.Exception?.InnerException is BrokerException refused)
            {
                throw refused;
            }
        }
        finally
        {
            await subscriptions.CloseAsync(session);
        }

        if (session.AbortStatus is { } status && status.StatusCode != StatusCode.Cancelled)
        {
            throw new RpcException(status);
        }
    }

    private async Task WriteDeliveriesAsync(WorkerSession session, IServerStreamWriter<SubscribeResponse> responseStream, CancellationToken cancellationToken)
    {
        while (await session.NextAsync(subscriptions.HeartbeatInterval, time, cancellationToken) is { } message)
        {
            await responseStream.WriteAsync(message, cancellationToken);
        }
    }

    private async Task ReadSettlementsAsync(WorkerSession session, IAsyncStreamReader<SubscribeRequest> requestStream, CancellationToken cancellationToken)
    {
        try
        {
            while (await requestStream.MoveNext(cancellationToken))
            {
                var request = requestStream.Current;
                if (request.Subscribe is not null)
                {
                    throw BrokerException.Precondition("'subscribe' may only be sent once, in the first message of the stream; open a new stream to change the subscription");
                }

                await session.WaitForRoomAsync(cancellationToken);
                await subscriptions.SettleAsync(session, request, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The stream ended from the other side.
        }
    }

    private async Task WaitAndAnswerAsync(ulong sequence, RaiseItemResult item, ChannelWriter<RaiseResult> results, SemaphoreSlim slots, CancellationToken stopWaiting)
    {
        try
        {
            var response = await raises.CompleteAsync(item, stopWaiting);
            await results.WriteAsync(Succeeded(sequence, response), CancellationToken.None);
        }
        finally
        {
            slots.Release();
        }
    }

    private static async Task WriteResultsAsync(ChannelReader<RaiseResult> results, IServerStreamWriter<RaiseStreamResponse> responseStream, CancellationToken cancellationToken)
    {
        while (await results.WaitToReadAsync(cancellationToken))
        {
            // Everything ready goes out in one message.
            var message = new RaiseStreamResponse();
            while (message.Results.Count < 10_000 && results.TryRead(out var result))
            {
                message.Results.Add(result);
            }

            await responseStream.WriteAsync(message, cancellationToken);
        }
    }

    private static RaiseResult Succeeded(ulong sequence, RaiseResponse response) =>
        new() { Sequence = sequence, Status = new ItemStatus { Code = (int)StatusCode.OK }, Response = response };

    private static RaiseResult Failed(ulong sequence, BrokerException error) =>
        new() { Sequence = sequence, Status = new ItemStatus { Code = (int)error.Code, Message = error.Message } };

    // grpc-dotnet stamps the deadline from the system clock when the call arrives, so the time left is measured on that
    // clock too; the injected TimeProvider (which may be fake, or skewed) governs the broker's own rules, not the transport.
    private static TimeSpan? TimeLeft(ServerCallContext context) =>
        context.Deadline == DateTime.MaxValue ? null : context.Deadline - TimeProvider.System.GetUtcNow().UtcDateTime;
}
