using System.Threading.Channels;
using Grpc.Core;
using HookBroker.Broker.Core;
using HookBroker.Wire;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Services;

/// <summary>
/// Serves one RaiseStream call. Request messages are stored as batches, several at once (up to
/// <see cref="MaxBatchesInFlight"/>; the engine merges concurrent batches into group commits), so a client that pipelines
/// requests is not held to one commit per round trip. Every item is answered by its sequence number; a failing batch
/// answers its items with the failure's status and the stream goes on. Ready results leave in as few messages as possible.
/// </summary>
internal sealed partial class RaiseStreamCall : IDisposable
{
    /// <summary>Request messages being stored at once; beyond it the call stops reading (backpressure).</summary>
    public const int MaxBatchesInFlight = 8;

    /// <summary>Wait-mode raises waiting at once; beyond it the call stops reading (backpressure).</summary>
    public const int MaxWaiting = 10_000;

    /// <summary>A response message holds ready results up to about this many bytes.</summary>
    public const int MaxResponseBytes = 1 << 20;

    private readonly RaiseCoordinator _raises;
    private readonly ServerCallContext _context;
    private readonly CancellationToken _stopWaiting;
    private readonly Func<TimeSpan?> _timeLeft;
    private readonly ILogger _logger;
    private readonly Channel<RaiseResult> _results = Channel.CreateBounded<RaiseResult>(new BoundedChannelOptions(MaxWaiting) { SingleReader = true });
    private readonly SemaphoreSlim _batchSlots = new(MaxBatchesInFlight);
    private readonly SemaphoreSlim _waitSlots = new(MaxWaiting);
    private readonly Lock _gate = new();
    private readonly List<Task> _pending = [];

    public RaiseStreamCall(RaiseCoordinator raises, ServerCallContext context, Func<TimeSpan?> timeLeft, ILogger logger, CancellationToken stopWaiting)
    {
        _raises = raises;
        _context = context;
        _stopWaiting = stopWaiting;
        _timeLeft = timeLeft;
        _logger = logger;
    }

    /// <summary>Reads until the client half-closes or the broker stops, then answers everything outstanding.</summary>
    public async Task RunAsync(IAsyncStreamReader<RawRaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream)
    {
        var call = _context.CancellationToken;
        var writer = WriteResultsAsync(responseStream, call);
        try
        {
            while (await requestStream.MoveNext(_stopWaiting))
            {
                var items = requestStream.Current.Items;
                await _batchSlots.WaitAsync(_stopWaiting);
                Track(StoreBatchAsync(items));
            }

            await WaitForPendingAsync(observeFailures: true);
        }
        catch (OperationCanceledException) when (_stopWaiting.IsCancellationRequested && !call.IsCancellationRequested)
        {
            // The broker is stopping: answer what was stored, then send the client elsewhere.
            await WaitForPendingAsync(observeFailures: true);
            _results.Writer.TryComplete();
            await writer;
            throw BrokerException.ShuttingDown();
        }
        finally
        {
            _results.Writer.TryComplete();
            // The call may end early (the client cancelled or reset it): let every batch and wait still running finish
            // first (they watch the call's token), so each unregisters what it registered and none outlives the call.
            await WaitForPendingAsync(observeFailures: false);
        }

        await writer;
    }

    public void Dispose()
    {
        _batchSlots.Dispose();
        _waitSlots.Dispose();
    }

    private async Task StoreBatchAsync(Google.Protobuf.Collections.RepeatedField<RawRaiseItem> items)
    {
        var call = _context.CancellationToken;
        IReadOnlyList<RaiseItemResult> stored;
        try
        {
            stored = await _raises.StoreAsync([.. items.Select(i => i.Raise ?? new RawRaiseRequest())], _timeLeft(), call);
        }
        catch (Exception ex) when (!call.IsCancellationRequested)
        {
            var status = StatusMapping.ToStatus(ex, out var unexpected);
            if (unexpected)
            {
                LogBatchFailed(_logger, ex, items.Count);
            }

            foreach (var item in items)
            {
                await _results.Writer.WriteAsync(Failed(item.Sequence, status), call);
            }

            return;
        }
        finally
        {
            _batchSlots.Release();
        }

        var handedOver = 0;
        try
        {
            for (; handedOver < items.Count; handedOver++)
            {
                var sequence = items[handedOver].Sequence;
                var result = stored[handedOver];
                if (result.Error is not null)
                {
                    await _results.Writer.WriteAsync(Failed(sequence, new Status(result.Error.Code, result.Error.Message)), call);
                }
                else if (result.Wait is null)
                {
                    await _results.Writer.WriteAsync(Succeeded(sequence, await _raises.CompleteAsync(result, call)), call);
                }
                else
                {
                    await _waitSlots.WaitAsync(call);
                    Track(WaitAndAnswerAsync(sequence, result));
                }
            }
        }
        finally
        {
            // The call ended before every item was answered: unregister the waiters nobody will complete.
            for (var i = handedOver; i < stored.Count; i++)
            {
                stored[i].Waiter?.Dispose();
            }
        }
    }

    private async Task WaitAndAnswerAsync(ulong sequence, RaiseItemResult result)
    {
        try
        {
            // Stopping ends the wait early: the outcomes known so far, the rest TIMED_OUT.
            var response = await _raises.CompleteAsync(result, _stopWaiting);
            await _results.Writer.WriteAsync(Succeeded(sequence, response), _context.CancellationToken);
        }
        finally
        {
            _waitSlots.Release();
        }
    }

    private void Track(Task task)
    {
        lock (_gate)
        {
            _pending.RemoveAll(t => t.IsCompleted);
            _pending.Add(task);
        }
    }

    /// <summary>
    /// Waits for every batch and wait, including those that batches start while draining; with
    /// <paramref name="observeFailures"/> false, their failures (the call's end) are not thrown.
    /// </summary>
    private async Task WaitForPendingAsync(bool observeFailures)
    {
        while (true)
        {
            Task[] pending;
            lock (_gate)
            {
                _pending.RemoveAll(t => t.IsCompleted);
                pending = [.. _pending];
            }

            if (pending.Length == 0)
            {
                return;
            }

            var all = Task.WhenAll(pending);
            await (observeFailures ? all : all.ContinueWith(static _ => { }, TaskScheduler.Default));
        }
    }

    private async Task WriteResultsAsync(IServerStreamWriter<RaiseStreamResponse> responseStream, CancellationToken cancellationToken)
    {
        var reader = _results.Reader;
        while (await reader.WaitToReadAsync(cancellationToken))
        {
            // Ready results in one message, up to about 1 MiB (gRPC clients refuse messages over 4 MiB by default, and
            // a wait-mode result carries its groups' errors).
            var message = new RaiseStreamResponse();
            var bytes = 0;
            while (bytes < MaxResponseBytes && reader.TryRead(out var result))
            {
                message.Results.Add(result);
                bytes += result.CalculateSize() + 6;
            }

            await responseStream.WriteAsync(message, cancellationToken);
        }
    }

    private static RaiseResult Succeeded(ulong sequence, RaiseResponse response) =>
        new() { Sequence = sequence, Status = new ItemStatus { Code = (int)StatusCode.OK }, Response = response };

    private static RaiseResult Failed(ulong sequence, Status status) =>
        new() { Sequence = sequence, Status = new ItemStatus { Code = (int)status.StatusCode, Message = status.Detail } };

    [LoggerMessage(101, LogLevel.Error, "Storing a RaiseStream batch of {Items} items failed; each item was answered INTERNAL")]
    private static partial void LogBatchFailed(ILogger logger, Exception exception, int items);
}
