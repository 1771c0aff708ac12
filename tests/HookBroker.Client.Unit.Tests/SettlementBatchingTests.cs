using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using HookBroker.Client.Internal;
using HookBroker.Protocol.V1;
using HookBroker.Tests.Infrastructure;
using HookBroker.Wire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace HookBroker.Client.Unit.Tests;

/// <summary>
/// The worker's settlement writer gathers the acks of deliveries still being handled into one message, within its
/// linger, and never holds an ack back longer than that for a hook that is still running. Drives a real
/// <see cref="SubscriptionSession"/> over an in-memory stream that records every request message.
/// </summary>
public sealed class SettlementBatchingTests
{
    private const int Delivered = 20;

    [Fact(Timeout = 20_000)]
    public async Task The_acks_of_a_delivered_batch_leave_in_one_message_when_the_hooks_finish_within_the_linger()
    {
        // Every delivery of the batch is received and started first; then the hooks finish one by one, about a
        // millisecond apart, so a writer that sent what it had at each wake-up would send many messages.
        var entered = 0;
        var turns = Enumerable.Range(0, Delivered).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var hooks = new Hooks().Event("e", async (string id) =>
        {
            if (Interlocked.Increment(ref entered) == Delivered)
            {
                turns[0].TrySetResult();
            }

            var index = int.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture);
            await turns[index].Task;
            if (index + 1 < Delivered)
            {
                _ = Task.Delay(1).ContinueWith(_ => turns[index + 1].TrySetResult(), TaskScheduler.Default);
            }
        });
        await using var stream = new RecordedStream();
        using var session = stream.Session(hooks, maxConcurrency: Delivered, linger: TimeSpan.FromSeconds(10));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);

        await stream.DeliverAsync(Enumerable.Range(0, Delivered).Select(i => $"d{i}"));
        await Poll.UntilAsync(() => stream.Acks.Count == Delivered, TimeSpan.FromSeconds(15), "every ack", TestContext.Current.CancellationToken);

        // The writer woke at the first ack and kept gathering while deliveries were unsettled: one message for all.
        Assert.Equal(1, stream.MessagesWithAcks);
        Assert.Equal(Enumerable.Range(0, Delivered).Select(i => $"d{i}").Order(), stream.Acks.Order());
        await stopping.CancelAsync();
        stream.End();
        await run;
    }

    [Fact(Timeout = 20_000)]
    public async Task A_hook_still_running_holds_the_others_acks_back_no_longer_than_the_linger()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hooks = new Hooks().Event("e", async (string id) =>
        {
            if (id == "slow")
            {
                await release.Task;
            }
        });
        await using var stream = new RecordedStream();
        using var session = stream.Session(hooks, maxConcurrency: 2, linger: TimeSpan.FromMilliseconds(50));
        using var stopping = new CancellationTokenSource();
        var run = session.RunAsync(stopping.Token);

        await stream.DeliverAsync(["slow", "fast"]);

        // The fast one's ack leaves after the linger although the slow hook is still running.
        await Poll.UntilAsync(() => stream.Acks.Contains("fast"), TimeSpan.FromSeconds(15), "the fast hook's ack", TestContext.Current.CancellationToken);
        Assert.DoesNotContain("slow", stream.Acks);
        release.TrySetResult();
        await Poll.UntilAsync(() => stream.Acks.Contains("slow"), TimeSpan.FromSeconds(15), "the slow hook's ack", TestContext.Current.CancellationToken);
        Assert.Equal(2, stream.MessagesWithAcks);
        await stopping.CancelAsync();
        stream.End();
        await run;
    }

    /// <summary>
    /// A Subscribe call in memory: the test pushes responses, the session's request messages are recorded. Each delivery's
    /// args are <c>{"id": its delivery id}</c>.
    /// </summary>
    private sealed class RecordedStream : IAsyncDisposable
    {
        private readonly Channel<RawSubscribeResponse> responses = Channel.CreateBounded<RawSubscribeResponse>(16);
        private readonly ConcurrentQueue<SubscribeRequest> requests = new();
        private readonly ServiceProvider services = new ServiceCollection().BuildServiceProvider();

        public IReadOnlyCollection<string> Acks => [.. requests.SelectMany(r => r.Acks)];


        public int MessagesWithAcks => requests.Count(r => r.Acks.Count > 0);

        public SubscriptionSession Session(Hooks hooks, int maxConcurrency, TimeSpan linger)
        {
            var call = new AsyncDuplexStreamingCall<SubscribeRequest, RawSubscribeResponse>(
                new RecordingWriter(requests),
                new ChannelResponses(responses.Reader),
                Task.FromResult(new Metadata()),
                () => Status.DefaultSuccess,
                () => [],
                () => { });
            var options = new HookWorkerOptions { Group = "g", MaxInFlight = 100, MaxConcurrency = maxConcurrency };
            var subscribed = new Subscribed { Group = "g", WorkerId = "w", MaxInFlight = 100 };
            return new SubscriptionSession(
                call, subscribed, hooks.Snapshot(), options, services.GetRequiredService<IServiceScopeFactory>(), NullLogger.Instance, TimeProvider.System, linger);
        }

        public async Task DeliverAsync(IEnumerable<string> ids)
        {
            var response = new RawSubscribeResponse();
            foreach (var id in ids)
            {
                var args = new Google.Protobuf.WellKnownTypes.Struct { Fields = { ["id"] = Google.Protobuf.WellKnownTypes.Value.ForString(id) } };
                response.Deliveries.Add(new RawDelivery { DeliveryId = id, EventId = id, Event = "e", Attempt = 1, Args = args.ToByteString() });
            }

            await responses.Writer.WriteAsync(response);
        }

        public void End() => responses.Writer.TryComplete();

        public async ValueTask DisposeAsync()
        {
            End();
            await services.DisposeAsync();
        }
    }

    private sealed class RecordingWriter(ConcurrentQueue<SubscribeRequest> requests) : IClientStreamWriter<SubscribeRequest>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(SubscribeRequest message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(SubscribeRequest message, CancellationToken cancellationToken)
        {
            requests.Enqueue(message);
            return Task.CompletedTask;
        }

        public Task CompleteAsync() => Task.CompletedTask;
    }

    private sealed class ChannelResponses(ChannelReader<RawSubscribeResponse> reader) : IAsyncStreamReader<RawSubscribeResponse>
    {
        public RawSubscribeResponse Current { get; private set; } = null!;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (!await reader.WaitToReadAsync(cancellationToken) || !reader.TryRead(out var next))
            {
                return false;
            }

            Current = next;
            return true;
        }
    }
}
