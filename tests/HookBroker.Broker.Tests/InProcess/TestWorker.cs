using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>A raw worker stream, as a client generated from the proto would drive it.</summary>
public sealed class TestWorker : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> _call;
    private readonly Channel<Delivery> _deliveries = Channel.CreateUnbounded<Delivery>();
    private readonly Channel<SettleConfirmation> _confirmations = Channel.CreateUnbounded<SettleConfirmation>();
    private readonly Channel<Heartbeat> _heartbeats = Channel.CreateUnbounded<Heartbeat>();
    private readonly TaskCompletionSource<Subscribed> _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    public TestWorker(AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> call) => _call = call;

    /// <summary>How the stream ended, once it did (null while open).</summary>
    public Task<RpcException?> Ended { get; private set; } = Task.FromResult<RpcException?>(null);

    public Subscribed? Info { get; private set; }

    public async Task SubscribeAsync(string group, string[] events, int maxInFlight, bool omitConfirmed = false)
    {
        var start = new SubscribeStart { Group = group, MaxInFlight = maxInFlight, OmitConfirmed = omitConfirmed };
        start.Events.AddRange(events);
        Ended = ReadAsync();
        await SendAsync(new SubscribeRequest { Subscribe = start });
        Info = await _subscribed.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    /// <summary>Sends a raw request (for protocol tests).</summary>
    public async Task SendAsync(SubscribeRequest request)
    {
        await _writeLock.WaitAsync(TestContext.Current.CancellationToken);
        try
        {
            await _call.RequestStream.WriteAsync(request, TestContext.Current.CancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next delivery, waiting up to <paramref name="timeout"/> (default 10 s).</summary>
    public Task<Delivery> NextAsync(TimeSpan? timeout = null) => ReadWithinAsync(_deliveries.Reader, timeout ?? TimeSpan.FromSeconds(10));

    /// <summary>Exactly <paramref name="count"/> deliveries.</summary>
    public async Task<List<Delivery>> TakeAsync(int count, TimeSpan? timeout = null)
    {
        var list = new List<Delivery>(count);
        while (list.Count < count)
        {
            list.Add(await NextAsync(timeout));
        }

        return list;
    }

    /// <summary>The delivery queued now, if any: gives the broker a moment (polling) to prove that nothing arrives.</summary>
    public async Task<Delivery?> NothingWithinAsync(TimeSpan window)
    {
        // Wait without consuming: a timed-out read must not swallow the next delivery.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(window);
        try
        {
            await _deliveries.Reader.WaitToReadAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            return null;
        }

        return _deliveries.Reader.TryRead(out var delivery) ? delivery : null;
    }

    public Task<SettleConfirmation> NextConfirmationAsync() => ReadWithinAsync(_confirmations.Reader, TimeSpan.FromSeconds(10));

    public Task<Heartbeat> NextHeartbeatAsync() => ReadWithinAsync(_heartbeats.Reader, TimeSpan.FromSeconds(10));

    /// <summary>Reads one item; a timeout cancels the read itself, so no item is lost to an abandoned read.</summary>
    private static async Task<T> ReadWithinAsync<T>(ChannelReader<T> reader, TimeSpan timeout)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            return await reader.ReadAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"nothing arrived within {timeout.TotalSeconds:0.#} s");
        }
    }

    public async Task<SettleConfirmation> AckAsync(Delivery delivery)
    {
        await SendAsync(new SubscribeRequest { Acks = { delivery.DeliveryId } });
        return await NextConfirmationAsync();
    }

    public async Task<SettleConfirmation> NackAsync(Delivery delivery, string error, TimeSpan? delay = null)
    {
        var nack = new Nack { DeliveryId = delivery.DeliveryId, Error = error };
        if (delay is { } d)
        {
            nack.Delay = Duration.FromTimeSpan(d);
        }

        await SendAsync(new SubscribeRequest { Nacks = { nack } });
        return await NextConfirmationAsync();
    }

    public async Task<SettleConfirmation> RejectAsync(Delivery delivery, string error)
    {
        await SendAsync(new SubscribeRequest { Rejects = { new Reject { DeliveryId = delivery.DeliveryId, Error = error } } });
        return await NextConfirmationAsync();
    }

    public async Task<SettleConfirmation> ExtendAsync(Delivery delivery, TimeSpan lease)
    {
        await SendAsync(new SubscribeRequest { Extends = { new Extend { DeliveryId = delivery.DeliveryId, Lease = Duration.FromTimeSpan(lease) } } });
        return await NextConfirmationAsync();
    }

    /// <summary>Half-closes and ends the stream as a worker leaving would.</summary>
    public async Task LeaveAsync()
    {
        await _call.RequestStream.CompleteAsync();
        await Ended.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _call.Dispose();
        try
        {
            await Ended.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
        }

        _writeLock.Dispose();
    }

    private async Task<RpcException?> ReadAsync()
    {
        try
        {
            await foreach (var message in _call.ResponseStream.ReadAllAsync())
            {
                if (message.Subscribed is not null)
                {
                    _subscribed.TrySetResult(message.Subscribed);
                }

                foreach (var delivery in message.Deliveries)
                {
                    _deliveries.Writer.TryWrite(delivery);
                }

                foreach (var confirmation in message.Confirmations)
                {
                    _confirmations.Writer.TryWrite(confirmation);
                }

                if (message.Heartbeat is not null)
                {
                    _heartbeats.Writer.TryWrite(message.Heartbeat);
                }
            }

            return null;
        }
        catch (RpcException ex)
        {
            _subscribed.TrySetException(ex);
            return ex;
        }
        catch (ObjectDisposedException)
        {
            // The test disposed the call: the stream ended from this side.
            return null;
        }
    }
}
