using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Benchmarks;

/// <summary>
/// One worker on the generated client's raw <c>Subscribe</c> stream (the wire protocol alone): records latencies, counts
/// distinct and duplicate deliveries, acks each response's deliveries in one message.
/// </summary>
internal sealed class RawSubscribeConsumer : IBenchConsumer
{
    private readonly AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> _call;
    private readonly bool[] _seen;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _loop;
    private int _distinct;

    private RawSubscribeConsumer(AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> call, int n, Latencies latencies)
    {
        _call = call;
        _seen = new bool[n];
        if (n == 0)
        {
            _done.TrySetResult();
        }

        _loop = Task.Run(() => RunAsync(latencies));
    }

    public Task Done => _done.Task;

    public int Distinct => Volatile.Read(ref _distinct);

    public long Duplicates { get; private set; }

    public static async Task<RawSubscribeConsumer> StartAsync(Protocol.V1.HookBroker.HookBrokerClient client, string group, string label, int n, Latencies latencies)
    {
        var call = client.Subscribe();
        var start = new SubscribeStart { Group = group, MaxInFlight = 10_000 };
        start.Events.Add(label);
        await call.RequestStream.WriteAsync(new SubscribeRequest { Subscribe = start });
        if (!await call.ResponseStream.MoveNext() || call.ResponseStream.Current.Subscribed is null)
        {
            throw new InvalidOperationException("subscribe was not confirmed");
        }

        return new RawSubscribeConsumer(call, n, latencies);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _call.RequestStream.CompleteAsync();
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException)
        {
        }

        _call.Dispose();
        try
        {
            await _loop;
        }
        catch (Exception ex) when (ex is RpcException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The stream was closed under the reader (an ack written after the request stream completed throws
            // InvalidOperationException): expected at the end of a run.
        }
    }

    private async Task RunAsync(Latencies latencies)
    {
        await foreach (var message in _call.ResponseStream.ReadAllAsync())
        {
            if (message.Deliveries.Count == 0)
            {
                continue;
            }

            var acks = new SubscribeRequest();
            foreach (var delivery in message.Deliveries)
            {
                acks.Acks.Add(delivery.DeliveryId);
                var sequence = (int)delivery.Args.Fields["seq"].NumberValue;
                if (sequence < _seen.Length && !_seen[sequence])
                {
                    _seen[sequence] = true;
                    latencies.Add((long)delivery.Args.Fields["ts"].NumberValue);
                    if (Interlocked.Increment(ref _distinct) == _seen.Length)
                    {
                        _done.TrySetResult();
                    }
                }
                else
                {
                    Duplicates++;
                }
            }

            await _call.RequestStream.WriteAsync(acks);
        }
    }
}
