using System.Threading.Channels;
using Grpc.Core;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Client.Internal;

/// <summary>
/// Sends the default events to the broker off the request path: a bounded buffer (full = the new event is dropped and
/// counted, never waited for) drained by one background loop in <c>RaiseStream</c> batches. Events are filtered by the
/// broker's interest when queued and again when sent; before the first interest snapshot they wait in the buffer.
/// </summary>
internal sealed class DefaultEventPublisher
{
    private const int MaxSendAttempts = 5;
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);

    private readonly Channel<RaiseRequest> buffer;
    private readonly BrokerApi.HookBrokerClient broker;
    private readonly InterestWatcher interest;
    private readonly DefaultEventMetrics metrics;
    private readonly HookBrokerAppOptions options;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly Lock warningGate = new();
    private long dropsSinceWarning;
    private long lastWarningTimestamp;
    private bool warnedOnce;

    public DefaultEventPublisher(
        BrokerApi.HookBrokerClient broker, InterestWatcher interest, DefaultEventMetrics metrics, HookBrokerAppOptions options, TimeProvider time, ILogger logger)
    {
        this.broker = broker;
        this.interest = interest;
        this.metrics = metrics;
        this.options = options;
        this.time = time;
        this.logger = logger;
        buffer = Channel.CreateBounded<RaiseRequest>(new BoundedChannelOptions(options.DefaultEventBufferCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // only TryWrite is used: a full buffer refuses, it never blocks
            SingleReader = true,
        });
    }

    /// <summary>False when the broker's interest is known and no group listens to <paramref name="label"/> (counted as skipped).</summary>
    public bool ShouldPublish(string label)
    {
        if (interest.MayHaveInterest(label))
        {
            return true;
        }

        metrics.Skipped(label);
        return false;
    }

    /// <summary>Queues <paramref name="request"/> without waiting; a full (or closed) buffer drops it and counts it.</summary>
    public void Publish(RaiseRequest request)
    {
        if (!buffer.Writer.TryWrite(request))
        {
            Drop(request.Event, "buffer_full");
        }
    }

    /// <summary>No more events are accepted; <see cref="RunAsync"/> sends what is buffered and returns.</summary>
    public void Complete() => buffer.Writer.TryComplete();

    /// <summary>Sends buffered events until the buffer is completed and empty, or <paramref name="abort"/> is canceled.</summary>
    public async Task RunAsync(CancellationToken abort)
    {
        var reader = buffer.Reader;
        var batch = new List<RaiseRequest>(options.DefaultEventBatchSize);
        try
        {
            // Until the broker has said who listens, events wait here instead of being raised to nobody.
            await interest.WaitForFirstSnapshotAsync(abort);
            while (await reader.WaitToReadAsync(abort))
            {
                batch.Clear();
                while (batch.Count < options.DefaultEventBatchSize && reader.TryRead(out var request))
                {
                    if (ShouldPublish(request.Event))
                    {
                        batch.Add(request);
                    }
                }

                if (batch.Count > 0)
                {
                    await SendAsync(batch, abort);
                    batch.Clear();
                }
            }
        }
        catch (Exception e) when ((e is OperationCanceledException or RpcException) && abort.IsCancellationRequested)
        {
            // gRPC reports a canceled call as RpcException(Cancelled).
            foreach (var request in batch)
            {
                Drop(request.Event, "stopped");
            }

            while (reader.TryRead(out var request))
            {
                Drop(request.Event, "stopped");
            }
        }
    }

    /// <summary>Sends <paramref name="batch"/>, retrying unanswered items; leaves in it only what was not sent when aborted.</summary>
    private async Task SendAsync(List<RaiseRequest> batch, CancellationToken abort)
    {
        var delay = FirstRetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            var answered = new bool[batch.Count];
            string reason;
            try
            {
                reason = await SendOnceAsync(batch, answered, abort);
            }
            catch (RpcException e) when (!abort.IsCancellationRequested)
            {
                reason = $"{e.StatusCode}: {e.Status.Detail}";
            }
            finally
            {
                var unanswered = batch.Where((_, i) => !answered[i]).ToList();
                batch.Clear();
                batch.AddRange(unanswered);
            }

            if (batch.Count == 0)
            {
                return;
            }

            if (attempt == MaxSendAttempts)
            {
                foreach (var request in batch)
                {
                    Drop(request.Event, "send_failed");
                }

                batch.Clear();
                return;
            }

            AppLog.SendRetrying(logger, batch.Count, reason, attempt, delay);
            await Task.Delay(delay, time, abort);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
        }
    }

    /// <summary>One RaiseStream call carrying the whole batch. Marks each item answered for good (stored or refused).</summary>
    private async Task<string> SendOnceAsync(List<RaiseRequest> pending, bool[] answered, CancellationToken abort)
    {
        var deadline = time.GetUtcNow().UtcDateTime + options.Client.AttemptTimeout;
        using var call = broker.RaiseStream(deadline: deadline, cancellationToken: abort);
        var message = new RaiseStreamRequest();
        for (var i = 0; i < pending.Count; i++)
        {
            message.Items.Add(new RaiseItem { Sequence = (ulong)i, Raise = pending[i] });
        }

        await call.RequestStream.WriteAsync(message, abort);
        await call.RequestStream.CompleteAsync();
        var transient = 0;
        while (await call.ResponseStream.MoveNext(abort))
        {
            foreach (var result in call.ResponseStream.Current.Results)
            {
                if (result.Sequence >= (ulong)pending.Count)
                {
                    continue;
                }

                var index = (int)result.Sequence;
                var label = pending[index].Event;
                var code = (StatusCode)(result.Status?.Code ?? 0);
                if (code == StatusCode.OK)
                {
                    answered[index] = true;
                    metrics.Sent(label);
                }
                else if (code is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.ResourceExhausted)
                {
                    transient++; // retried with its idempotency key
                }
                else
                {
                    answered[index] = true;
                    AppLog.DefaultEventRefused(logger, label, (int)code, result.Status?.Message ?? string.Empty);
                    Drop(label, "refused");
                }
            }
        }

        return transient > 0 ? $"{transient} item(s) answered with a retriable status" : "the stream ended before every item was answered";
    }

    private void Drop(string label, string reason)
    {
        metrics.Dropped(label, reason);
        Interlocked.Increment(ref dropsSinceWarning);
        var now = time.GetTimestamp();
        lock (warningGate)
        {
            var since = time.GetElapsedTime(lastWarningTimestamp, now);
            if (warnedOnce && since < options.DropWarningInterval)
            {
                return;
            }

            var count = Interlocked.Exchange(ref dropsSinceWarning, 0);
            AppLog.DefaultEventsDropped(logger, count, warnedOnce ? since : TimeSpan.Zero, reason);
            warnedOnce = true;
            lastWarningTimestamp = now;
        }
    }
}
