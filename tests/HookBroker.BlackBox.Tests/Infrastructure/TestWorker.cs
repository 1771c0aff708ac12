using System.Threading.Channels;
using Grpc.Core;
using HookBroker.Protocol.V1;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.BlackBox.Tests.Infrastructure;

/// <summary>
/// A raw subscriber stream, as any gRPC client generated from the proto would hold it: deliveries and settlement
/// confirmations are read from the stream into two queues, settlements are written on it.
/// </summary>
internal sealed class TestWorker : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> call;
    private readonly SemaphoreSlim writeGate = new(1, 1);
    // The broker bounds both by max_in_flight (deliveries) and by what this worker settled (confirmations).
    private readonly Channel<Delivery> deliveries = Channel.CreateUnbounded<Delivery>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Channel<SettleConfirmation> confirmations = Channel.CreateUnbounded<SettleConfirmation>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Task pump;

    private TestWorker(AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> call, SubscribeResponse first)
    {
        this.call = call;
        Subscribed = first.Subscribed;
        Enqueue(first);
        pump = PumpAsync();
    }

    /// <summary>The broker's answer to the subscribe request.</summary>
    public Subscribed Subscribed { get; }

    public ChannelReader<Delivery> Deliveries => deliveries.Reader;

    public ChannelReader<SettleConfirmation> Confirmations => confirmations.Reader;

    /// <summary>Completes when the response stream has ended (both queues are then completed).</summary>
    public Task Completion => pump;

    /// <summary>What ended the response stream, if it ended with an error.</summary>
    public RpcException? StreamError { get; private set; }

    /// <summary>Opens a Subscribe stream, sends <c>subscribe</c> and waits for <c>subscribed</c>.</summary>
    public static async Task<TestWorker> SubscribeAsync(
        BrokerApi.HookBrokerClient client, string group, IReadOnlyList<string> events, int maxInFlight, CancellationToken cancellationToken)
    {
        var call = client.Subscribe(cancellationToken: cancellationToken);
        try
        {
            await call.RequestStream.WriteAsync(
                new SubscribeRequest
                {
                    Subscribe = new SubscribeStart { Group = group, Events = { events }, MaxInFlight = maxInFlight, WorkerName = "blackbox-tests" },
                },
                cancellationToken);
            if (!await call.ResponseStream.MoveNext(cancellationToken))
            {
                throw new InvalidOperationException($"The Subscribe stream for group '{group}' ended before `subscribed`.");
            }

            var first = call.ResponseStream.Current;
            if (first.Subscribed is null)
            {
                throw new InvalidOperationException($"The first Subscribe response for group '{group}' is not `subscribed`: {first}");
            }

            return new TestWorker(call, first);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    }

    public Task AckAsync(IEnumerable<string> deliveryIds, CancellationToken cancellationToken) =>
        SendAsync(new SubscribeRequest { Acks = { deliveryIds } }, cancellationToken);

    /// <summary>Writes one settlement message; writes are serialized as gRPC requires.</summary>
    public async Task SendAsync(SubscribeRequest request, CancellationToken cancellationToken)
    {
        await writeGate.WaitAsync(cancellationToken);
        try
        {
            await call.RequestStream.WriteAsync(request, cancellationToken);
        }
        finally
        {
            writeGate.Release();
        }
    }

    /// <summary>The next delivery, waiting at most <paramref name="timeout"/>.</summary>
    public Task<Delivery> NextDeliveryAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        NextAsync(deliveries.Reader, "a delivery", timeout, cancellationToken);

    /// <summary>The next settlement confirmation, waiting at most <paramref name="timeout"/>.</summary>
    public Task<SettleConfirmation> NextConfirmationAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        NextAsync(confirmations.Reader, "a settlement confirmation", timeout, cancellationToken);

    /// <summary>Cancels the call if the broker has not ended it and waits for the response pump. Idempotent.</summary>
    /// <remarks>The write gate is left undisposed: a settlement racing with disposal then fails on the call, not on it.</remarks>
    public async ValueTask DisposeAsync()
    {
        call.Dispose();
        await pump;
    }

    private async Task<T> NextAsync<T>(ChannelReader<T> reader, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            return await reader.ReadAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No {what} within {timeout.TotalSeconds:0.#} s.");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"The Subscribe stream ended while waiting for {what}: {StreamError?.Status.ToString() ?? "completed"}");
        }
    }

    private async Task PumpAsync()
    {
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                Enqueue(call.ResponseStream.Current);
            }
        }
        catch (RpcException e)
        {
            StreamError = e;
        }
        catch (ObjectDisposedException)
        {
            // Disposed by the test while the pump was between reads: the stream ended from this side.
        }
        finally
        {
            deliveries.Writer.TryComplete();
            confirmations.Writer.TryComplete();
        }
    }

    private void Enqueue(SubscribeResponse response)
    {
        foreach (var delivery in response.Deliveries)
        {
            deliveries.Writer.TryWrite(delivery);
        }

        foreach (var confirmation in response.Confirmations)
        {
            confirmations.Writer.TryWrite(confirmation);
        }
    }
}
