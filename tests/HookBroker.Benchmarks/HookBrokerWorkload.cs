using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Client;
using HookBroker.Protocol.V1;

namespace HookBroker.Benchmarks;

/// <summary>How the raise-only scenario raises.</summary>
internal enum RaiseCall
{
    /// <summary>The SDK's <c>ExecuteEventAsync</c> from concurrent callers (batched onto a shared RaiseStream).</summary>
    Sdk,

    /// <summary>The SDK with <c>Batching = false</c>: one unary call per raise, from concurrent callers.</summary>
    SdkUnary,

    /// <summary>The generated client's unary Raise from concurrent callers.</summary>
    RawUnary,

    /// <summary>The generated client's RaiseStream: one caller, 500 raises per message, bounded window.</summary>
    RawStream,
}

/// <summary>
/// Raises through the SDK (<see cref="HookBrokerClient.ExecuteEventAsync"/>: windows of calls in flight, as the Redis
/// Streams producer sends its XADDs; paced in rate mode) and consumes with the SDK's worker host
/// (<see cref="SdkWorkerConsumer"/>), or with raw Subscribe streams that ack in batches (<see cref="RawSubscribeConsumer"/>).
/// </summary>
internal static class HookBrokerWorkload
{
    private const int Window = 20_000;
    private const int BatchSize = 500;


    public sealed record Outcome(double EventsPerSecond, Latencies Latencies, long Lost, long Duplicates, TimeSpan Elapsed);

    /// <summary>Raises <paramref name="n"/> events of <paramref name="label"/> (at <paramref name="rate"/>/s when &gt; 0), consumed by
    /// one worker in each of <paramref name="groups"/> groups; events/s is from the first send to the last delivery.</summary>
    /// <remarks>Without <paramref name="sdk"/>, the generated client's RaiseStream raises (the wire protocol alone); with
    /// <paramref name="rawConsumer"/>, raw Subscribe streams consume instead of the SDK's worker host.</remarks>
    public static async Task<Outcome> RunAsync(GrpcChannel channel, Uri address, IHookBrokerClient? sdk, bool rawConsumer, string label, int groups, int n, int rate)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var latencies = new Latencies(n * groups);
        var consumers = new List<IBenchConsumer>();
        for (var g = 0; g < groups; g++)
        {
            consumers.Add(rawConsumer
                ? await RawSubscribeConsumer.StartAsync(client, $"{label}-g{g}", label, n, latencies)
                : await SdkWorkerConsumer.StartAsync(address, channel, $"{label}-g{g}", label, n, latencies));
        }

        var stopwatch = Stopwatch.StartNew();
        if (sdk is null)
        {
            await ProduceAsync(client, label, n, rate);
        }
        else
        {
            await ProduceWithSdkInWindowsAsync(sdk, label, n, rate);
        }

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

    /// <summary>Consumes <paramref name="n"/> events already waiting in <paramref name="group"/> with one raw Subscribe stream.</summary>
    public static async Task<Outcome> DrainAsync(GrpcChannel channel, string group, string label, int n)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var latencies = new Latencies(0);
        var stopwatch = Stopwatch.StartNew();
        await using var consumer = await RawSubscribeConsumer.StartAsync(client, group, label, n, latencies);
        await Task.WhenAny(consumer.Done, Task.Delay(TimeSpan.FromSeconds(Math.Max(60, n / 2_000.0))));
        return new Outcome(n / stopwatch.Elapsed.TotalSeconds, latencies, n - consumer.Distinct, consumer.Duplicates, stopwatch.Elapsed);
    }

    /// <summary>Raises only: <paramref name="n"/> raises from <paramref name="callers"/> concurrent callers, or RaiseStream batches.</summary>
    /// <param name="channel">The broker's channel (or the bare gRPC server's, with <paramref name="subscribe"/> false).</param>
    /// <param name="label">The event label raised.</param>
    /// <param name="n">How many raises.</param>
    /// <param name="how">Through the SDK, or the generated client's unary calls or RaiseStream.</param>
    /// <param name="subscribe">First subscribe a durable group to <paramref name="label"/> (no worker stays online), so every raise is stored.</param>
    /// <param name="callers">Concurrent callers (all but <see cref="RaiseCall.RawStream"/>).</param>
    /// <param name="address">The address of <paramref name="channel"/>, for the SDK's own channel (SDK calls only).</param>
    public static async Task<double> RaiseOnlyAsync(GrpcChannel channel, string label, int n, RaiseCall how, bool subscribe = true, int callers = 64, Uri? address = null)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        if (subscribe)
        {
            // A durable group with no worker online: every raise is stored.
            await using (await RawSubscribeConsumer.StartAsync(client, $"{label}-g", label, 0, new Latencies(0)))
            {
            }
        }

        if (how is RaiseCall.Sdk or RaiseCall.SdkUnary)
        {
            await using var sdk = new HookBrokerClient(new HookBrokerClientOptions { Address = address ?? throw new ArgumentNullException(nameof(address)), Batching = how == RaiseCall.Sdk });
            await sdk.ExecuteEventAsync(label, SdkArgs(-1)); // the first call opens the channel (and the stream): not timed
            var started = Stopwatch.StartNew();
            await ProduceWithSdkAsync(sdk, label, n, rate: 0, window: callers);
            return n / started.Elapsed.TotalSeconds;
        }

        var stopwatch = Stopwatch.StartNew();
        if (how == RaiseCall.RawUnary)
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

    /// <summary>The benchmark's args as an app passes them (serialized by the SDK): the same fields as <see cref="Payload.Args"/>.</summary>
    private static object SdkArgs(long sequence) =>
        new { ts = Stopwatch.GetTimestamp(), seq = sequence, username = "user-" + sequence, email = "user-" + sequence + "@example.com", pad = Payload.Pad };

    /// <summary>
    /// The e2e producer: <paramref name="n"/> ExecuteEventAsync calls issued as fast as they return, awaited together every
    /// <see cref="Window"/> calls (every 64 in rate mode, paced to <paramref name="rate"/>/s) — the window the Redis
    /// Streams producer uses for its XADDs, so both systems are driven the same way. Throws when any raise failed.
    /// </summary>
    private static async Task ProduceWithSdkInWindowsAsync(IHookBrokerClient client, string label, int n, int rate)
    {
        var started = Stopwatch.GetTimestamp();
        var inFlight = new List<Task<HookBroker.Client.RaiseResult>>(Window);
        var failed = 0L;
        Exception? firstError = null;

        async Task AwaitWindowAsync()
        {
            try
            {
                await Task.WhenAll(inFlight);
            }
            catch (HookBrokerException)
            {
                foreach (var task in inFlight.Where(t => t.IsFaulted))
                {
                    firstError ??= task.Exception!.InnerException;
                    failed++;
                }
            }

            inFlight.Clear();
        }

        for (var sent = 0; sent < n;)
        {
            if (rate > 0 && sent >= Stopwatch.GetElapsedTime(started).TotalSeconds * rate)
            {
                await Task.Delay(1);
                continue;
            }

            inFlight.Add(client.ExecuteEventAsync(label, SdkArgs(sent)).AsTask());
            sent++;
            if (inFlight.Count >= Window || (rate > 0 && inFlight.Count >= 64))
            {
                await AwaitWindowAsync();
            }
        }

        await AwaitWindowAsync();
        if (failed > 0)
        {
            throw new InvalidOperationException($"{failed} raises failed; the first: {firstError?.Message}");
        }
    }

    /// <summary>
    /// <paramref name="n"/> ExecuteEventAsync calls, at most <paramref name="window"/> in flight (the callers of a busy app);
    /// paced to <paramref name="rate"/>/s when &gt; 0. Throws when any raise failed.
    /// </summary>
    private static async Task ProduceWithSdkAsync(IHookBrokerClient client, string label, int n, int rate, int window)
    {
        using var slots = new SemaphoreSlim(window);
        var failed = 0L;
        Exception? firstError = null;
        var started = Stopwatch.GetTimestamp();

        async Task RaiseOneAsync(int sequence)
        {
            try
            {
                await client.ExecuteEventAsync(label, SdkArgs(sequence));
            }
            catch (HookBrokerException e)
            {
                Interlocked.CompareExchange(ref firstError, e, null);
                Interlocked.Increment(ref failed);
            }
            finally
            {
                slots.Release();
            }
        }

        for (var i = 0; i < n; i++)
        {
            while (rate > 0 && i >= Stopwatch.GetElapsedTime(started).TotalSeconds * rate)
            {
                await Task.Delay(1);
            }

            await slots.WaitAsync();
            _ = RaiseOneAsync(i);
        }

        for (var i = 0; i < window; i++)
        {
            await slots.WaitAsync();
        }

        if (failed > 0)
        {
            throw new InvalidOperationException($"{failed} raises failed; the first: {firstError?.Message}");
        }
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
}
