using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Protocol.V1;

namespace HookBroker.Benchmarks;

/// <summary>The capacity scenarios: many idle subscriber streams, and a large backlog drained after the fact.</summary>
internal static class CapacityWorkloads
{
    /// <summary>A channel that opens more HTTP/2 connections as streams need them (a server allows ~100 per connection).</summary>
    public static GrpcChannel ManyStreamsChannel(Uri address) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
    });

    /// <summary>
    /// Opens <paramref name="count"/> idle Subscribe streams (each its own group, so each is a durable group too), then
    /// checks that an event still reaches one of them. Returns the streams opened and the raise-to-delivery time.
    /// </summary>
    public static async Task<(int Opened, TimeSpan Delivery)> IdleSubscribersAsync(GrpcChannel channel, int count)
    {
        var client = new Protocol.V1.HookBroker.HookBrokerClient(channel);
        var calls = new List<AsyncDuplexStreamingCall<SubscribeRequest, SubscribeResponse>>(count);
        try
        {
            // Open in parallel batches; each stream is confirmed by its `subscribed` message.
            for (var start = 0; start < count; start += 500)
            {
                var batch = Enumerable.Range(start, Math.Min(500, count - start)).Select(async i =>
                {
                    var call = client.Subscribe();
                    var subscribe = new SubscribeStart { Group = $"idle-{i}", MaxInFlight = 10 };
                    subscribe.Events.Add($"idle.{i}");
                    await call.RequestStream.WriteAsync(new SubscribeRequest { Subscribe = subscribe });
                    if (!await call.ResponseStream.MoveNext() || call.ResponseStream.Current.Subscribed is null)
                    {
                        throw new InvalidOperationException($"stream {i} was not subscribed");
                    }

                    return call;
                });
                calls.AddRange(await Task.WhenAll(batch));
            }

            // Raises still flow: one event to the last stream's label arrives on that stream.
            var last = calls[^1];
            var stopwatch = Stopwatch.StartNew();
            await client.RaiseAsync(new RaiseRequest { Event = $"idle.{count - 1}", Args = Payload.Args(0) });
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await last.ResponseStream.MoveNext(timeout.Token))
            {
                if (last.ResponseStream.Current.Deliveries.Count > 0)
                {
                    return (calls.Count, stopwatch.Elapsed);
                }
            }

            throw new InvalidOperationException("the raise did not reach its subscriber");
        }
        finally
        {
            foreach (var call in calls)
            {
                call.Dispose();
            }
        }
    }

    /// <summary>
    /// Raises <paramref name="n"/> events for a durable group whose worker is offline, then subscribes one worker and
    /// drains them. Returns raise and drain rates and the distinct events drained.
    /// </summary>
    public static async Task<(double RaisePerSecond, double DrainPerSecond, long Lost, long Duplicates)> BacklogAsync(GrpcChannel channel, int n)
    {
        var raiseRate = await HookBrokerWorkload.RaiseOnlyAsync(channel, "backlog", n, RaiseCall.RawStream);
        var stopwatch = Stopwatch.StartNew();
        var outcome = await HookBrokerWorkload.DrainAsync(channel, "backlog-g", "backlog", n);
        return (raiseRate, n / stopwatch.Elapsed.TotalSeconds, outcome.Lost, outcome.Duplicates);
    }
}
