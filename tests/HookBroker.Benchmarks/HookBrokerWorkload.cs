using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Protocol.V1;

namespace HookBroker.Benchmarks;

/// <summary>Raises through RaiseStream (batched, bounded window) and consumes with raw Subscribe streams that ack in batches.</summary>
internal static class HookBrokerWorkload
{
    private const int Window = 20_000;
    private const int BatchSize = 500;

    public sealed record Outcome(double EventsPerSecond, Latencies Latencies, long Lost, long Duplicates, TimeSpan Elapsed);

    /// <summary>Raises <paramref name="n"/> events of <paramref name="label"/> (at <paramref name="rate"/>/s when &gt; 0), consumed by
    /// one worker in each of <paramref name="groups"/> groups; events/s is from the first send to the last delivery.</summary>
    public static async Task<Outcome> RunAsync(GrpcChannel channel, string label, int groups, int n, int rate)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var latencies = new Latencies(n * groups);
        var consumers = new List<Consumer>();
        for (var g = 0; g < groups; g++)
        {
            consumers.Add(await Consumer.StartAsync(client, $"{label}-g{g}", label, n, latencies));
        }

        var stopwatch = Stopwatch.StartNew();
        await ProduceAsync(client, label, n, rate);
        var allDone = Task.WhenAll(consumers.Select(c => c.Done));
        var timeout = TimeSpan.FromSeconds(Math.Max(60, n / 2_000.0));
        await Task.WhenAny(allDone, Task.Delay(timeout));
        var elapsed = stopwatch.Elapsed;
        var lost = consumers.Sum(c => (long)n - c.Distinct);
        var duplicates = consumers.Sum(c => c.Duplicates);
        foreach (var consumer in consumers)
        {
            await consumer.DisposeAsync();
        }

        return new Outcome(n * (double)groups / elapsed.TotalSeconds, latencies, lost, duplicates, elapsed);
    }

    /// <summary>Consumes <paramref name="n"/> events already waiting in <paramref name="group"/> with one worker.</summary>
    public static async Task<Outcome> DrainAsync(GrpcChannel channel, string group, string label, int n)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var latencies = new Latencies(0);
        var stopwatch = Stopwatch.StartNew();
        await using var consumer = await Consumer.StartAsync(client, group, label, n, latencies);
        await Task.WhenAny(consumer.Done, Task.Delay(TimeSpan.FromSeconds(Math.Max(60, n / 2_000.0))));
        return new Outcome(n / stopwatch.Elapsed.TotalSeconds, latencies, n - consumer.Distinct, consumer.Duplicates, stopwatch.Elapsed);
    }

    /// <summary>Raises only: <paramref name="n"/> unary raises from <paramref name="callers"/> concurrent callers, or RaiseStream batches.</summary>
    public static async Task<double> RaiseOnlyAsync(GrpcChannel channel, string label, int n, bool unary, int callers = 64)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        // A durable group with no worker online: every raise is stored.
        await using (await Consumer.StartAsync(client, $"{label}-g", label, 0, new Latencies(0)))
        {
        }

        var stopwatch = Stopwatch.StartNew();
        if (unary)
        {
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < n)
                {
                    await client.RaiseAsync(new RaiseRequest { Event = label, Args = Payload.Args(i) });
                }
            }));
        }
        else
        {
            await ProduceAsync(client, label, n, rate: 0);
        }

        return n / stopwatch.Elapsed.TotalSeconds;
    }

    private static async Task ProduceAsync(Protocol.V1.HookBroker.HookBrokerClient client, string label, int n, int rate)
    {
        using var call = client.RaiseStream();
        var answered = 0L;
        var failed = 0L;
        var reader = Task.Run(async () =>
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                foreach (var result in response.Results)
                {
                    if (result.Status.Code != 0)
                    {
                        Interlocked.Increment(ref failed);
                    }
                }

                Interlocked.Add(ref answered, response.Results.Count);
            }
        });

        var started = Stopwatch.GetTimestamp();
        var sent = 0;
        while (sent < n)
        {
            int due;
            if (rate > 0)
            {
                var shouldHave = (int)Math.Min(n, Stopwatch.GetElapsedTime(started).TotalSeconds * rate);
                due = shouldHave - sent;
                if (due <= 0)
                {
                    await Task.Delay(1);
                    continue;
                }
            }
            else
            {
                due = Math.Min(BatchSize, n - sent);
                while (sent - Interlocked.Read(ref answered) > Window)
                {
                    await Task.Delay(1);
                }
            }

            var request = new RaiseStreamRequest();
            for (var i = 0; i < Math.Min(due, BatchSize); i++, sent++)
            {
                request.Items.Add(new RaiseItem { Sequence = (ulong)sent, Raise = new RaiseRequest { Event = label, Args = Payload.Args(sent) } });
            }

            await call.RequestStream.WriteAsync(request);
        }

        await call.RequestStream.CompleteAsync();
        await reader;
        if (failed > 0)
        {
            throw new InvalidOperationException($"{failed} raises failed");
        }
    }

    /// <summary>One worker: records latencies, counts distinct and duplicate deliveries, acks each response in one message.</summary>
    private sealed class Consumer : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> _call;
        private readonly bool[] _seen;
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _loop;
        private int _distinct;

        private Consumer(AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse> call, int n, Latencies latencies)
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

        public static async Task<Consumer> StartAsync(Protocol.V1.HookBroker.HookBrokerClient client, string group, string label, int n, Latencies latencies)
        {
            var call = client.Subscribe();
            var start = new SubscribeStart { Group = group, MaxInFlight = 10_000 };
            start.Events.Add(label);
            await call.RequestStream.WriteAsync(new SubscribeRequest { Subscribe = start });
            if (!await call.ResponseStream.MoveNext() || call.ResponseStream.Current.Subscribed is null)
            {
                throw new InvalidOperationException("subscribe was not confirmed");
            }

            return new Consumer(call, n, latencies);
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
            catch (Exception ex) when (ex is RpcException or ObjectDisposedException or OperationCanceledException)
            {
                // The stream was closed under the reader: expected at the end of a run.
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
}
