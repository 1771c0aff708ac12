using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace HookBroker.Benchmarks;

/// <summary>
/// The same e2e workload on bare Redis Streams, as a user would build it: XADD (pipelined, bounded window) from one
/// producer, XREADGROUP (blocking, on its own connection) and XACK (batched) in one consumer.
/// </summary>
internal static class RedisStreamsWorkload
{
    private const int Window = 20_000;

    public static async Task<HookBrokerWorkload.Outcome> RunAsync(int port, string key, int n, int rate)
    {
        using var producer = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port}");
        using var reader = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},syncTimeout=10000,asyncTimeout=10000");
        var db = producer.GetDatabase();
        var readDb = reader.GetDatabase();
        await db.KeyDeleteAsync(key);
        await db.StreamCreateConsumerGroupAsync(key, "g", StreamPosition.NewMessages, createStream: true);

        var latencies = new Latencies(n);
        var seen = new bool[n];
        var distinct = 0;
        var duplicates = 0L;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        var consumer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var result = await readDb.ExecuteAsync("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1000", "BLOCK", "100", "STREAMS", key, ">");
                if (result.IsNull)
                {
                    continue;
                }

                var entries = (RedisResult[])((RedisResult[])((RedisResult[])result!)[0]!)[1]!;
                var ids = new RedisValue[entries.Length];
                for (var i = 0; i < entries.Length; i++)
                {
                    var entry = (RedisResult[])entries[i]!;
                    ids[i] = (RedisValue)entry[0];
                    var fields = (RedisResult[])entry[1]!;
                    var sentAt = long.Parse((string)fields[1]!, CultureInfo.InvariantCulture);
                    var sequence = int.Parse((string)fields[3]!, CultureInfo.InvariantCulture);
                    if (!seen[sequence])
                    {
                        seen[sequence] = true;
                        latencies.Add(sentAt);
                        if (++distinct == n)
                        {
                            done.TrySetResult();
                        }
                    }
                    else
                    {
                        duplicates++;
                    }
                }

                _ = db.StreamAcknowledgeAsync(key, "g", ids, CommandFlags.FireAndForget);
            }
        });

        var stopwatch = Stopwatch.StartNew();
        var started = Stopwatch.GetTimestamp();
        var inFlight = new List<Task>(Window);
        for (var sent = 0; sent < n;)
        {
            if (rate > 0 && sent >= Stopwatch.GetElapsedTime(started).TotalSeconds * rate)
            {
                await Task.Delay(1);
                continue;
            }

            // The args JSON carries the same fields as HookBroker's; ts and seq are also separate fields so the
            // consumer need not parse JSON (the cheapest reading a user would write).
            inFlight.Add(db.StreamAddAsync(key, [
                new NameValueEntry("ts", Stopwatch.GetTimestamp()),
                new NameValueEntry("seq", sent),
                new NameValueEntry("args", Payload.Json(sent)),
            ]));
            sent++;
            if (inFlight.Count >= Window || (rate > 0 && inFlight.Count >= 64))
            {
                await Task.WhenAll(inFlight);
                inFlight.Clear();
            }
        }

        await Task.WhenAll(inFlight);
        await Task.WhenAny(done.Task, Task.Delay(TimeSpan.FromSeconds(Math.Max(60, n / 2_000.0))));
        var elapsed = stopwatch.Elapsed;
        await stop.CancelAsync();
        await consumer;
        return new HookBrokerWorkload.Outcome(n / elapsed.TotalSeconds, latencies, n - distinct, duplicates, elapsed);
    }
}
