using System.Collections.ObjectModel;
using System.Text.Json;
using System.Threading.Channels;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Grpc.Core;
using HookBroker.Protocol.V1;
using HookBroker.Wire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>
/// One subscribed Subscribe stream: a reader moves deliveries into a bounded channel, <c>MaxConcurrency</c> handler loops
/// run the hooks, their settlements go through a second bounded channel to a single writer that batches them into as few
/// request messages as possible, and an extender renews every lease held past half the ack deadline: those of running
/// handlers and those of deliveries still waiting for a free handler (until the worker stops taking deliveries).
/// Deliveries arrive with their args as the serialized Struct (<see cref="RawSubscribeMethods"/>); a handler reads them
/// straight into JSON (<see cref="StructWireJsonDecoder"/>) for the hooks' binding.
/// </summary>
internal sealed class SubscriptionSession : IDisposable
{
    private const int MaxSettlementsPerMessage = 1000;

    /// <summary>
    /// How long the writer holds settlements back, at most, for those of deliveries still being handled (see
    /// <see cref="GatherMoreAsync"/>): acks travel in fewer, fuller messages, and a hook's latency is not affected.
    /// </summary>
    public static readonly TimeSpan DefaultSettlementLinger = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private static readonly IReadOnlyDictionary<string, string> NoHeaders = ReadOnlyDictionary<string, string>.Empty;

    private readonly AsyncDuplexStreamingCall<SubscribeRequest, RawSubscribeResponse> call;
    private readonly HookRegistration[] registrations;
    private readonly HookWorkerOptions options;
    private readonly IServiceScopeFactory scopes;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private readonly TimeSpan ackDeadline;
    // Whether any hook is a class resolved per call from a service scope (delegate hooks need none).
    private readonly bool hooksNeedScope;
    private readonly Channel<HeldLease> deliveries;
    private readonly Channel<Settlement> settlements;
    // Every lease this stream holds and has not settled, from receipt: waiting in the channel or running.
    private readonly HeldLeases held = new();
    private readonly CancellationTokenSource brokenSource = new();
    private readonly CancellationTokenSource handlersSource = new();
    private readonly CancellationToken broken;
    private readonly CancellationToken handlersToken;
    private readonly TimeSpan settlementLinger;
    // Deliveries received whose settlement (ack, nack or reject) the writer has not taken yet: while any, it gathers more.
    private int unsettled;

    public SubscriptionSession(
        AsyncDuplexStreamingCall<SubscribeRequest, RawSubscribeResponse> call,
        Subscribed subscribed,
        HookRegistration[] registrations,
        HookWorkerOptions options,
        IServiceScopeFactory scopes,
        ILogger logger,
        TimeProvider time,
        TimeSpan? settlementLinger = null)
    {
        this.call = call;
        this.settlementLinger = settlementLinger ?? DefaultSettlementLinger;
        this.registrations = registrations;
        this.options = options;
        this.scopes = scopes;
        this.logger = logger;
        this.time = time;
        hooksNeedScope = registrations.Any(r => r.Handler.UsesServices);
        var ackDeadlineFromBroker = subscribed.AckDeadline?.ToTimeSpan() ?? TimeSpan.Zero;
        ackDeadline = ackDeadlineFromBroker > TimeSpan.Zero ? ackDeadlineFromBroker : TimeSpan.FromSeconds(30);
        var maxInFlight = subscribed.MaxInFlight > 0 ? subscribed.MaxInFlight : options.MaxInFlight;
        // The broker never leases more than max_in_flight at once, so neither channel fills up in normal operation.
        deliveries = Channel.CreateBounded<HeldLease>(new BoundedChannelOptions(maxInFlight) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        settlements = Channel.CreateBounded<Settlement>(new BoundedChannelOptions(2 * maxInFlight) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        broken = brokenSource.Token;
        handlersToken = handlersSource.Token;
    }

    /// <summary>
    /// Runs until <paramref name="stoppingToken"/> (then drains and closes the stream; returns null) or until the stream
    /// ends or fails (returns why; the broker then releases this stream's leases for redelivery).
    /// </summary>
    public async Task<Exception?> RunAsync(CancellationToken stoppingToken)
    {
        using var stopTaking = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, broken);
        using var stopExtending = new CancellationTokenSource();
        var reader = ReadAsync();
        var writer = WriteAsync();
        var extender = ExtendAsync(stopExtending.Token);
        var handlers = new Task[options.MaxConcurrency];
        for (var i = 0; i < handlers.Length; i++)
        {
            handlers[i] = HandleLoopAsync(stopTaking.Token);
        }

        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? ended = null;
        using (stoppingToken.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), stopped))
        {
            if (await Task.WhenAny(reader, stopped.Task) == reader)
            {
                ended = await reader ?? new RpcException(new Status(StatusCode.Unavailable, "the broker ended the stream"));
                await brokenSource.CancelAsync();
                await handlersSource.CancelAsync();
            }
            else
            {
                var runningHandlers = held.Snapshot(startedOnly: true).Count;
                WorkerLog.Draining(logger, options.Group, runningHandlers);
            }
        }

        try
        {
            await Task.WhenAll(handlers).WaitAsync(options.DrainTimeout, time, CancellationToken.None);
        }
        catch (TimeoutException)
        {
            var abandoned = 0;
            // Only running handlers: deliveries never started are released when the stream closes.
            foreach (var lease in held.Snapshot(startedOnly: true))
            {
                if (held.TryRemove(lease))
                {
                    abandoned++;
                    await TrySettleAsync(Settlement.Nack(lease.Delivery.DeliveryId, "the worker stopped before the hook finished"));
                }
            }

            WorkerLog.DrainTimedOut(logger, options.Group, options.DrainTimeout, abandoned);
            await handlersSource.CancelAsync();
        }

        await stopExtending.CancelAsync();
        await extender;
        settlements.Writer.TryComplete();
        await writer;
        if (ended is null)
        {
            // The request stream is complete: the broker answers the last settlements, then ends the stream.
            try
            {
                await reader.WaitAsync(CloseTimeout, time, CancellationToken.None);
            }
            catch (TimeoutException)
            {
                // Disposing the call below ends it; the broker releases whatever this stream still held.
            }
        }

        call.Dispose();
        await reader;
        return ended;
    }

    public void Dispose()
    {
        call.Dispose();
        brokenSource.Dispose();
        handlersSource.Dispose();
    }

    private async Task<Exception?> ReadAsync()
    {
        await Task.Yield();
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                var response = call.ResponseStream.Current;
                var now = time.GetUtcNow();
                var received = response.Deliveries;
                for (var i = 0; i < received.Count; i++)
                {
                    var delivery = received[i];
                    // Tracked from receipt, so a delivery waiting for a free handler keeps its lease too. The broker's
                    // lease end when it is sooner (a worker clock ahead of the broker's only extends earlier).
                    var endsAt = now + ackDeadline;
                    if (delivery.LeaseExpiresAt?.ToDateTimeOffset() is { } expiresAt && expiresAt < endsAt)
                    {
                        endsAt = expiresAt;
                    }

                    var lease = new HeldLease(delivery, endsAt);
                    held.Add(lease);
                    Interlocked.Increment(ref unsettled);
                    // Never full (max_in_flight bounds it); once stopping, unstarted deliveries wait here and are released
                    // by the broker when the stream closes.
                    deliveries.Writer.TryWrite(lease);
                }

                var confirmations = response.Confirmations;
                for (var i = 0; i < confirmations.Count; i++)
                {
                    var confirmation = confirmations[i];
                    if (confirmation.Status == SettleStatus.Invalid)
                    {
                        WorkerLog.SettlementNotConfirmed(logger, confirmation.Kind.ToString(), confirmation.DeliveryId, confirmation.Status.ToString(), confirmation.Message);
                    }
                }
            }

            return null;
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or OperationCanceledException)
        {
            return e;
        }
    }

    private async Task WriteAsync()
    {
        var reader = settlements.Reader;
        try
        {
            while (await reader.WaitToReadAsync(broken))
            {
                var request = new SubscribeRequest();
                var count = TakeAvailable(reader, request, 0);
                if (count < MaxSettlementsPerMessage && Volatile.Read(ref unsettled) > 0)
                {
                    count = await GatherMoreAsync(reader, request, count);
                }

                await call.RequestStream.WriteAsync(request, broken);
            }

            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or OperationCanceledException)
        {
            // The stream is gone: the broker releases its leases, so whatever was not sent is redelivered.
            await brokenSource.CancelAsync();
        }
    }

    /// <summary>
    /// Handlers are still busy with deliveries this stream received: their settlements join this message, so while the
    /// handlers keep up a delivered batch is settled in one message (not one per handler), for at most
    /// the settlement linger (<see cref="DefaultSettlementLinger"/>; the settlements already taken never wait longer).
    /// </summary>
    private async ValueTask<int> GatherMoreAsync(ChannelReader<Settlement> reader, SubscribeRequest request, int count)
    {
        using var linger = new CancellationTokenSource(settlementLinger, time);
        try
        {
            while (count < MaxSettlementsPerMessage && Volatile.Read(ref unsettled) > 0 && await reader.WaitToReadAsync(linger.Token))
            {
                count = TakeAvailable(reader, request, count);
            }
        }
        catch (OperationCanceledException) when (linger.IsCancellationRequested)
        {
            // Waited long enough: send what was gathered.
        }

        return count;
    }

    private int TakeAvailable(ChannelReader<Settlement> reader, SubscribeRequest request, int count)
    {
        while (count < MaxSettlementsPerMessage && reader.TryRead(out var settlement))
        {
            settlement.AddTo(request);
            count++;
            if (settlement.Kind != SettleKind.Extend)
            {
                Interlocked.Decrement(ref unsettled);
            }
        }

        return count;
    }

    private async Task HandleLoopAsync(CancellationToken stopTaking)
    {
        try
        {
            while (await deliveries.Reader.WaitToReadAsync(stopTaking))
            {
                while (!stopTaking.IsCancellationRequested && deliveries.Reader.TryRead(out var lease))
                {
                    await HandleAsync(lease);
                }
            }
        }
        catch (OperationCanceledException) when (stopTaking.IsCancellationRequested)
        {
            // Stop taking deliveries: the running one (if any) has finished.
        }
    }

    private async Task HandleAsync(HeldLease lease)
    {
        lease.Started = true;
        var delivery = lease.Delivery;
        var id = delivery.DeliveryId;
        DecodedArgs args;
        try
        {
            args = StructWireJsonDecoder.Decode(delivery.HasArgs ? delivery.Args.Span : default);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or JsonException)
        {
            // Poison: the same bytes can never be read (the broker checks args on raise, so this takes a broken store).
            WorkerLog.BindingFailed(logger, delivery.Event, delivery.EventId, $"the args cannot be read: {e.Message}");
            await SettleIfHeldAsync(lease, Settlement.Reject(id, $"the args cannot be read: {e.Message}"));
            return;
        }

        Settlement settlement;
        AsyncServiceScope? scope = null;
        using (args)
        {
            try
            {
                var context = new HookContext(
                    delivery.Event,
                    delivery.EventId,
                    delivery.Attempt,
                    delivery.Headers.Count == 0 ? NoHeaders : ToDictionary(delivery.Headers),
                    NullIfEmpty(delivery.Source),
                    NullIfEmpty(delivery.OrderingKey),
                    delivery.RaisedAt?.ToDateTimeOffset());
                scope = hooksNeedScope ? scopes.CreateAsyncScope() : null;
                var call = new HookCall(args.Root, context, scope?.ServiceProvider, handlersToken);
                foreach (var registration in registrations)
                {
                    if (registration.Matches(delivery.Event))
                    {
                        await registration.Handler.InvokeAsync(call);
                    }
                }

                settlement = Settlement.Ack(id);
                WorkerLog.Handled(logger, delivery.Event, delivery.EventId, delivery.Attempt);
            }
            catch (HookBindingException e)
            {
                // Poison: the same args can never bind.
                WorkerLog.BindingFailed(logger, delivery.Event, delivery.EventId, e.Message);
                settlement = Settlement.Reject(id, e.Message);
            }
            catch (OperationCanceledException) when (handlersToken.IsCancellationRequested)
            {
                settlement = Settlement.Nack(id, "the worker stopped before the hook finished");
            }
#pragma warning disable CA1031 // Any exception of a hook is its failure: it is nacked, with the error kept by the broker.
            catch (Exception e)
#pragma warning restore CA1031
            {
                WorkerLog.HandlerFailed(logger, e, delivery.Event, delivery.EventId, delivery.Attempt);
                settlement = Settlement.Nack(id, $"{e.GetType().Name}: {e.Message}");
            }
        }

        if (scope is { } created)
        {
            try
            {
                await created.DisposeAsync();
            }
#pragma warning disable CA1031 // The scope's services end the hook's work (say, a unit of work that commits on dispose): their failure is the hook's.
            catch (Exception e)
#pragma warning restore CA1031
            {
                WorkerLog.HandlerFailed(logger, e, delivery.Event, delivery.EventId, delivery.Attempt);
                if (settlement.Kind == SettleKind.Ack)
                {
                    settlement = Settlement.Nack(id, $"{e.GetType().Name}: {e.Message}");
                }
            }
        }

        await SettleIfHeldAsync(lease, settlement);
    }

    /// <summary>Settles <paramref name="lease"/> unless the drain timeout settled it already: whoever removes a lease settles it.</summary>
    private ValueTask SettleIfHeldAsync(HeldLease lease, Settlement settlement) =>
        held.TryRemove(lease) ? TrySettleAsync(settlement) : ValueTask.CompletedTask;

    private async Task ExtendAsync(CancellationToken cancellationToken)
    {
        var interval = TimeSpan.FromTicks(Math.Clamp(ackDeadline.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(30).Ticks));
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                var now = time.GetUtcNow();
                // Deliveries waiting for a handler too, also while stopping: one that will not start here goes back to
                // the group when the stream closes, released at once, rather than expiring first (an expiry counts a
                // failed attempt, and the broker could lease the event again to this draining stream).
                foreach (var lease in held.Snapshot(startedOnly: false))
                {
                    // Extend once less than half the ack deadline is left; a full channel just waits for the next tick.
                    if (lease.EndsAt - now <= ackDeadline / 2 && settlements.Writer.TryWrite(Settlement.Extend(lease.Delivery.DeliveryId)))
                    {
                        lease.EndsAt = now + ackDeadline;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The session is over.
        }
    }

    private async ValueTask TrySettleAsync(Settlement settlement)
    {
        try
        {
            await settlements.Writer.WriteAsync(settlement, broken);
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException or ObjectDisposedException)
        {
            // The stream is gone; the broker redelivers the lease.
        }
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    /// <summary>A delivery's headers as the public map reads them: a key sent twice keeps its last value.</summary>
    private static Dictionary<string, string> ToDictionary(RepeatedField<HeaderEntry> headers)
    {
        var dictionary = new Dictionary<string, string>(headers.Count, StringComparer.Ordinal);
        foreach (var header in headers)
        {
            dictionary[header.Key] = header.Value;
        }

        return dictionary;
    }

    private static string Truncate(string text) => text.Length <= 4096 ? text : text[..4096];

    private readonly record struct Settlement(SettleKind Kind, string DeliveryId, string? Error)
    {
        public static Settlement Ack(string id) => new(SettleKind.Ack, id, null);

        public static Settlement Nack(string id, string error) => new(SettleKind.Nack, id, error);

        public static Settlement Reject(string id, string error) => new(SettleKind.Reject, id, error);

        public static Settlement Extend(string id) => new(SettleKind.Extend, id, null);

        public void AddTo(SubscribeRequest request)
        {
            switch (Kind)
            {
                case SettleKind.Ack:
                    request.Acks.Add(DeliveryId);
                    break;
                case SettleKind.Nack:
                    // No delay: the group's backoff (exponential, jittered) applies.
                    request.Nacks.Add(new Nack { DeliveryId = DeliveryId, Error = Truncate(Error ?? string.Empty) });
                    break;
                case SettleKind.Reject:
                    request.Rejects.Add(new Reject { DeliveryId = DeliveryId, Error = Truncate(Error ?? string.Empty) });
                    break;
                default:
                    request.Extends.Add(new Extend { DeliveryId = DeliveryId });
                    break;
            }
        }
    }
}
