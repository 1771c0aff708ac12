using System.Runtime.ExceptionServices;
using Grpc.Core;
using HookBroker.Broker.Core;
using HookBroker.Wire;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Services;

/// <summary>The public HookBroker service: thin, it only moves messages between the wire and the core.</summary>
internal sealed class HookBrokerService(
    RaiseCoordinator raises,
    SubscriptionManager subscriptions,
    GroupRouter router,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<HookBrokerService> logger) : HookBrokerBinding.ServiceBase
{
    /// <inheritdoc />
    public override async Task<RaiseResponse> Raise(RawRaiseRequest request, ServerCallContext context)
    {
        // Failures are mapped here, not by an interceptor: the hot unary call pays no async step for it.
        try
        {
            var stored = await raises.StoreOneAsync(request, TimeLeft(context), context.CancellationToken);
            if (stored.Error is not null)
            {
                throw stored.Error;
            }

            // Answered once stored, unless in wait mode: only waiting needs the tokens linked.
            if (RaiseCoordinator.ImmediateResponse(stored) is { } response)
            {
                return response;
            }

            using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
            return await raises.CompleteAsync(stored, stopWaiting.Token);
        }
        catch (Exception ex) when (ServiceFailures.Translate(ex, context, logger) is { } status)
        {
            throw status;
        }
    }

    /// <inheritdoc />
    public override Task RaiseStream(IAsyncStreamReader<RawRaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context) =>
        MapFailuresAsync(RaiseStreamCoreAsync(requestStream, responseStream, context), context);

    private async Task RaiseStreamCoreAsync(IAsyncStreamReader<RawRaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        using var call = new RaiseStreamCall(raises, context, () => TimeLeft(context), logger, stopping.Token);
        await call.RunAsync(requestStream, responseStream);
    }

    /// <inheritdoc />
    public override Task WatchInterest(WatchInterestRequest request, IServerStreamWriter<InterestSnapshot> responseStream, ServerCallContext context) =>
        MapFailuresAsync(WatchInterestCoreAsync(request, responseStream, context), context);

    private async Task WatchInterestCoreAsync(WatchInterestRequest request, IServerStreamWriter<InterestSnapshot> responseStream, ServerCallContext context)
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
    public override Task Subscribe(IAsyncStreamReader<SubscribeRequest> requestStream, IServerStreamWriter<RawSubscribeResponse> responseStream, ServerCallContext context) =>
        MapFailuresAsync(SubscribeCoreAsync(requestStream, responseStream, context), context);

    private async Task SubscribeCoreAsync(IAsyncStreamReader<SubscribeRequest> requestStream, IServerStreamWriter<RawSubscribeResponse> responseStream, ServerCallContext context)
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
            // Surface the reader's failure to the client: a protocol error (e.g. a second subscribe) with its own status,
            // storage failing under a settlement as UNAVAILABLE, anything else as INTERNAL (MapFailuresAsync), never as OK.
            // A client that reset its stream (IOException, the call cancelled) is the transport's business.
            if (first == reader && reader.Exception?.InnerException is { } failure
                && (failure is BrokerException || (failure is not IOException && !context.CancellationToken.IsCancellationRequested)))
            {
                ExceptionDispatchInfo.Throw(failure);
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

    /// <summary>Awaits a streaming call, mapping its failure to the status the proto documents (<see cref="ServiceFailures"/>).</summary>
    private async Task MapFailuresAsync(Task call, ServerCallContext context)
    {
        try
        {
            await call;
        }
        catch (Exception ex) when (ServiceFailures.Translate(ex, context, logger) is { } status)
        {
            throw status;
        }
    }

    private async Task WriteDeliveriesAsync(WorkerSession session, IServerStreamWriter<RawSubscribeResponse> responseStream, CancellationToken cancellationToken)
    {
        while (await session.NextAsync(time, cancellationToken) is { } message)
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

    // grpc-dotnet stamps the deadline from the system clock when the call arrives, so the time left is measured on that
    // clock too; the injected TimeProvider (which may be fake, or skewed) governs the broker's own rules, not the transport.
    private static TimeSpan? TimeLeft(ServerCallContext context) =>
        context.Deadline == DateTime.MaxValue ? null : context.Deadline - TimeProvider.System.GetUtcNow().UtcDateTime;
}
