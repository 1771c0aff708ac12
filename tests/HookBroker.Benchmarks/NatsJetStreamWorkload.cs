using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace HookBroker.Benchmarks;

/// <summary>
/// The same e2e workload on NATS JetStream (file storage), as a user would build it with NATS.Net: JetStream publishes
/// (each answered by the stream's ack) from one producer in the same bounded windows, and one durable pull consumer that
/// acks every message, holding at most as many unacked as HookBroker's worker holds deliveries.
/// </summary>
internal static class NatsJetStreamWorkload
{
    private const int Window = 20_000;

    /// <summary>The unacked messages the consumer may hold: the SDK worker's <c>MaxInFlight</c> in the HookBroker run.</summary>
    private const int MaxAckPending = 10_000;

    public static async Task<HookBrokerWorkload.Outcome> RunAsync(int port, string name, int n, int rate)
    {
        var opts = new NatsOpts { Url = $"nats://127.0.0.1:{port}" };
        await using var producer = new NatsConnection(opts);
        await using var reader = new NatsConnection(opts);
        var js = new NatsJSContext(producer);
        var subject = $"bench.{name}";
        await js.CreateStreamAsync(new StreamConfig(name, [subject]) { Storage = StreamConfigStorage.File });
        var consumerConfig = new ConsumerConfig("c1") { AckPolicy = ConsumerConfigAckPolicy.Explicit, MaxAckPending = MaxAckPending };
        var consumer = await new NatsJSContext(reader).CreateOrUpdateConsumerAsync(name, consumerConfig);

        var latencies = new Latencies(n);
        var tally = new ArrivalTally(n, latencies);
        using var stop = new CancellationTokenSource();
        var consuming = Task.Run(async () =>
        {
            try
            {
                await foreach (var message in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 1_000 }, cancellationToken: stop.Token))
                {
                    // The send time and the sequence number lead the body, so the consumer need not parse the JSON.
                    var body = message.Data!;
                    tally.Record(BinaryPrimitives.ReadInt32LittleEndian(body.AsSpan(8)), BinaryPrimitives.ReadInt64LittleEndian(body));
                    await message.AckAsync(cancellationToken: stop.Token);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The run is over.
            }
        });

        var stopwatch = Stopwatch.StartNew();
        var started = Stopwatch.GetTimestamp();
        var inFlight = new List<Task<PubAckResponse>>(Window);
        for (var sent = 0; sent < n;)
        {
            if (rate > 0 && sent >= Stopwatch.GetElapsedTime(started).TotalSeconds * rate)
            {
                await Task.Delay(1);
                continue;
            }

            inFlight.Add(js.PublishAsync(subject, Body(sent)).AsTask());
            sent++;
            if (inFlight.Count >= Window || (rate > 0 && inFlight.Count >= 64))
            {
                await AwaitAcksAsync(inFlight);
            }
        }

        await AwaitAcksAsync(inFlight);
        await Task.WhenAny(tally.Done, Task.Delay(TimeSpan.FromSeconds(Math.Max(60, n / 2_000.0))));
        var elapsed = stopwatch.Elapsed;
        await stop.CancelAsync();
        await consuming;
        await js.DeleteStreamAsync(name);
        return new HookBrokerWorkload.Outcome(n / elapsed.TotalSeconds, latencies, n - tally.Distinct, tally.Duplicates, elapsed);
    }

    /// <summary>The send time (8 bytes) and the sequence number (4) ahead of the same JSON args the other runs send.</summary>
    private static byte[] Body(int sequence)
    {
        var json = Payload.Json(sequence);
        var body = new byte[12 + Encoding.UTF8.GetByteCount(json)];
        BinaryPrimitives.WriteInt64LittleEndian(body, Stopwatch.GetTimestamp());
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(8), sequence);
        Encoding.UTF8.GetBytes(json, body.AsSpan(12));
        return body;
    }

    private static async Task AwaitAcksAsync(List<Task<PubAckResponse>> inFlight)
    {
        foreach (var ack in await Task.WhenAll(inFlight))
        {
            ack.EnsureSuccess();
        }

        inFlight.Clear();
    }
}
